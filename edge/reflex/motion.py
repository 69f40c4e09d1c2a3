"""Motion proposals on a downscaled equirectangular frame, seam-aware.

Background subtraction (OpenCV MOG2) runs on a stabilised frame: the current frame is rolled
back by the wearer's accumulated turn (see `ego.py`) so the background model stays aligned
with the world while the wearer turns, and the foreground is rolled forward again. The model is
seeded with the per-pixel median of the first second and then learns slowly, so people present
from the start are foreground at once and someone who stops is not absorbed within seconds.
Morphology pads the image with wrapped columns so that nothing is cut at the seam, and
connected components touching both edges of the image are joined: one region, one entity, even
when it straddles the seam directly behind the wearer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vigil360.config import ReflexConfig
from vigil360.edge.geometry import Distance, mask_to_anglebox, pixel_to_angles, yaw_difference
from vigil360.edge.reflex.ego import circular_shift
from vigil360.schema import AngleBox

# Right after the seed the model learns with a 2 s time constant, easing to `bg_history_s`.
_FIRST_RATE_S = 2.0
# Rows above the lowest one that still count as the ground contact when taking its bearing (a stride
# lifts the trailing foot a row or two).
_CONTACT_ROWS = 2
# How far (px) a region is grown back into the raw foreground after opening: the legs of someone at
# 8-20 m are 3-7 px long at the 480 px working width.
_RECONSTRUCT_PX = 8
# Gap-bridging must not fuse two entities at different ranges that happen to share a bearing (a
# walker at 4 m and a cyclist at 15 m a few degrees apart: the cyclist would get no track of its
# own until it is close). Parts of one group stay apart when each stands on the ground as an
# upright entity of at least `_UPRIGHT_M` and their ranges differ by more than `_RANGE_RATIO`; a
# hand or bag split off someone near has a low point but not an upright height at the range it implies.
_RANGE_RATIO = 1.5
# A channel at or above this is clipped by the sensor: its true brightness is unknown.
_CLIPPED = 250
_UPRIGHT_M = 1.0


class OnTheGround:
    """Where something stands: the bearing of its ground contact, or its box centre's without one."""

    box: AngleBox
    contact_yaw: float | None

    @property
    def ground_yaw(self) -> float:
        return self.box.yaw if self.contact_yaw is None else self.contact_yaw


@dataclass
class Region(OnTheGround):
    """One independently moving region, in working-resolution equirectangular pixels."""

    mask: np.ndarray  # bool, (H, W)
    box: AngleBox
    area_deg2: float
    contact_pitch: float  # bottom edge of the lowest mask row: where the entity meets the ground
    top_pitch: float
    distance: Distance = Distance(float("inf"), float("inf"))  # filled by the tier (it knows the camera)
    contact_yaw: float | None = None  # bearing of the ground contact (None: the box centre's)
    # Reaches an edge row of the area its proposals come from (a pole of the frame; the walking residual's
    # pitch band): its box ends there because the area does, so its size and growth are not the entity's.
    clipped: bool = False


def wrap_pad(image: np.ndarray, columns: int) -> np.ndarray:
    """Pad left and right with the columns from the other side of the seam."""
    if columns <= 0:
        return image
    return np.concatenate([image[:, -columns:], image, image[:, :columns]], axis=1)


def wrapped_morphology(mask: np.ndarray, op: int, kernel: np.ndarray) -> np.ndarray:
    pad = kernel.shape[1]
    out = cv2.morphologyEx(wrap_pad(mask, pad), op, kernel)
    return out[:, pad: pad + mask.shape[1]]


