"""Settings: one pydantic model, one section per concern, refusing keys it does not know.

Load from a JSON file with `Settings.from_file`; every field has a description so
`vigil360 config --schema` (and the server's /v1/config) can document itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil360.errors import UserError


class Section(BaseModel):
    # A typo in a config file is an error naming the key, never a silently ignored setting.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CameraConfig(Section):
    height_m: float = Field(
        1.2, gt=0.2, lt=3.0,
        description="camera height above the ground in metres (1.2 m suits a chest or shoulder rig)",
    )
    height_sigma_m: float = Field(0.1, ge=0, description="uncertainty of height_m (one sigma)")
    fps: float = Field(30.0, gt=0, description="nominal frame rate when the source does not say")


class Settings(Section):
    camera: CameraConfig = Field(default_factory=CameraConfig)

    @classmethod
    def from_file(cls, path: str | Path) -> Settings:
        path = Path(path)
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise UserError(f"{path}: settings file not found") from None
        except ValidationError as error:
            from vigil360.records import describe_validation_error

            raise UserError(describe_validation_error(error, str(path))) from None
