"""360-degree geometry: the conventions every other module relies on. Pure numpy, vectorised.

Conventions (written down once, here):
- An equirectangular frame is W x H with W = 2H.
- Pixel coordinates are continuous; integer coordinates are sample positions. Column
  x = W/2 is straight ahead of the wearer; x = 0 (and W) is directly behind: the seam.
- yaw (degrees) is positive to the wearer's right: yaw = (x - W/2) * 360 / W, in [-180, 180).
- pitch (degrees) is positive up: pitch = (H/2 - y) * 180 / H; y = 0 is straight up.
- Unit vectors are (x right, y up, z forward): (cos p sin y, sin p, cos p cos y).

The seam sits directly behind the wearer - exactly where a bag theft happens - so every
function that handles yaw differences, boxes or masks wraps around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil360.schema import AngleBox, Sector

ArrayLike = np.ndarray | float


def check_equirect_shape(width: int, height: int) -> None:
    if width != 2 * height:
        raise ValueError(f"equirectangular frames are 2:1; got {width}x{height}")


def wrap_yaw(yaw: ArrayLike) -> ArrayLike:
    """Wrap degrees to [-180, 180)."""
    shifted = (np.asarray(yaw) + 180.0) % 360.0
    # A value a hair below -180 lands on 360.0 after rounding, i.e. on +180: outside the range.
    return shifted - 360.0 * (shifted >= 360.0) - 180.0


def yaw_difference(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """Signed a - b, the short way round the circle, in [-180, 180)."""
    return wrap_yaw(np.asarray(a) - np.asarray(b))


def pixel_to_angles(x: ArrayLike, y: ArrayLike, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    yaw = wrap_yaw((np.asarray(x, dtype=np.float64) - width / 2.0) * 360.0 / width)
    pitch = (height / 2.0 - np.asarray(y, dtype=np.float64)) * 180.0 / height
    return yaw, pitch


def angles_to_pixel(yaw: ArrayLike, pitch: ArrayLike, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `pixel_to_angles`; x is wrapped into [0, W)."""
    x = (np.asarray(wrap_yaw(yaw), dtype=np.float64) * width / 360.0 + width / 2.0) % width
    y = height / 2.0 - np.asarray(pitch, dtype=np.float64) * height / 180.0
    return x, y


def angles_to_vector(yaw: ArrayLike, pitch: ArrayLike) -> np.ndarray:
    yaw_r, pitch_r = np.radians(yaw), np.radians(pitch)
    cos_p = np.cos(pitch_r)
    return np.stack([cos_p * np.sin(yaw_r), np.sin(pitch_r), cos_p * np.cos(yaw_r)], axis=-1)


