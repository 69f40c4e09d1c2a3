"""What a synthetic clip is asked to be (`ScenarioSpec`) and the physical truth it comes with.

The ground truth proper is a schema `VideoRecord`; `ScenarioTruth` is its sidecar: per-frame
physical facts for every actor, bystanders included, that the schema has no place for (true
ground distance, whether an actor is a harmless distractor).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vigil360.bench.synthetic.wearer import WearerMode
from vigil360.config import CameraConfig
from vigil360.schema import RLE, AngleBox, Caption, Role

ScenarioKind = Literal["stealing", "collide", "traffic", "throw", "bystander", "lookalikes", "overtake",
                       "standstill", "alongside", "reversing"]
SCENARIO_KINDS: tuple[ScenarioKind, ...] = (
    "stealing",
    "collide",
    "traffic",
    "throw",
    "bystander",
    "lookalikes",
)
# What a walking wearer meets besides the above (issue 12): overtaking from behind, walking up to
# someone standing still, walking with people alongside, a car reversing across the path.
WALKING_KINDS: tuple[ScenarioKind, ...] = ("overtake", "standstill", "alongside", "reversing")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenarioSpec(_Strict):
    """One clip to render. Everything random is drawn from `seed`, so a spec is a clip."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ScenarioKind
    seed: int = Field(0, ge=0, description="drives every random choice of the clip")
    width: int = Field(1920, ge=32, description="equirectangular width (2 x height)")
    height: int = Field(960, ge=16)
    fps: float = Field(30.0, gt=0, le=240)
    duration_s: float = Field(10.0, gt=0, le=600)
    turning_deg_s: float = Field(
        0.0, ge=-90, le=90, description="wearer's yaw rate; positive turns right (scene drifts left)"
    )
    bystanders: int | None = Field(
        None, ge=0, le=6, description="harmless passers-by; None draws 0-2 (1-2 for kind 'bystander')"
    )
    cross_seam: bool | None = Field(
        None, description="stealing/lookalikes: approach across the seam behind the wearer; None draws it"
    )
    noise_sigma: float = Field(2.0, ge=0, le=30, description="sensor noise, grey levels (one sigma)")
    camera_height_m: float = Field(default_factory=lambda: CameraConfig().height_m, gt=0.2, lt=3.0)
    wearer: WearerMode = Field("standing", description="standing (turning_deg_s may turn it), turning, walking "
                                                       "(with gait bob and sway) or mixed (walk, stop, look round)")
    walk_speed_mps: float | None = Field(None, ge=0.3, le=2.5, description="walking speed; None draws 0.5-1.6")
    world: Literal["courtyard", "street"] | None = Field(
        None, description="courtyard (one panorama, no parallax) or street (ray cast per frame from the walking "
                          "camera: facades, parked cars); None: street when the wearer walks")
    backdrop: str | None = Field(
        None, description="a real photograph (Debian blender-data HDRI: city, courtyard, forest, interior, night, "
                          "studio, sunrise, sunset) as the world. Standing or turning: the whole panorama. Walking: "
                          "the street keeps its paving and parked cars near the wearer, and the photograph is all "
                          "that is beyond 30 m; a photograph has no parallax, so it can only stand for what is far")
    exposure: Literal["fixed", "auto"] = Field(
        "fixed", description="auto: slow gain drift plus sudden auto-exposure steps of +-10-25 %")
    shutter_s: float = Field(0.0, ge=0, le=0.05, description="exposure time for motion blur (0: none)")
    exposure_step_before_alert_s: float | None = Field(
        None, ge=0, le=10, description="one auto-exposure step (`exposure_step_gain`) this many seconds before "
                                       "the alert is due (1.5 s before the first actor of the anomaly is within "
                                       "1.5 m); None: no such step. Clips without an approach get none")
    exposure_step_gain: float = Field(1.2, gt=0.5, lt=2.0, description="gain of that step (1.2: +20 %)")

    @model_validator(mode="after")
    def _equirect(self) -> ScenarioSpec:
        if self.width != 2 * self.height:
            raise ValueError(f"equirectangular frames are 2:1; got {self.width}x{self.height}")
        if self.backdrop is not None:
            from vigil360.bench.real_imagery import HDRI_NAMES

            if self.backdrop not in HDRI_NAMES:
                raise ValueError(f"backdrop must be one of {', '.join(HDRI_NAMES)}, got {self.backdrop!r}")
        if self.world == "courtyard" and self.wearer in ("walking", "mixed"):
            raise ValueError("a walking wearer needs world 'street' (the courtyard panorama has no parallax)")
        return self

    @property
    def street(self) -> bool:
        return self.world == "street" or (self.world is None and self.wearer in ("walking", "mixed"))

    @property
    def num_frames(self) -> int:
        return max(1, round(self.duration_s * self.fps))

    @property
    def video_id(self) -> str:
        return f"synth-{self.kind}-{self.seed}"


