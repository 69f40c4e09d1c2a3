"""The annotated frame for eyes: one JPEG (/v1/frame.jpg) or an MJPEG stream (/v1/preview.mjpeg)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from vigil360.edge.server.context import GUARDED, UNAUTHORISED, Problem, Served, served

router = APIRouter()
# Asked-for widths are capped by `ServerOptions.preview_max_width`, which is also the default.
Width = Annotated[int | None, Query(ge=64, le=3840, description="at most this many pixels wide (default and "
                                                                   "cap: the server's preview width)")]


def _width(asked: int | None, state: Served) -> int:
    cap = state.options.preview_max_width
    return cap if asked is None else min(asked, cap)


@router.get("/v1/frame.jpg", dependencies=GUARDED, tags=["preview"],
            responses={**UNAUTHORISED, 200: {"content": {"image/jpeg": {}}, "description": "JPEG image"},
                       503: {"model": Problem, "description": "no frame yet"}})
async def frame_jpg(width: Width = None, state: Served = Depends(served)) -> Response:
    """The newest annotated equirectangular frame, downscaled to at most `width` pixels."""
    jpeg = await asyncio.to_thread(state.loop.latest_preview_jpeg, _width(width, state))
    if jpeg is None:
        return JSONResponse({"detail": "no frame yet"}, status_code=503, headers={"Retry-After": "1"})
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/v1/preview.mjpeg", dependencies=GUARDED, tags=["preview"],
            responses={**UNAUTHORISED, 200: {"content": {"multipart/x-mixed-replace; boundary=frame": {}},
                                             "description": "an endless MJPEG stream"}})
async def preview_mjpeg(request: Request, width: Width = None,
                        fps: Annotated[float, Query(gt=0, le=30)] = 5.0,
                        state: Served = Depends(served)) -> StreamingResponse:
    """MJPEG preview of the annotated frame (for an <img> tag); at most `mjpeg_max_hz` frames/s."""
    period = 1.0 / min(fps, state.options.mjpeg_max_hz)
    width = _width(width, state)
    latest = state.loop.latest_preview_jpeg

    async def parts():
        last = None
        while not await request.is_disconnected():
            started = time.perf_counter()
            jpeg = await asyncio.to_thread(latest, width)
            if jpeg is not None and jpeg != last:
                last = jpeg
                yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                       + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
            await asyncio.sleep(max(0.0, period - (time.perf_counter() - started)))

    return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame")
