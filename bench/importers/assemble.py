"""Fold a video's temporal line, prompt file and instances sidecar into one ground-truth record.

The formats carry prompts, not masks: the authors segment entities by prompting a segmenter.
The record therefore holds each entity's role, caption and its prompt boxes as angle boxes;
masks are added by whoever segments the prompts (or by an importer for released masks).
"""

from __future__ import annotations

from vigil360.bench.importers.instances import VideoInstances
from vigil360.bench.importers.prompts import EntityPrompts, role_of
from vigil360.edge.geometry import pixel_to_angles
from vigil360.records import RecordError
from vigil360.schema import AngleBox, Caption, Entity, Role, Video, VideoRecord


def _anglebox(box: tuple[float, float, float, float]) -> AngleBox:
    x0, y0, x1, y1 = box
    # Relative coordinates are pixels of a 1 x 1 frame; angles do not depend on the frame size.
    yaw, pitch = pixel_to_angles((x0 + x1) / 2.0, (y0 + y1) / 2.0, 1, 1)
    return AngleBox(yaw=float(yaw), pitch=float(pitch), width=(x1 - x0) * 360.0, height=(y1 - y0) * 180.0)


def assemble_record(
    video: Video,
    prompts: dict[str, EntityPrompts] | None = None,
    instances: VideoInstances | None = None,
    *,
    subject_role: Role = "victim",
) -> VideoRecord:
    prompts = prompts or {}
    infos = instances.instances if instances else {}
    if instances and instances.video_caption and not video.caption:
        video = video.model_copy(update={"caption": instances.video_caption})
    entities = []
    for entity_id in list(prompts) + [i for i in infos if i not in prompts]:
        try:
            role = role_of(entity_id, subject_role)
        except ValueError as error:
            raise RecordError(f"video {video.video_id!r}: {error}") from None
        prompt = prompts.get(entity_id)
        caption = prompt.caption() if prompt else None
        if caption is None and entity_id in infos and infos[entity_id].text:
            caption = Caption(appearance=infos[entity_id].text)
        boxes = {frame: _anglebox(box) for frame, box in prompt.boxes.items()} if prompt else {}
        entities.append(Entity(entity_id=entity_id, role=role, caption=caption, boxes=boxes))
    return VideoRecord(kind="ground_truth", video=video, entities=entities)
