"""Rendering synthetic clips by exact ray casting, and their ground truth.

For each actor only the pixels inside its angular bounding box are cast: the ray of pixel
(yaw, pitch) meets the camera-facing billboard of an actor at ground distance d and bearing a
at u = d tan(yaw - a) metres across and v = h + d tan(pitch) / cos(yaw - a) metres up, which
is separable per row and column, so a frame costs a few vectorised operations per actor.
Actors are drawn far to near into a label map, so masks are exactly the visible pixels and
never overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from vigil360.bench.synthetic.camera import Exposure, camera_rotation, rotate_equirect, rotation_maps
from vigil360.bench.synthetic.scripts import Actor, Scene, build_scene
from vigil360.bench.synthetic.spec import ActorTruth, ScenarioSpec, ScenarioTruth
from vigil360.bench.synthetic.sprites import Look, paint
from vigil360.bench.synthetic.street import Street, pink_noise
from vigil360.bench.synthetic.wearer import Pose, WearerMotion
from vigil360.bench.synthetic.world import Courtyard, background
from vigil360.edge.geometry import mask_to_anglebox, sector, wrap_yaw
from vigil360.schema import RLE, AnomalyInterval, Entity, Video, VideoRecord

# The wearer needs a warning this long before anything of an anomaly is this close (the recall criterion
# of `vigil360 bench reflex`; an exposure step can be placed relative to it).
APPROACH_RADIUS_M = 1.5
ALERT_LEAD_S = 1.5
_NOISE_BANK = 4  # pre-drawn noise frames, cycled in a seeded order (drawing per frame is too slow)
_SHADE_BANDS = 16
_CLOTH_TEXELS = 64  # cloth texture tile (texels), at _CLOTH_PER_M texels per metre of billboard
_CLOTH_PER_M = 60.0


@dataclass(frozen=True)
class _Placement:
    index: int  # label value in the label map is index + 1
    actor: Actor
    yaw: float  # camera bearing of the ground-contact point, degrees
    distance: float
    elevation: float
    cam_h: float  # camera height above the ground this frame


def _photograph(name: str, width: int) -> np.ndarray:
    """A real photograph as the world, resampled to the frame's width (it is 1024 px wide: at 1920 px it is
    upsampled, softer than a real 1920-px camera would see)."""
    from vigil360.bench.real_imagery import load_hdri

    return load_hdri(name, width)


def keep_off(actor: Actor, wearer: WearerMotion, duration_s: float, step_s: float = 0.05) -> Actor:
    """The actor, its world-anchored track moved sideways until it keeps the distance its script promises
    (`Actor.keep_off_m`) from the wearer throughout the clip. A passer-by is drawn about where a standing
    wearer would be; a walking one moves 5-13 m in a clip, and without this a "bystander" walked into the
    wearer (0.5 m) and was scored a false flag when the tier warned of it."""
    if actor.keep_off_m is None or actor.anchor != "world" or not wearer.translates:
        return actor
    times = np.arange(0.0, duration_s + step_s, step_s)
    poses = [wearer.pose(float(t)) for t in times]
    wearer_xz = np.array([[pose.x, pose.z] for pose in poses])
    track = actor.track
    for _ in range(8):  # each move clears the nearest point; a straight walk needs one, a stop two
        x, z, _ = track.position(times)
        relative = np.stack([x, z], axis=1) - wearer_xz
        gaps = np.hypot(relative[:, 0], relative[:, 1])
        nearest = int(np.argmin(gaps))
        if gaps[nearest] >= actor.keep_off_m:
            return replace(actor, track=track)
        away = relative[nearest] / gaps[nearest] if gaps[nearest] > 1e-6 else np.array([1.0, 0.0])
        shift = away * (actor.keep_off_m - gaps[nearest] + 0.05)
        track = replace(track, x=track.x + shift[0], z=track.z + shift[1])
    raise RuntimeError(f"{actor.actor_id}: could not keep {actor.keep_off_m} m off the wearer's walk")


class _Renderer:
    def __init__(self, spec: ScenarioSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        self.scene: Scene = build_scene(spec, rng)
        self.yard = Courtyard.draw(rng)
        self.event_s = self.scene.event_s if self.scene.event_s is not None else spec.duration_s / 2
        self.width, self.height, self.cam_h = spec.width, spec.height, spec.camera_height_m
        self._rng = rng
        # A second stream for what issue 12 added, so clips of a standing wearer stay as they were.
        extra = np.random.default_rng([spec.seed, 12])
        self.wearer = WearerMotion.draw(spec.wearer, extra, spec.camera_height_m, self.event_s, spec.duration_s,
                                        spec.turning_deg_s, spec.walk_speed_mps)
        self.scene.actors = [keep_off(actor, self.wearer, spec.duration_s) for actor in self.scene.actors]
        self.street = Street.draw(extra) if spec.street else None
        if self.street is not None and spec.backdrop is not None:
            self.street.backdrop = _photograph(spec.backdrop, spec.width)
        self.exposure = Exposure.draw(extra, spec.duration_s) if spec.exposure == "auto" else Exposure.fixed()
        if spec.exposure_step_before_alert_s is not None:
            due = self.alert_due_s()
            if due is not None:
                self.exposure = self.exposure.with_step(due - spec.exposure_step_before_alert_s,
                                                        spec.exposure_step_gain)
        self.cloth = (1.0 + 0.12 * np.clip(pink_noise((_CLOTH_TEXELS, _CLOTH_TEXELS), extra), -2.5, 2.5)).astype(
            np.float32)
        self._background: np.ndarray | None = None
        self._noise: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._palettes: dict[Look, list[np.ndarray]] = {}
        # tan(pitch) of each pixel row (geometry's convention), clipped off the poles.
        pitch = (self.height / 2.0 - np.arange(self.height)) * (np.pi / self.height)
        self.row_tan = np.tan(np.clip(pitch, -np.pi / 2 + 1e-6, np.pi / 2 - 1e-6)).astype(np.float32)

    def alert_due_s(self) -> float | None:
        """When an alert about the first approach is due: `ALERT_LEAD_S` before an actor of the anomaly
        first comes within `APPROACH_RADIUS_M` (the bench's recall criterion); None without an approach."""
        for index in range(self.spec.num_frames):
            t = index / self.spec.fps
            if any(not place.actor.is_distractor and place.distance <= APPROACH_RADIUS_M
                   for place in self.placements(t)):
                return t - ALERT_LEAD_S
        return None

    def wearer_yaw(self, t: float) -> float:
        return self.wearer.pose(t).yaw

    def _textures(self) -> None:
        if self._background is not None or self._noise is not None:
            return
        if self.street is None:
            # Stored twice side by side so any yaw rotation is one slice, with no wrap-around copy.
            if self.spec.backdrop is None:
                panorama = background(self.width, self.height, self.cam_h, self.yard, self._rng)
            else:
                panorama = _photograph(self.spec.backdrop, self.width)
            self._background = np.concatenate([panorama, panorama], axis=1)
        self._noise = []
        if self.spec.noise_sigma > 0:
            for _ in range(_NOISE_BANK):
                noise = self._rng.standard_normal((self.height, self.width, 3), dtype=np.float32)
                noise = np.clip(np.round(noise * self.spec.noise_sigma), -255, 255)
                self._noise.append(
                    (np.maximum(noise, 0).astype(np.uint8), np.maximum(-noise, 0).astype(np.uint8))
                )

    def _shaded_palette(self, look: Look) -> list[np.ndarray]:
        """Per channel, a 256-entry LUT from (palette index + 8 * shade band) to intensity."""
        if look not in self._palettes:
            shade = 1.0 - 0.25 * np.linspace(0.0, 1.0, _SHADE_BANDS) ** 2
            table = np.zeros((256, 3), dtype=np.uint8)
            table[: 8 * _SHADE_BANDS] = (
                shade[:, None, None] * look.palette()[None].astype(np.float64)
            ).reshape(-1, 3)
            self._palettes[look] = [np.ascontiguousarray(table[:, c]) for c in range(3)]
        return self._palettes[look]

    def _rotated_background(self, wearer_yaw: float) -> np.ndarray:
        """The background as seen by a wearer turned `wearer_yaw` degrees to the right: frame
        column x shows world column x + shift, blended linearly for sub-pixel shifts."""
        assert self._background is not None
        shift = (wearer_yaw * self.width / 360.0) % self.width
        whole, fraction = int(shift), shift - int(shift)
        left = self._background[:, whole : whole + self.width]
        if fraction < 1e-3:
            return left.copy()
        right = self._background[:, whole + 1 : whole + 1 + self.width]
        return cv2.addWeighted(left, 1.0 - fraction, right, fraction, 0.0)

    def placements(self, t: float, pose: Pose | None = None) -> list[_Placement]:
        """Active actors at time t, far to near (the drawing order)."""
        pose = self.wearer.pose(t) if pose is None else pose
        out = []
        for index, actor in enumerate(self.scene.actors):
            if not actor.track.active(t):
                continue
            x, z, elevation = (float(v) for v in actor.track.position(t))
            # Relative to the camera: a world-anchored actor minus where the wearer is; a wearer-anchored
            # one is scripted relative to the wearer already.
            if actor.anchor == "world":
                rel_x, rel_z, world_x, world_z = x - pose.x, z - pose.z, x, z
            else:
                rel_x, rel_z, world_x, world_z = x, z, x + pose.x, z + pose.z
            inside = self.street.contains(world_x, world_z) if self.street is not None else self.yard.contains(x, z)
            if not inside:
                continue
            distance = float(np.hypot(rel_x, rel_z))
            yaw = float(wrap_yaw(np.degrees(np.arctan2(rel_x, rel_z)) - pose.yaw))
            out.append(_Placement(index, actor, yaw, distance, elevation, pose.height_m))
        return sorted(out, key=lambda p: -p.distance)

    def _draw(self, place: _Placement, t: float, labels_t: np.ndarray, image: np.ndarray | None) -> None:
        """Paint one actor; `labels_t` is the label map transposed (W x H) for cheap mask encoding."""
        look, track = place.actor.look, place.actor.track
        reach = track.reach_at(t)
        half_w = look.half_width_m(reach)
        d = max(place.distance, 0.1)
        top = place.elevation + look.height_m
        # Angular box: yaw half-extent, and pitch extremes over the billboard's corners and centre line.
        yaw_half = np.arctan(half_w / d)
        far = np.hypot(d, half_w)
        cam_h = place.cam_h
        pitches = np.arctan2(
            np.array([place.elevation, top, place.elevation, top]) - cam_h, np.array([d, d, far, far])
        )
        w, h = self.width, self.height
        r0 = max(int(np.floor(h / 2.0 - pitches.max() * h / np.pi)) - 1, 0)
        r1 = min(int(np.ceil(h / 2.0 - pitches.min() * h / np.pi)) + 2, h)
        centre = np.radians(place.yaw) * w / (2 * np.pi) + w / 2.0
        c0 = int(np.floor(centre - yaw_half * w / (2 * np.pi))) - 1
        c1 = min(int(np.ceil(centre + yaw_half * w / (2 * np.pi))) + 2, c0 + w)
        if r1 <= r0:
            return
        cols = np.arange(c0, c1)
        delta = (cols - w / 2.0) * (2 * np.pi / w) - np.radians(place.yaw)
        delta = (delta + np.pi) % (2 * np.pi) - np.pi
        u = d * np.tan(delta)
        v = (cam_h - place.elevation) + (d * self.row_tan[r0:r1, None]) / np.cos(delta).astype(
            np.float32
        )
        stride = min(track.speed(t) / 1.4, 1.0)
        phase = 2 * np.pi * track.walked(t) / 1.4
        part = paint(look, u, v, reach, phase, stride)
        hit = part > 0
        if not hit.any():
            return
        colour = None
        if image is not None:
            # A little horizontal shading so sprites look round rather than cut out of paper: the
            # shade band of each column is folded into the palette index, then one LUT per channel.
            band = np.round(np.clip(np.abs(u) / half_w, 0, 1) * (_SHADE_BANDS - 1)).astype(np.uint8)
            index = part + (band * 8)[None, :]
            colour = cv2.merge([cv2.LUT(index, lut) for lut in self._shaded_palette(look)])
            if self.spec.street:
                # Cloth and paint are not flat: a 1/f texture fixed to the billboard, and light from above.
                ti = (np.abs(v) * _CLOTH_PER_M).astype(np.int32) % _CLOTH_TEXELS
                tj = (np.abs(u) * _CLOTH_PER_M).astype(np.int32)[None, :] % _CLOTH_TEXELS
                light = self.cloth[ti, tj] * (0.85 + 0.2 * np.clip(v / look.height_m, 0, 1))
                colour = np.clip(colour * light[..., None], 0, 255).astype(np.uint8)
        wrapped = cols % w
        # A box that runs over the seam is written as two contiguous column runs.
        cut = int(np.argmin(wrapped)) if wrapped[0] > wrapped[-1] else cols.size
        for s0, s1 in ((0, cut), (cut, cols.size)):
            if s1 <= s0:
                continue
            a, b = int(wrapped[s0]), int(wrapped[s1 - 1]) + 1
            seg_hit = hit[:, s0:s1]
            np.copyto(labels_t[a:b, r0:r1], np.uint8(place.index + 1), where=seg_hit.T)
            if image is not None and colour is not None:
                cv2.copyTo(colour[:, s0:s1], seg_hit.view(np.uint8), image[r0:r1, a:b])

    def frame(
        self, index: int, with_image: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray, list[_Placement]]:
        """(image or None, transposed label map, placements) of frame `index`."""
        t = index / self.spec.fps
        image, labels_t, places = self._compose(t, with_image)
        if image is not None and self.spec.shutter_s > 0:
            # Motion blur: the mean of the scene at the start and the end of the exposure.
            earlier, _, _ = self._compose(t - self.spec.shutter_s, True)
            image = cv2.addWeighted(image, 0.5, earlier, 0.5, 0.0)
        if image is not None and not self.exposure.is_fixed:
            image = cv2.convertScaleAbs(image, alpha=self.exposure.gain(t))
        if image is not None and self._noise:
            plus, minus = self._noise[(index * 7 + self.spec.seed) % len(self._noise)]
            cv2.add(image, plus, dst=image)
            cv2.subtract(image, minus, dst=image)
        return image, labels_t, places

    def _compose(self, t: float, with_image: bool) -> tuple[np.ndarray | None, np.ndarray, list[_Placement]]:
        """The scene at time t, tilted with the wearer's head: (image or None, transposed labels, placements)."""
        pose = self.wearer.pose(t)
        image = None
        if with_image:
            self._textures()
            if self.street is not None:
                image = self.street.render(self.width, self.height, pose.x, pose.z, pose.height_m, pose.yaw)
            else:
                image = self._rotated_background(pose.yaw)
        labels_t = np.zeros((self.width, self.height), dtype=np.uint8)
        places = self.placements(t, pose)
        for place in places:
            self._draw(place, t, labels_t, image)
        if pose.pitch or pose.roll:
            rotation = camera_rotation(pose.pitch, pose.roll)
            maps = rotation_maps(self.width, self.height, rotation)
            if image is not None:
                image = rotate_equirect(image, rotation, maps=maps)
            labels_t = np.ascontiguousarray(rotate_equirect(np.ascontiguousarray(labels_t.T), rotation, True,
                                                            maps=maps).T)
        return image, labels_t, places


class _TruthBuilder:
    """Accumulates per-frame masks and physical truth into the GT record and its sidecar."""

    def __init__(self, renderer: _Renderer) -> None:
        self.r = renderer
        spec = renderer.spec
        self.actors = [
            ActorTruth(
                actor_id=a.actor_id,
                label=a.label,
                is_distractor=a.is_distractor,
                entity_id=None if a.is_distractor else a.actor_id,
                role=a.role,
                caption=a.caption,
            )
            for a in renderer.scene.actors
        ]
        self.wearer_yaw: list[float] = []
        self.wearer_pose: list[tuple[float, ...]] = []
        self.num_frames = spec.num_frames

    def add(self, index: int, labels_t: np.ndarray, places: list[_Placement]) -> None:
        from pycocotools import mask as coco_mask

        pose = self.r.wearer.pose(index / self.r.spec.fps)
        self.wearer_yaw.append(round(pose.yaw, 4))
        self.wearer_pose.append(tuple(round(v, 4) for v in (pose.x, pose.z, pose.height_m, pose.pitch, pose.roll)))
        for place in places:
            truth = self.actors[place.index]
            truth.frames.append(index)
            truth.yaw.append(round(place.yaw, 4))
            truth.contact_pitch.append(round(float(np.degrees(np.arctan2(-place.cam_h, place.distance))), 4))
            truth.distance_m.append(round(place.distance, 4))
            truth.elevation_m.append(round(place.elevation, 4))
            mask_t = labels_t == place.index + 1
            pixels = int(np.count_nonzero(mask_t))
            truth.visible_px.append(pixels)
            if pixels == 0:
                continue
            mask = mask_t.T  # Fortran-ordered (H, W) view: what pycocotools wants, without a copy
            raw = coco_mask.encode(mask.view(np.uint8))
            truth.masks[index] = RLE(
                size=(int(raw["size"][0]), int(raw["size"][1])), counts=raw["counts"].decode("ascii")
            )
            box = mask_to_anglebox(mask)
            if box is not None:
                truth.boxes[index] = box

    def _frame(self, seconds: float) -> int:
        return int(np.clip(round(seconds * self.r.spec.fps), 0, self.num_frames - 1))

    def build(self) -> tuple[VideoRecord, ScenarioTruth]:
        spec, scene = self.r.spec, self.r.scene
        intervals = []
        for interval in scene.intervals:
            if interval.end_s < 0 or interval.start_s > (self.num_frames - 1) / spec.fps:
                continue
            start, end = self._frame(interval.start_s), self._frame(interval.end_s)
            subject = next(a for a in self.actors if a.actor_id == interval.subject)
            at = [i for i, f in enumerate(subject.frames) if start <= f <= end]
            # The direction is where the subject is at its closest during the interval.
            direction = None
            if at:
                nearest = min(at, key=lambda i: subject.distance_m[i])
                direction = sector(subject.yaw[nearest])
            intervals.append(
                AnomalyInterval(
                    start_frame=start,
                    end_frame=end,
                    anomaly_class=interval.anomaly_class,
                    direction=direction,
                )
            )
        video = Video(
            video_id=spec.video_id,
            fps=spec.fps,
            width=spec.width,
            height=spec.height,
            num_frames=self.num_frames,
            intervals=intervals,
            dataset="synthetic",
            caption=scene.caption,
        )
        entities = [
            Entity(
                entity_id=a.entity_id,
                role=a.role,
                label=a.label,
                caption=a.caption,
                masks=dict(a.masks),
                boxes=dict(a.boxes),
            )
            for a in self.actors
            if a.entity_id is not None and a.role is not None
        ]
        record = VideoRecord(kind="ground_truth", system="vigil360-synth", video=video, entities=entities)
        event = None if scene.event_s is None else self._frame(scene.event_s)
        sidecar = ScenarioTruth(
            video_id=spec.video_id,
            spec=spec,
            num_frames=self.num_frames,
            event_frame=event,
            wearer_yaw=self.wearer_yaw,
            wearer_pose=self.wearer_pose,
            actors=self.actors,
        )
        return record, sidecar


@dataclass
class Clip:
    """A rendered clip held in memory: frames (N, H, W, 3) uint8 BGR and its truth."""

    spec: ScenarioSpec
    frames: np.ndarray
    truth: VideoRecord
    scenario: ScenarioTruth


def iter_frames(spec: ScenarioSpec) -> Iterator[np.ndarray]:
    """Stream the clip's frames (uint8 BGR, H x W x 3) without holding them all."""
    renderer = _Renderer(spec)
    for index in range(spec.num_frames):
        image, _, _ = renderer.frame(index)
        assert image is not None
        yield image


def render_to(
    spec: ScenarioSpec, sink: Callable[[np.ndarray], None] | None
) -> tuple[VideoRecord, ScenarioTruth]:
    """Hand every frame, in order, to `sink` (None: masks only) and return the clip's truth."""
    renderer = _Renderer(spec)
    builder = _TruthBuilder(renderer)
    for index in range(spec.num_frames):
        image, labels_t, places = renderer.frame(index, with_image=sink is not None)
        builder.add(index, labels_t, places)
        if sink is not None and image is not None:
            sink(image)
    return builder.build()


def ground_truth(spec: ScenarioSpec) -> tuple[VideoRecord, ScenarioTruth]:
    """The clip's ground truth only (no pixels are coloured: a fraction of the rendering cost)."""
    return render_to(spec, None)


_MAX_IN_MEMORY_BYTES = 2 << 30


def render(spec: ScenarioSpec) -> Clip:
    """Render a whole clip into memory (small clips: tests, notebooks). Use `write_clip` for big ones."""
    size = spec.num_frames * spec.width * spec.height * 3
    if size > _MAX_IN_MEMORY_BYTES:
        raise ValueError(
            f"{spec.video_id}: {size / 2**30:.1f} GiB of frames is too much to hold; "
            "stream with iter_frames() or write_clip()"
        )
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    count = 0

    def keep(image: np.ndarray) -> None:
        nonlocal count
        frames[count] = image
        count += 1

    record, scenario = render_to(spec, keep)
    return Clip(spec, frames, record, scenario)


_MOVED_TO_SUITE = {
    "ClipFiles",
    "find_clips",
    "make_suite",
    "read_scenario",
    "suite_specs",
    "write_clip",
    "write_scenario",
}


def __getattr__(name: str) -> object:
    # File-level helpers live in `suite` (which imports this module); early callers imported
    # them from here, so keep that working.
    if name in _MOVED_TO_SUITE:
        from vigil360.bench.synthetic import suite

        return getattr(suite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
