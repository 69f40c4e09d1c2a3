"""The reflex tier: weight-free perception that runs on every frame (issues 4 and 12).

frame -> downscale -> ego-motion -> motion regions -> tracks -> distance, risk, appearance.
The "whom" of every reflex track is the wearer; the mover is the perpetrator.

Ego-motion has two parts: the turn about the vertical as a drift-free shift of the horizon band
(`ego.EgoRotation`, which keeps a standing wearer's background model aligned), and the full
rotation plus the direction and speed of travel from flow on the sphere (`ego_motion`). While the
wearer stands or turns, movers are the foreground of a background model; once they walk (the
flow's metric speed above a threshold), a background model is useless (parallax slides everything)
and movers are the flow a static world cannot explain. Head pitch and roll are integrated from the
flow fits and leaked toward level, and every contact is levelled with them before its range is
taken. All timing is in seconds, so the tier behaves the same from 10 to 60 fps.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field

import cv2
import numpy as np

from vigil360 import masks
from vigil360.config import Settings
from vigil360.edge.geometry import Distance, check_equirect_shape, ground_distance
from vigil360.edge.reflex.appearance import Appearance, measure_appearance
from vigil360.edge.reflex.cones import FocusCones, chain
from vigil360.edge.reflex.ego import EgoRotation
from vigil360.edge.reflex.ego_motion import EgoMotion, EgoStep
from vigil360.edge.reflex.imu import GyroTrack
from vigil360.edge.reflex.motion import MotionProposer, Region
from vigil360.edge.reflex.residual import ResidualForeground, textured
from vigil360.edge.reflex.risk import RiskAssessment, assess
from vigil360.edge.reflex.tracker import AngleTracker, Track
from vigil360.schema import RLE, AngleBox

# "window": what the worker thread's jobs cost the frame's own thread beyond the ego stage: the wait for this
# frame's window behind a walking wearer (`cones`, started within "ego") and for the last frame's turn (`ego`).
STAGES: tuple[str, ...] = ("downscale", "ego", "window", "motion", "track", "risk", "appearance")
log = logging.getLogger(__name__)

# Walking starts above this speed over ground and ends below the lower one (hysteresis: the speed
# estimate is noisy, and every switch re-seeds a background model).
_WALK_START_MPS = 0.35
_WALK_STOP_MPS = 0.2
# One pair's speed (unsmoothed) above which a standing wearer has set off: the background model is stale.
_SET_OFF_MPS = _WALK_STOP_MPS
# Share of the frame in the background model's foreground beyond which the model, not the world, changed
# (a person at arm's length covers ~5 %, a car alongside ~6 %).
_FLOODED_SHARE = 0.2
# Head pitch and roll from integrated flow drift; a head is level on average over a couple of seconds.
_LEVEL_TAU_S = 2.0
_SPEED_TAU_S = 0.5
_RATE_WINDOW_S = 2.0
_LEVEL_MIN_DEG = 0.05  # head tilt below which the frame is used as it is
_MAX_LAG_S = 0.5


@dataclass
class ReflexTrack:
    """One live track as the loop sees it. Angles in degrees, distances in metres.

    `reason` is the rule behind `risk`: "approaching fast", "close behind you", "crossing in
    front", "passing close at speed", or "" when no rule applies. `tau_s` is the looming time to
    contact (None unless the entity is clearly growing). The mover is the perpetrator; the one
    affected (`whom`) is always the wearer in this tier.
    """

    track_id: int
    box: AngleBox
    mask: np.ndarray | None  # bool at the tier's working resolution; None while coasting
    distance: Distance
    risk: float
    reason: str
    flagged: bool
    tau_s: float | None
    appearance: Appearance
    first_seen_s: float
    age_frames: int
    missed_frames: int = 0
    closing_mps: float | None = None
    # (time, RLE) of the last `mask_history_frames` masks, at the working resolution (cheap to keep).
    mask_history: list[tuple[float, RLE]] = field(default_factory=list)
    role: str = "perpetrator"
    whom: str = "you"

    def mask_rle(self, width: int, height: int) -> RLE:
        """The mask upsampled to a full (width x height) frame, COCO RLE; empty while coasting."""
        return masks.empty(height, width) if self.mask is None else masks.upsampled(self.mask, width, height)


@dataclass
class _TrackMemory:
    """What the tier remembers per track beyond the tracker's geometry."""

    appearance: Appearance | None = None
    measured_s: float = -np.inf  # when the appearance was last measured
    flagged: bool = False
    above_since: float | None = None  # since when risk has been at or above the threshold, without a break
    above_frames: int = 0
    mask_history: deque = field(default_factory=deque)


