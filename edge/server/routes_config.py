"""What a client may change: the runtime settings (/v1/config) and "say that again" (/v1/repeat)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from vigil360.config import Settings
from vigil360.edge.events import AlertEvent
from vigil360.edge.loop import RUNTIME_SETTINGS
from vigil360.edge.server.context import GUARDED, UNAUTHORISED, Problem, Served, served, validation_reasons
from vigil360.errors import UserError

router = APIRouter()


def _without_default(schema: dict) -> None:
    schema.pop("default", None)


def settings_patch_model(runtime: dict[str, set[str]]) -> type[BaseModel]:
    """A request model for the runtime-changeable part of `Settings`, derived from it: the same
    types, bounds and descriptions, every field optional, unknown keys refused."""
    strict = ConfigDict(extra="forbid", allow_inf_nan=False)
    sections: dict[str, Any] = {}
    for section, names in sorted(runtime.items()):
        section_model = Settings.model_fields[section].annotation
        fields: dict[str, Any] = {}
        for name in sorted(names):
            original = section_model.model_fields[name]
            annotation = Annotated[(original.annotation, *original.metadata)] if original.metadata \
                else original.annotation
            fields[name] = (annotation, Field(None, description=original.description,
                                              json_schema_extra=_without_default))
        patch = create_model(f"{section_model.__name__}Patch", __config__=strict, **fields)
        sections[section] = (patch, Field(None, json_schema_extra=_without_default))
    return create_model("SettingsPatch", __config__=strict, **sections)


SettingsPatch = settings_patch_model(RUNTIME_SETTINGS)


@router.get("/v1/config", dependencies=GUARDED, responses=UNAUTHORISED, tags=["config"])
def get_config(state: Served = Depends(served)) -> dict[str, Any]:
    """The loop's current settings (the `Settings` model; see `vigil360 config --schema`)."""
    return state.loop.settings.model_dump(mode="json")  # a read: it never writes the settings back


@router.options("/v1/config", include_in_schema=False)
def config_options() -> Response:
    return Response(status_code=204, headers={"Allow": "GET, HEAD, PUT, OPTIONS"})


@router.put("/v1/config", dependencies=GUARDED, tags=["config"],
            responses={**UNAUTHORISED, 422: {"model": Problem, "description": "the change was rejected"}})
def put_config(patch: SettingsPatch, state: Served = Depends(served)) -> dict[str, Any]:
    """Change runtime settings (a partial settings document, e.g. `{"speech": {"muted": true}}`);
    validated by the same pydantic model. Returns the new settings."""
    try:
        return state.loop.update_settings(patch.model_dump(exclude_unset=True)).model_dump(mode="json")
    except ValidationError as error:
        return JSONResponse({"detail": validation_reasons(error.errors())}, status_code=422)
    except (UserError, ValueError, TypeError) as error:
        return JSONResponse({"detail": str(error)}, status_code=422)


@router.post("/v1/repeat", response_model=AlertEvent, dependencies=GUARDED, tags=["alerts"],
             responses={**UNAUTHORISED, 404: {"model": Problem, "description": "no alert yet"}})
def repeat(state: Served = Depends(served)) -> AlertEvent | JSONResponse:
    """Say the last alert again; returns it."""
    alert = state.loop.repeat_last()
    if alert is None:
        return JSONResponse({"detail": "no alert yet"}, status_code=404)
    return alert