def seam_components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """8-connected components of a uint8 mask on a cylinder (x wraps). Returns (count, labels)
    with labels 0 = background and 1..count-1 components, relabelled to be contiguous."""
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    if count <= 2:
        return count, labels
    left, right = labels[:, 0], labels[:, -1]
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for shift in (-1, 0, 1):  # diagonal neighbours across the seam too
        right_shifted = np.roll(right, shift)
        if shift == -1:
            right_shifted[-1] = 0
        elif shift == 1:
            right_shifted[0] = 0
        touching = (left > 0) & (right_shifted > 0)
        for a, b in set(zip(left[touching].tolist(), right_shifted[touching].tolist(), strict=True)):
            root_a, root_b = find(a), find(b)
            if root_a != root_b:
                parent[max(root_a, root_b)] = min(root_a, root_b)
    roots = np.array([find(i) for i in range(count)])
    if np.array_equal(roots, np.arange(count)):
        return count, labels
    _, compact = np.unique(roots, return_inverse=True)
    return int(compact.max()) + 1, compact[labels].astype(np.int32)


class MotionProposer:
    def __init__(self, width: int, height: int, config: ReflexConfig, camera_height_m: float,
                 downscaled: bool = True) -> None:
        """`downscaled`: frames arrive area-averaged from a larger frame (already low-passed); frames
        rendered or captured at the working width keep full-band edges and get a stronger blur."""
        self.width, self.height = width, height
        self.blur_sigma = 0.8 if downscaled else 1.0
        self.config = config
        self.camera_height_m = camera_height_m
        self._buffer: list[np.ndarray] = []
        self._seed_start: float | None = None
        self._seeded_at: float | None = None
        self._last_time: float | None = None
        self._reference_level: float | None = None
        self.reset()
        deg_per_px_x, deg_per_px_y = 360.0 / width, 180.0 / height
        rows = np.arange(height)
        _, pitch = pixel_to_angles(np.zeros(height), rows, width, height)
        # Solid angle of one pixel shrinks with cos(pitch): area filters must not favour the poles.
        row_area = deg_per_px_x * deg_per_px_y * np.cos(np.radians(pitch))
        self.pixel_area_deg2 = np.repeat(row_area, width).astype(np.float64)
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.grow_kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        gap_px = max(1, int(round(config.merge_gap_deg / deg_per_px_x)))
        self.merge_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap_px + 1, 2 * gap_px + 1))
        # Rows of zeros kept round the foreground when only its rows are cleaned and grouped: a closing spreads
        # it by the kernel's reach and then looks as far again, the opening by one pixel.
        self._crop_margin = 2 * gap_px + 2
        self.last_foreground: np.ndarray | None = None
        self._column_yaw, _ = pixel_to_angles(np.arange(width), 0.0, width, height)

    def reset(self) -> None:
        """Forget the background (the wearer walked on: what was learnt is elsewhere now); the next
        `bootstrap_s` of frames seed a new one."""
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=500, varThreshold=self.config.bg_var_threshold, detectShadows=False
        )
        self.subtractor.setBackgroundRatio(self.config.bg_ratio)
        self._buffer = []
        self._seed_start = self._seeded_at = self._last_time = None
        self._reference_level = None

    @property
    def seeded(self) -> bool:
        return self._seeded_at is not None

    def propose(self, small_bgr: np.ndarray, ego_offset_px: float, time_s: float) -> list[Region]:
        """Foreground regions of one working-resolution BGR frame at `time_s`; `ego_offset_px` is the
        wearer's accumulated turn as a content shift (from `EgoRotation.update`)."""
        # Sub-pixel stabilisation: an integer roll leaves half-pixel flicker on every sharp edge.
        stabilised = circular_shift(small_bgr, -ego_offset_px) if ego_offset_px else small_bgr
        # A light blur makes sharp edges indifferent to the sub-pixel resampling of a turn (which
        # otherwise flickers as foreground along every high-contrast edge). Only as strong as
        # needed: it also thins the faint legs and wheels of far entities out of the foreground.
        stabilised = cv2.GaussianBlur(wrap_pad(stabilised, 1), (3, 3), self.blur_sigma)[:, 1:-1]
        dt = 0.0 if self._last_time is None else time_s - self._last_time
        self._last_time = time_s
        stabilised = self._level_exposure(stabilised)
        if self._seeded_at is None:
            self._bootstrap(stabilised, time_s)
            return []
        # After the seed, learn with a 2 s time constant (per-pixel variances settle within seconds;
        # someone must stand still well over half a second to be absorbed) easing to `bg_history_s`.
        since_seed = time_s - self._seeded_at
        rate = float(np.clip(dt / min(self.config.bg_history_s, _FIRST_RATE_S + 2 * since_seed), 0.0, 1.0))
        foreground = self.subtractor.apply(stabilised, learningRate=rate)
        back = int(round(ego_offset_px))
        if back:
            foreground = np.roll(foreground, back, axis=1)
        return self.regions(foreground)

    def regions(self, raw_foreground: np.ndarray, source_rows: tuple[int, int] | None = None) -> list[Region]:
        """Regions of a raw uint8 foreground mask (0 / 255) in camera coordinates, from whichever source
        (the background model here, the residual motion for a walking wearer): cleaned, grouped across
        small gaps and the seam, stacked into upright entities, filtered by area. `source_rows`: the rows
        the source covers (half-open; default: the whole frame, pole to pole); a region reaching its first or
        last row (within `_CONTACT_ROWS`: the opening can take a thin edge's last rows) is `clipped`."""
        first_row, end_row = (0, self.height) if source_rows is None else source_rows
        # Cleaned and closed on the foreground's own rows only (a walking wearer's residual is a band, movers a
        # fraction of it): with `_crop_margin` rows of zeros round them the morphology is the whole frame's. The
        # labelling stays on the whole frame: OpenCV labels in parallel stripes of the image, so a crop would
        # number the same components in another order (and the tracker takes new regions in that order).
        occupied = np.flatnonzero(raw_foreground.any(axis=1))
        if occupied.size == 0:
            self.last_foreground = np.zeros_like(raw_foreground)
            return []
        rows = slice(max(0, int(occupied[0]) - self._crop_margin),
                     min(self.height, int(occupied[-1]) + 1 + self._crop_margin))
        crop = self._clean(raw_foreground[rows])
        foreground = np.zeros_like(raw_foreground)
        foreground[rows] = crop
        self.last_foreground = foreground
        # Group on a closed (gap-bridging) mask, but keep the un-dilated pixels as the instance mask.
        grouped = np.zeros_like(raw_foreground)
        grouped[rows] = wrapped_morphology(crop, cv2.MORPH_CLOSE, self.merge_kernel)
        count, labels = seam_components(grouped)
        if count <= 1:
            return []
        label_fg = np.where(foreground > 0, labels, 0)
        # Only the cropped rows hold labels: the same sums, in the same order, over fewer pixels.
        areas = np.bincount(label_fg[rows].ravel(), weights=self.pixel_area_deg2[rows.start * self.width:
                                                                                  rows.stop * self.width],
                            minlength=count)
        _, parts = seam_components(foreground)
        # Small pieces are kept until stacking: a torso and its legs may each be small alone.
        pieces = [piece for label in range(1, count) if areas[label] > 0
                  for piece in self._apart_by_range(label_fg == label, parts)]
        regions = []
        for mask in stack_vertical(pieces, self.camera_height_m, self.config.max_entity_height_m):
            area = float(self.pixel_area_deg2[mask.ravel()].sum())
            if area < self.config.min_area_deg2:
                continue
            region = self._region(mask, area)
            if region is not None:
                region.clipped = bool(mask[:first_row + _CONTACT_ROWS + 1].any()
                                      or mask[end_row - 1 - _CONTACT_ROWS:].any())
                regions.append(region)
        return regions

    def _apart_by_range(self, group: np.ndarray, parts: np.ndarray) -> list[np.ndarray]:
        """The group as one piece, or as several when it bridged upright entities at different ranges
        (each keeps the small bits whose bearing is nearest its own)."""
        labels = [label for label in np.unique(parts[group]) if label != 0]
        if len(labels) < 2:
            return [group]
        entities = stack_vertical([group & (parts == label) for label in labels], self.camera_height_m,
                                  self.config.max_entity_height_m)
        ranges = [self._upright_range(mask) for mask in entities]
        standing = [i for i, r in enumerate(ranges) if r is not None]
        if len(standing) < 2 or max(ranges[i] for i in standing) <= _RANGE_RATIO * min(ranges[i] for i in standing):
            return [group]
        apart = {i: entities[i].copy() for i in standing}
        yaws = {i: mask_to_anglebox(entities[i]).yaw for i in standing}
        for i, mask in enumerate(entities):
            if i not in apart:
                yaw = mask_to_anglebox(mask).yaw
                nearest = min(standing, key=lambda j: abs(float(yaw_difference(yaw, yaws[j]))))
                apart[nearest] |= mask
        return list(apart.values())

    def _upright_range(self, mask: np.ndarray) -> float | None:
        """Range (m) of a mask that stands on the ground and is as tall as an upright entity there; None if not."""
        if float(self.pixel_area_deg2[mask.ravel()].sum()) < self.config.min_area_deg2:
            return None
        rows = np.flatnonzero(mask.any(axis=1))
        _, (top, bottom) = pixel_to_angles(0.0, np.array([rows[0] - 0.5, rows[-1] + 0.5]), self.width, self.height)
        if bottom >= -0.5:
            return None
        distance = self.camera_height_m / np.tan(np.radians(-bottom))
        height = self.camera_height_m + distance * np.tan(np.radians(top))
        return float(distance) if height >= _UPRIGHT_M else None

    def _clean(self, raw: np.ndarray) -> np.ndarray:
        """Opening by (bounded) reconstruction: a 3x3 opening removes speckle and the one-pixel edge
        flicker a turn leaves, but also the legs of anyone beyond ~6 m and the wheel of a bike (one
        or two pixels wide at the working width), which lifts the ground contact and invents an
        approach as they reappear. Growing the opened mask back into the raw foreground for a few
        pixels restores what is attached to a solid region and nothing that stands alone."""
        opened = wrapped_morphology(raw, cv2.MORPH_OPEN, self.open_kernel)
        if not opened.any():
            return opened
        pad = _RECONSTRUCT_PX
        allowed = wrap_pad(raw, pad)
        grown = wrap_pad(opened, pad)
        for _ in range(_RECONSTRUCT_PX):
            grown = cv2.bitwise_and(cv2.dilate(grown, self.grow_kernel), allowed)
        return np.ascontiguousarray(grown[:, pad: pad + raw.shape[1]])

    def _bootstrap(self, stabilised: np.ndarray, time_s: float) -> None:
        """Seed the model with the median of the first `bootstrap_s` of frames (at most ~15 of them:
        the median needs no more), then learn at the steady rate. OpenCV's own schedule learns very
        fast at first, absorbing anyone present then; they leave ghosts when they move on."""
        if self._seed_start is None:
            self._seed_start = time_s
        elapsed = time_s - self._seed_start
        due = len(self._buffer) < 1 + int(elapsed / self.config.bootstrap_s * 15)
        done = elapsed >= self.config.bootstrap_s * (1 - 1e-6)
        if due or done:
            self._buffer.append(stabilised.copy())
        if done:
            background = np.median(np.stack(self._buffer), axis=0).astype(np.uint8)
            self.subtractor.apply(background, learningRate=1.0)
            self._buffer = []
            self._seeded_at = time_s

    def _level_exposure(self, stabilised: np.ndarray) -> np.ndarray:
        """Undo auto-exposure: scale the frame so its median brightness matches the one the background
        model was seeded at.

        A camera re-metering changes every pixel by about the same factor within a frame or two; to a
        background model that is the whole frame in the foreground for seconds. Movers are a small part
        of the sphere, so the median hardly sees them, and turning does not change a 360-degree median.
        The reference stays fixed: one that eased toward the new level after a step made the levelled
        frame drift for seconds, and the slowly learning model lagged it into slowly growing regions
        that read as looming. Pixels clipped in a brighter frame carry no brightness to level (a sky at
        235 clips at 255, levelled to 212 after a +20 % step): the model's own background stands in."""
        level = float(np.median(stabilised[::4, ::4])) + 1.0
        if self._reference_level is None:
            self._reference_level = level
            return stabilised
        gain = self._reference_level / level
        if abs(gain - 1.0) < 0.01:
            return stabilised
        levelled = cv2.convertScaleAbs(stabilised, alpha=gain)
        if gain < 1.0 and self.seeded:
            clipped = stabilised.max(axis=2) >= _CLIPPED
            if clipped.any():
                np.copyto(levelled, self.subtractor.getBackgroundImage(), where=clipped[..., None])
        return levelled

    def _region(self, mask: np.ndarray, area: float) -> Region | None:
        box = mask_to_anglebox(mask)
        if box is None:
            return None
        rows = np.flatnonzero(mask.any(axis=1))
        # Pixel row r covers [r - 1/2, r + 1/2]: the contact is the bottom edge of the lowest row.
        _, (top, bottom) = pixel_to_angles(0.0, np.array([rows[0] - 0.5, rows[-1] + 0.5]), self.width,
                                           self.height)
        return Region(mask, box, area, float(bottom), float(top), contact_yaw=self._contact_yaw(mask, rows[-1]))

    def _contact_yaw(self, mask: np.ndarray, lowest_row: int) -> float:
        """Bearing of the columns that meet the ground within `_CONTACT_ROWS` of the lowest row.

        The range comes from the lowest row, so the bearing must come from the same place: when a
        passer-by merges with a car behind them, the box centre slides toward the car while the
        range stays the passer-by's, and the pair reads as someone walking straight at the wearer."""
        near_bottom = mask[max(0, lowest_row - _CONTACT_ROWS): lowest_row + 1].any(axis=0)
        yaws = np.radians(self._column_yaw[near_bottom])
        return float(np.degrees(np.arctan2(np.sin(yaws).mean(), np.cos(yaws).mean())))


