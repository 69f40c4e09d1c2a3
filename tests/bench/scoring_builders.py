"""Small record builders shared by the scoring tests."""

from __future__ import annotations

import numpy as np

from vigil360.masks import encode
from vigil360.schema import AngleBox, AnomalyInterval, Caption, Entity, Role, Video, VideoRecord

H, W = 10, 20


def columns(start: int, stop: int) -> np.ndarray:
    """A full-height mask over columns [start, stop) of an H x W frame."""
    mask = np.zeros((H, W), dtype=bool)
    mask[:, start:stop] = True
    return mask


def entity(
    entity_id: str,
    masks: dict[int, np.ndarray],
    role: Role = "perpetrator",
    caption: str | None = None,
    alert: int | None = None,
    yaw: float | None = None,
) -> Entity:
    return Entity(
        entity_id=entity_id,
        role=role,
        masks={f: encode(m) for f, m in masks.items()},
        caption=Caption(appearance=caption) if caption else None,
        first_alert_frame=alert,
        boxes={f: AngleBox(yaw=yaw, pitch=0, width=10, height=20) for f in masks} if yaw is not None else {},
    )


def record(
    kind: str,
    entities: list[Entity],
    video_id: str = "v1",
    onset: int | None = None,
    direction: str | None = None,
    anomaly_class: str = "Stealing",
    dataset: str = "synthetic",
) -> VideoRecord:
    intervals = (
        [
            AnomalyInterval(
                start_frame=onset, end_frame=onset + 10, anomaly_class=anomaly_class, direction=direction
            )
        ]
        if onset is not None
        else []
    )
    video = Video(video_id=video_id, fps=30.0, width=W, height=H, intervals=intervals, dataset=dataset)
    return VideoRecord(kind=kind, video=video, entities=entities)  # type: ignore[arg-type]