class ActorTruth(_Strict):
    """Per-frame physical truth of one actor. Lists are aligned with `frames`.

    `yaw` is the bearing of the actor's ground-contact point as the camera sees it (the wearer's
    turning included), `contact_pitch` the pitch of that point on the ground, `distance_m` the
    true ground distance from the wearer, `elevation_m` how far above the ground the actor's
    lowest point is (non-zero for a ball in flight).
    """

    actor_id: str
    label: str
    is_distractor: bool = Field(description="harmless: a correct system must not flag it")
    entity_id: str | None = Field(None, description="the GT entity this actor is; None for distractors")
    role: Role | None = None
    caption: Caption
    frames: list[int] = Field(default_factory=list)
    yaw: list[float] = Field(default_factory=list)
    contact_pitch: list[float] = Field(default_factory=list)
    distance_m: list[float] = Field(default_factory=list)
    elevation_m: list[float] = Field(default_factory=list)
    visible_px: list[int] = Field(default_factory=list)
    boxes: dict[int, AngleBox] = Field(default_factory=dict, description="visible frames only")
    masks: dict[int, RLE] = Field(default_factory=dict, description="visible frames only")

    def first_frame_within(self, metres: float) -> int | None:
        """First frame at which the actor is at most `metres` from the wearer (None if never)."""
        for frame, distance in zip(self.frames, self.distance_m, strict=True):
            if distance <= metres:
                return frame
        return None

    def min_distance_m(self) -> float:
        return min(self.distance_m, default=float("inf"))


class ScenarioTruth(_Strict):
    video_id: str
    spec: ScenarioSpec
    num_frames: int
    event_frame: int | None = Field(None, description="frame of the anomaly's key moment (contact, pass)")
    wearer_yaw: list[float] = Field(default_factory=list, description="per frame, degrees, world frame")
    wearer_pose: list[tuple[float, float, float, float, float]] = Field(
        default_factory=list, description="per frame: x, z (m), camera height (m), pitch, roll (deg)")
    actors: list[ActorTruth] = Field(default_factory=list)

    def actor(self, actor_id: str) -> ActorTruth:
        for actor in self.actors:
            if actor.actor_id == actor_id:
                return actor
        raise KeyError(f"{self.video_id}: no actor {actor_id!r}")

    @property
    def distractors(self) -> list[ActorTruth]:
        return [actor for actor in self.actors if actor.is_distractor]

    def actor_at(self, frame: int, box: AngleBox, min_iou: float = 0.1) -> ActorTruth | None:
        """The actor whose box at `frame` best overlaps `box` (e.g. to tell whether a flagged
        entity was a harmless bystander); None if none reaches `min_iou`."""
        from vigil360.edge.geometry import anglebox_iou

        scored = [(anglebox_iou(box, a.boxes[frame]), a) for a in self.actors if frame in a.boxes]
        best = max(scored, key=lambda pair: pair[0], default=None)
        return best[1] if best is not None and best[0] >= min_iou else None