def _stacked(a: AngleBox, b: AngleBox, camera_height_m: float, max_height_m: float) -> bool:
    """Whether two boxes are parts of one upright entity: mostly the same columns, and either a
    vertical gap smaller than half the taller part, or the upper part within the extent an
    entity of `max_height_m` standing on the lower part's ground contact would have (someone
    walking straight at the camera barely changes inside their outline, so background
    subtraction sees only their head and feet)."""
    overlap = min(a.width, b.width, (a.width + b.width) / 2.0 - abs(float(yaw_difference(a.yaw, b.yaw))))
    if overlap < 0.5 * min(a.width, b.width):
        return False
    gap = abs(a.pitch - b.pitch) - (a.height + b.height) / 2.0
    if gap <= 0.5 * max(a.height, b.height):
        return True
    lower, upper = (a, b) if a.pitch < b.pitch else (b, a)
    contact = lower.pitch - lower.height / 2.0
    if contact >= -0.5:
        return False
    distance = camera_height_m / np.tan(np.radians(-contact))
    top = np.degrees(np.arctan2(max_height_m - camera_height_m, distance))
    return upper.pitch + upper.height / 2.0 <= top


def stack_vertical(pieces: list[np.ndarray], camera_height_m: float, max_height_m: float) -> list[np.ndarray]:
    """Merge masks whose boxes are stacked parts of one upright entity, until none are."""
    items = [(mask, mask_to_anglebox(mask)) for mask in pieces]
    merged = True
    while merged and len(items) > 1:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                if _stacked(items[i][1], items[j][1], camera_height_m, max_height_m):
                    union = items[i][0] | items[j][0]
                    items[i] = (union, mask_to_anglebox(union))
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    return [mask for mask, _ in items]