def vector_to_angles(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vec = np.asarray(vec, dtype=np.float64)
    norm = np.linalg.norm(vec, axis=-1)
    yaw = np.degrees(np.arctan2(vec[..., 0], vec[..., 2]))
    pitch = np.degrees(np.arcsin(np.clip(vec[..., 1] / norm, -1.0, 1.0)))
    return wrap_yaw(yaw), pitch


def rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation of a view looking at (yaw, pitch), rolled about its axis.

    Applied to (0, 0, 1) it gives the viewing direction; positive pitch looks up.
    """
    cy, sy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    cp, sp = np.cos(np.radians(pitch)), np.sin(np.radians(pitch))
    cr, sr = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


# --- Egocentric "where" ----------------------------------------------------------------


def clock_hour(yaw: ArrayLike) -> np.ndarray:
    """Clock direction 1..12: 12 ahead, 3 right, 6 behind, 9 left; each hour spans +-15 deg."""
    hour = np.round(np.asarray(wrap_yaw(yaw)) / 30.0).astype(int) % 12
    return np.where(hour == 0, 12, hour)


def sector(yaw: float, center_half_width: float = 60.0) -> Sector:
    """VIEW360's coarse direction.

    The dataset labels anomalies 'left back', 'center' or 'right back' without publishing the
    boundaries; we take 'center' as within `center_half_width` of straight ahead and split the
    rest at the seam, so 'left back' and 'right back' meet directly behind the wearer.
    """
    yaw = float(wrap_yaw(yaw))
    if abs(yaw) <= center_half_width:
        return "center"
    return "right_back" if yaw > 0 else "left_back"


def side_words(yaw: float) -> str:
    """Plain left/right/behind wording for users who prefer it to clock hours."""
    yaw = float(wrap_yaw(yaw))
    if abs(yaw) <= 22.5:
        return "ahead"
    if abs(yaw) >= 157.5:
        return "behind you"
    side = "right" if yaw > 0 else "left"
    if abs(yaw) < 67.5:
        return f"ahead on your {side}"
    if abs(yaw) <= 112.5:
        return f"on your {side}"
    return f"behind you on the {side}"


@dataclass(frozen=True)
class Distance:
    metres: float
    sigma: float  # one standard deviation, metres; inf when the estimate is meaningless


def ground_distance(
    contact_pitch: float,
    camera_height: float = 1.2,
    pitch_sigma: float = 1.0,
    height_sigma: float = 0.1,
) -> Distance:
    """Distance along the ground to where an entity touches it, seen at `contact_pitch` (< 0).

    d = h / tan(-p). First-order uncertainty: dd/dh = 1/tan(-p); dd/dp = h / sin^2(p).
    Near the horizon the estimate blows up, which the sigma reports honestly.
    """
    if contact_pitch >= -0.5:
        return Distance(float("inf"), float("inf"))
    depression = np.radians(-contact_pitch)
    metres = camera_height / np.tan(depression)
    d_dh = 1.0 / np.tan(depression)
    d_dp = camera_height / np.sin(depression) ** 2
    sigma = float(np.hypot(d_dh * height_sigma, d_dp * np.radians(pitch_sigma)))
    return Distance(float(metres), sigma)


def linear_slope(values: np.ndarray, times: np.ndarray) -> float:
    """Least-squares slope of values over times (0 with fewer than two distinct times)."""
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if values.size < 2:
        return 0.0
    t = times - times.mean()
    denom = float(np.dot(t, t))
    return 0.0 if denom == 0 else float(np.dot(t, values - values.mean()) / denom)


def bearing_rate(yaws: np.ndarray, times: np.ndarray) -> float:
    """Least-squares yaw rate in deg/s over a short history, unwrapped across the seam.

    A bearing that stays constant while the entity grows is the classic collision course.
    """
    return linear_slope(np.degrees(np.unwrap(np.radians(np.asarray(yaws, dtype=np.float64)))), times)


# --- Boxes and masks in angles ---------------------------------------------------------


def occupied_yaw_span(columns: np.ndarray) -> tuple[int, int] | None:
    """Given a boolean occupancy per column, return (start, length) of the shortest circular
    span that covers all occupied columns (it may run over the seam), or None if empty."""
    columns = np.asarray(columns, dtype=bool)
    width = columns.size
    occupied = np.flatnonzero(columns)
    if occupied.size == 0:
        return None
    # The covering span is the complement of the largest circular gap between occupied columns.
    gaps = np.diff(np.concatenate([occupied, [occupied[0] + width]]))
    widest = int(np.argmax(gaps))
    start = int(occupied[(widest + 1) % occupied.size])
    length = width - int(gaps[widest]) + 1
    return start, length


def mask_to_anglebox(mask: np.ndarray) -> AngleBox | None:
    """Seam-aware angular bounding box of an equirectangular mask (None if empty)."""
    height, width = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    # Columns only over the occupied rows: a region is a small part of the frame (the tier boxes dozens a frame).
    start, length = occupied_yaw_span(mask[rows[0]:rows[-1] + 1].any(axis=0))
    deg_x, deg_y = 360.0 / width, 180.0 / height
    # A pixel covers [x - 1/2, x + 1/2] around its sample position.
    yaw_centre = float(wrap_yaw((start - 0.5 + length / 2.0 - width / 2.0) * deg_x))
    top, bottom = rows[0] - 0.5, rows[-1] + 0.5
    pitch_centre = (height / 2.0 - (top + bottom) / 2.0) * deg_y
    return AngleBox(
        yaw=yaw_centre,
        pitch=float(np.clip(pitch_centre, -90, 90)),
        width=float(min(length * deg_x, 360.0)),
        height=float(min((bottom - top) * deg_y, 180.0)),
    )


def anglebox_iou(a: AngleBox, b: AngleBox) -> float:
    """IoU of two angle boxes on the (yaw, pitch) plane, yaw wrapped (small-box approximation)."""
    dyaw = abs(float(yaw_difference(a.yaw, b.yaw)))
    overlap_w = max(0.0, min(a.width, b.width, (a.width + b.width) / 2.0 - dyaw))
    top = min(a.pitch + a.height / 2, b.pitch + b.height / 2)
    bottom = max(a.pitch - a.height / 2, b.pitch - b.height / 2)
    overlap_h = max(0.0, top - bottom)
    inter = overlap_w * overlap_h
    union = a.width * a.height + b.width * b.height - inter
    return 0.0 if union <= 0 else inter / union


def anglebox_to_pixels(box: AngleBox, width: int, height: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in equirectangular pixels; x1 may exceed W when the box crosses the seam."""
    x_centre, y_centre = angles_to_pixel(box.yaw, box.pitch, width, height)
    half_w, half_h = box.width * width / 720.0, box.height * height / 360.0
    return (
        float(x_centre - half_w),
        float(y_centre - half_h),
        float(x_centre + half_w),
        float(y_centre + half_h),
    )

