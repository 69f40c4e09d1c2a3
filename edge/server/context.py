"""What every route reads: the served loop, its runner, the hub and the options, kept on the app.

Routes live in one module per concern (`routes_*`) and reach this through FastAPI dependencies,
so no route is a closure over `create_app`'s locals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from vigil360.edge.server.hub import EventHub
from vigil360.edge.server.loop_runner import LoopRunner
from vigil360.edge.server.options import ServerOptions
from vigil360.edge.server.protocol import ServableLoop
from vigil360.edge.server.security import offered_token, token_matches


@dataclass(frozen=True)
class Served:
    loop: ServableLoop
    runner: LoopRunner
    hub: EventHub
    options: ServerOptions


class Problem(BaseModel):
    detail: Any


def served(connection: HTTPConnection) -> Served:
    return connection.app.state.served


def authorised(connection: HTTPConnection) -> None:
    token = served(connection).options.token
    if token is None:
        return
    if not token_matches(token, offered_token(connection.scope, connection.query_params.get("token"))):
        raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})


def validation_reasons(errors: list[dict]) -> list[dict]:
    """pydantic's errors without the offending input: it may be NaN or infinity, which JSON cannot carry."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


GUARDED = [Depends(authorised)]
UNAUTHORISED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "a token is required and was missing or wrong"},
}