class ReflexPerception:
    def __init__(self, width: int, height: int, settings: Settings | None = None) -> None:
        check_equirect_shape(width, height)
        self.settings = settings or Settings()
        self.config = self.settings.reflex
        self.width, self.height = width, height
        self.work_width = min(self.config.work_width, width)
        self.work_height = self.work_width // 2
        self.ego = EgoRotation(self.work_width)
        self.residual = ResidualForeground(self.work_width, self.work_height)
        self.ego_motion = EgoMotion(self.work_width, self.work_height, self.settings.camera.height_m,
                                    residual_rows=self.residual.rows)
        self.motion = MotionProposer(self.work_width, self.work_height, self.config, self.settings.camera.height_m,
                                     downscaled=self.work_width < width)
        # A finer window behind a walking wearer (`cones`): it needs whole working pixels. It reads at most
        # twice the working width: its dense flow stops at the working grid either way, and the per-pixel
        # tests on a 1920-px band cost ~3.5x those on a 960-px one (held-out walking figures were taken at 960).
        window_width = next((w for w in (2 * self.work_width, self.work_width) if width % w == 0), None)
        self.cones = (None if window_width is None else
                      FocusCones(window_width, window_width // 2, self.work_width, self.work_height,
                                 self.settings.camera.height_m, source_width=width))
        if self.cones is None:
            log.warning("reflex tier: %dx%d is not a whole multiple of the working width %d, so movers near the "
                        "focus of contraction of a walking wearer are found by the short pair only", width, height,
                        self.work_width)
        self._worker = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reflex-window")
        self._window_job: futures.Future | None = None  # this frame's window, until collected
        self._rotation_job: futures.Future | None = None  # the turn of the last walking frame (`ego`)
        self.tracker = AngleTracker(self.config)
        self.pitch_sigma_deg = 180.0 / self.work_height  # the contact row is known to one pixel
        self.timings_ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.frame_index = 0
        self._last_time: float | None = None
        self._first_time: float | None = None
        self._memory: dict[int, _TrackMemory] = {}
        # Ego state, per frame time: heading (deg, world), head pitch and roll (deg), and the wearer's
        # position on the ground (m, world x right / z ahead of the first heading).
        self.walking = False
        self.speed_mps = 0.0
        self.heading_deg = 0.0
        self.attitude = (0.0, 0.0)
        self.position = np.zeros(2)
        self._velocity = np.zeros(2)
        self._poses: dict[float, tuple[float, float, float]] = {}
        self._times: deque[float] = deque()
        self.rate_warning: str | None = None
        self._last_pose_time: float | None = None
        self.gyro: GyroTrack | None = None
        self._steps: dict[float, EgoStep] = {}  # recent ego steps by frame time, chained into the cones' long pair

    def use_gyro(self, gyro: GyroTrack | None) -> None:
        """Take the camera's rotation from this gyro (see `imu`) wherever its samples cover a frame pair."""
        self.gyro = gyro

    def _check_frame(self, frame: np.ndarray, timestamp_s: float) -> None:
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"frame must be a numpy array, got {type(frame).__name__}")
        expected = (self.height, self.width, 3)
        if frame.dtype != np.uint8 or frame.shape != expected:
            raise ValueError(
                f"frame must be uint8 of shape {expected} (H, W, BGR), got {frame.dtype} {frame.shape}"
            )
        if self._last_time is not None and not timestamp_s > self._last_time:
            raise ValueError(f"timestamps must increase: {timestamp_s} after {self._last_time}")

    def process(self, frame: np.ndarray, timestamp_s: float) -> list[ReflexTrack]:
        """All live tracks after this frame (matched, or coasting through a short occlusion)."""
        self._check_frame(frame, timestamp_s)
        self._last_time = timestamp_s
        if self._first_time is None:
            self._first_time = timestamp_s
        self.frame_index += 1
        clock = time.perf_counter
        t0 = clock()
        if self.work_width == self.width:
            small = frame
        else:
            small = cv2.resize(frame, (self.work_width, self.work_height), interpolation=cv2.INTER_AREA)
        self._check_rate(timestamp_s)
        t1 = clock()
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        # Dense flow (and its residual) only while walking, or about to: standing needs the sparse fit alone.
        dense = self.speed_mps > _WALK_STOP_MPS
        step = self.ego_motion.update(gray, timestamp_s, self.gyro, dense=dense)
        self._update_pose(step, timestamp_s)
        # The window behind a walking wearer (`cones`) needs only the fit: it runs on the worker thread beside
        # this frame's residual and texture gate (OpenCV and numpy let go of the interpreter; on two cores this
        # hides much of it). It is waited for here, so each frame joins its own window.
        window = None if self.cones is None else self._start_window(frame, step, timestamp_s, dense)
        residual = self.ego_motion.residual(step) if self.walking and step is not None else None
        texture = None if residual is None else textured(self.ego_motion.min_eigen)
        t2 = clock()
        near_foci = None if window is None else window.result()
        self._window_job = None
        if self._rotation_job is not None:
            self._rotation_job.result()
            self._rotation_job = None
        tw = clock()
        levelled = False
        if self.walking:
            # Kept current for when the wearer stops, and read by nothing until then: on the worker, beside this frame.
            self._rotation_job = self._worker.submit(self.ego.update, gray)
            moving = None if residual is None else self.residual.update(residual, near_foci, texture)
            regions = [] if moving is None else self.motion.regions(moving, self.residual.rows)
        else:
            # The background model needs the world where it was: a standing head still nods and sways
            # by a degree or more, which is hundreds of spurious regions on textured scenes.
            pitch, roll = self.attitude
            if max(abs(pitch), abs(roll)) > _LEVEL_MIN_DEG:
                map_x, map_y = self.ego_motion.field.level_maps(pitch, roll)
                small_level = cv2.remap(small, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
                gray = cv2.cvtColor(small_level, cv2.COLOR_BGR2GRAY)
                levelled = True
            else:
                small_level = small
            # The turn is read from the levelled frame too: a roll shifts the horizon band unevenly.
            offset = self.ego.update(gray)
            regions = self.motion.propose(small_level, offset, timestamp_s)
            foreground = self.motion.last_foreground
            flooded = (foreground is not None and regions
                       and cv2.countNonZero(foreground) > _FLOODED_SHARE * foreground.size)
            if flooded or (step is not None and step.speed_mps > _SET_OFF_MPS):
                # The wearer has set off, but the smoothed speed has not yet switched to the residual: the
                # background model learnt where they stood, and every near edge now slides with parallax
                # (or some other change floods it). Its regions are dropped (it keeps learning), rather
                # than tracked into false approaches: no entity covers a fifth of the sphere.
                regions = []
        camera = self.settings.camera
        for region in regions:
            if not levelled:
                self._level(region)
            region.distance = ground_distance(region.contact_pitch, camera.height_m, self.pitch_sigma_deg,
                                              camera.height_sigma_m)
        t3 = clock()
        tracks = self.tracker.step(regions, timestamp_s, self.heading_deg, (float(self.position[0]),
                                                                            float(self.position[1])))
        live_ids = {track.track_id for track in self.tracker.tracks}
        self._memory = {tid: mem for tid, mem in self._memory.items() if tid in live_ids}
        t4 = clock()
        results, risk_ms, appearance_ms = [], 0.0, 0.0
        for track in tracks:
            a = clock()
            result_parts = self._risk(track)
            b = clock()
            appearance = self._appearance(track, small, result_parts[0])
            c = clock()
            risk_ms += b - a
            appearance_ms += c - b
            results.append(self._result(track, appearance, *result_parts))
        self.timings_ms = {
            "downscale": (t1 - t0) * 1e3, "ego": (t2 - t1) * 1e3, "window": (tw - t2) * 1e3, "motion": (t3 - tw) * 1e3,
            "track": (t4 - t3) * 1e3, "risk": risk_ms * 1e3, "appearance": appearance_ms * 1e3,
        }
        return results

    def _start_window(self, frame: np.ndarray, step: EgoStep | None, timestamp_s: float, dense: bool
                      ) -> futures.Future | None:
        """Movers behind a walking wearer, from a long, finer pair (`cones`) whose motion is the chain of the
        last short-pair fits, started on the worker thread; None until there is a pair, or while not walking.

        Tried and left out (BENCHMARKS.md, issue 12, fast12): collecting it on the next frame instead, so that
        it overlapped that frame's start too (its mask one frame late: a development look-alike thief was
        never alerted instead of 0.30 s ahead), and at most every 1/15 s with its mask held over the frames
        between (a held mask counts twice in the residual's two-of-three vote: a thief's lead 1.47 -> 0.20 s)."""
        if self._window_job is not None:
            futures.wait([self._window_job])  # one left running by an error on the last frame: bands change now
            self._window_job = None
        if not dense:
            return None
        self.cones.remember(frame, timestamp_s)
        if step is not None:
            self._steps[timestamp_s] = step
        self._steps = {t: s for t, s in self._steps.items() if timestamp_s - t <= 1.0}
        pair = chain(self._steps, timestamp_s) if self.walking else None
        if pair is not None:
            self._window_job = self._worker.submit(self.cones.moving, timestamp_s, pair)
        return self._window_job

    def _check_rate(self, timestamp_s: float) -> None:
        """Warn (once per episode) while the effective frame rate is below `min_rate_fps`."""
        self._times.append(timestamp_s)
        while timestamp_s - self._times[0] > _RATE_WINDOW_S:
            self._times.popleft()
        span = self._times[-1] - self._times[0]
        if span < 0.5 * _RATE_WINDOW_S:
            return
        fps = (len(self._times) - 1) / span
        if fps < self.config.min_rate_fps * (1 - 1e-3):  # exactly 10 fps, with rounding in the times, is fine
            if self.rate_warning is None:
                self.rate_warning = (f"reflex tier at {fps:.1f} fps, below {self.config.min_rate_fps:g}: its motion "
                                     "fits get too few frames, so warnings may come late or not at all")
                log.warning(self.rate_warning)
        else:
            self.rate_warning = None

    def _update_pose(self, step: EgoStep | None, timestamp_s: float) -> None:
        """Heading, head attitude, speed and position after this frame, from the flow fit against the
        frame ~0.15 s earlier (its pose is remembered), leaking pitch and roll toward level."""
        dt = 0.0 if self._last_pose_time is None else timestamp_s - self._last_pose_time
        self._last_pose_time = timestamp_s
        if step is not None and step.earlier_time_s in self._poses:
            heading, pitch, roll = self._poses[step.earlier_time_s]
            leak = float(np.exp(-step.dt_s / _LEVEL_TAU_S))
            self.heading_deg = heading + step.fit.yaw_deg
            self.attitude = ((pitch + step.fit.pitch_deg) * leak, (roll + step.fit.roll_deg) * leak)
            follow = 1.0 - float(np.exp(-dt / _SPEED_TAU_S))
            self.speed_mps += follow * (step.speed_mps - self.speed_mps)
            direction = step.fit.translation
            if direction is not None and step.speed_mps > 0:
                # Direction of travel on the ground, turned from camera axes into the world by the heading.
                h = np.radians(self.heading_deg)
                x, z = float(direction[0]), float(direction[2])
                norm = float(np.hypot(x, z)) or 1.0
                world = np.array([x * np.cos(h) + z * np.sin(h), -x * np.sin(h) + z * np.cos(h)]) / norm
                self._velocity = world * self.speed_mps
            else:
                self._velocity = self._velocity * (1.0 - follow)
        self.position = self.position + self._velocity * dt
        self._poses[timestamp_s] = (self.heading_deg, *self.attitude)
        horizon = timestamp_s - 2.0 * _MAX_LAG_S - 1.0
        self._poses = {t: pose for t, pose in self._poses.items() if t >= horizon}
        was_walking = self.walking
        self.walking = self.speed_mps > (_WALK_STOP_MPS if was_walking else _WALK_START_MPS)
        if self.walking and not was_walking:
            self.residual.reset()
        elif was_walking and not self.walking:
            self.motion.reset()  # the background learnt before walking is elsewhere now

    def _level(self, region: Region) -> None:
        """Contact and top pitches as a level head would see them: a head pitched up by b sees what is
        ahead b lower and what is behind b higher; rolled right-side-down by g, what is on the right g higher."""
        pitch, roll = self.attitude
        yaw = np.radians(region.ground_yaw)
        correction = pitch * float(np.cos(yaw)) - roll * float(np.sin(yaw))
        region.contact_pitch = float(np.clip(region.contact_pitch + correction, -90.0, 90.0))
        region.top_pitch = float(np.clip(region.top_pitch + correction, -90.0, 90.0))

    def _risk(self, track: Track) -> tuple[Distance, RiskAssessment]:
        return track.last.distance, assess(track.window(self.config.history_s), self.config, track.farthest_m,
                                             self.pitch_sigma_deg, drop_lost_contacts=not self.walking)

    def _remember(self, track: Track) -> _TrackMemory:
        if track.track_id not in self._memory:
            self._memory[track.track_id] = _TrackMemory(mask_history=deque(maxlen=self.config.mask_history_frames))
        return self._memory[track.track_id]

    def _appearance(self, track: Track, small: np.ndarray, distance: Distance) -> Appearance:
        memory = self._remember(track)
        due = memory.appearance is None or self._last_time - memory.measured_s >= self.config.appearance_every_s
        if track.region is not None and due:
            region = track.region
            memory.appearance = measure_appearance(small, region.mask, region.top_pitch, region.contact_pitch,
                                                   region.box.width, distance)
            memory.measured_s = self._last_time
        if memory.appearance is None:
            return Appearance("unknown", "unknown", "unknown", "moving object")
        return memory.appearance

    def _result(self, track: Track, appearance: Appearance, distance: Distance,
                assessment: RiskAssessment) -> ReflexTrack:
        memory = self._remember(track)
        # A flag needs `confirm_s` at the threshold without a break (and two frames at least), then holds
        # while risk stays within 0.1 of it, so it neither blips on one frame nor flickers on one noisy frame.
        # The two frames must have seen the track: a coasting track's risk is its last observations re-read,
        # and coasting adds no evidence (when a wearer sets off, the stale background model's regions are
        # dropped and their tracks coasted into flags). Coasting does not break the run either: a thief
        # behind a walking wearer is seen on most frames, not all, and was flagged 1.47 s ahead that way.
        threshold = self.config.flag_threshold
        if assessment.risk >= threshold:
            memory.above_since = self._last_time if memory.above_since is None else memory.above_since
            memory.above_frames += track.region is not None
        else:
            memory.above_since, memory.above_frames = None, 0
        settled = self._last_time - self._first_time >= self.config.settle_s
        if memory.flagged:
            memory.flagged = assessment.risk >= threshold - 0.1
        else:
            confirmed = (memory.above_since is not None and memory.above_frames >= 2
                         and self._last_time - memory.above_since >= self.config.confirm_s - 1e-9)
            memory.flagged = settled and confirmed
        mask = None if track.region is None else track.region.mask
        if mask is not None and self.config.mask_history_frames > 0:
            memory.mask_history.append((track.last.time_s, masks.encode(mask)))
        box = track.last.box if track.region is not None else track.predict(self._last_time)
        return ReflexTrack(
            track_id=track.track_id, box=box, mask=mask, distance=distance, risk=assessment.risk,
            reason=assessment.reason, flagged=memory.flagged, tau_s=assessment.tau_s, appearance=appearance,
            first_seen_s=track.first_seen_s, age_frames=track.age_frames, missed_frames=track.missed,
            closing_mps=assessment.closing_mps, mask_history=list(memory.mask_history),
        )
