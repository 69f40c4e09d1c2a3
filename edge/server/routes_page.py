"""The live page: three files read once from this package (no path a request chooses is ever read)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

_PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _page_assets() -> dict[str, tuple[bytes, str]]:
    static = files("vigil360.edge.server").joinpath("static")
    return {name: (static.joinpath(name).read_bytes(), media) for name, media in _PAGE_FILES.items()}


_ASSETS = _page_assets()
router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> Response:
    body, media = _ASSETS["index.html"]
    return Response(body, media_type=media)


@router.get("/static/{name}")
def page_asset(name: str) -> Response:
    if name not in _ASSETS or name == "index.html":
        raise HTTPException(404, "no such asset")
    body, media = _ASSETS[name]
    return Response(body, media_type=media)
