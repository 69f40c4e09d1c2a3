"""Ego-motion on the sphere: the camera's full rotation and its direction of travel from optical flow,
and the residual motion a static world cannot explain (issue 12).

A 360-degree frame is a sphere of bearings, so there is no field of view to lose the focus of
expansion from. For a static point at bearing p and depth rho, a small camera motion (rotation w,
translation T) moves the bearing by

    f = p x w  -  (T - (T.p) p) / rho                                   (first order)

The rotational part is the same for every depth; the translational part lies on the great circle
through p and T (the epipolar constraint), so T . (p x (f - p x w)) = 0 for every static point
whatever its depth. That is bilinear in w and T: fixing T it is linear in w, fixing w, T is the
null vector of the points' constraint vectors. The fit alternates the two, with Cauchy weights so
that movers (a minority of the points) fall out of the fit instead of dragging it.

Movers are then what the fitted static world cannot explain, per pixel:
- flow across the epipolar great circle (a person walking sideways), or backwards along it;
- below the horizon, flow *slower* than the ground itself would give at that bearing: anything
  static there is nearer than the ground behind it and so moves at least as fast. This is what
  catches a thief walking behind at the wearer's own pace: their flow is ~0 while the paving at
  their feet streams past.
The speed scale (metres per frame) comes from the ground's own flow and the camera height, the
only metric reference a monocular camera has.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vigil360.edge.reflex.imu import GyroTrack

# Cauchy scale: this many robust sigmas of the residuals count as "still fitting".
_CAUCHY_SIGMAS = 2.5
# Translational flow (robust median, radians per step) below which the camera is taken as not
# translating (and the direction of travel is undefined): ~0.4 px at 480 px wide. Flow noise in a large
# sway step can pass it; the metric speed (from the ground's flow) then stays ~0, which is what matters.
_MIN_PARALLAX_RAD = 5e-3
_ITERATIONS = 8
_GROUND_Y = float(np.sin(np.radians(-20.0)))  # bearings below this look at the ground near the wearer
_LK_PAD = 24  # columns wrapped around the seam for the sparse tracks
_MAX_LAG_S = 0.5
_ROTATION_SHARE = 1.0  # of the rotational flow that counts toward the relative tolerance (0.25 let the
# sway's own flow errors through on a static street)


def min_eigenvalues(gray: np.ndarray) -> np.ndarray:
    """Smaller eigenvalue of each pixel's 5x5 structure tensor: how well flow is constrained there. The fit
    weighs its grid points by it and the walking residual gates texture-less pixels with it, so it is
    computed once per frame."""
    return cv2.cornerMinEigenVal(gray, 5)


def bearings(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unit vectors (x right, y up, z ahead) of equirect pixel positions (geometry's convention)."""
    yaw = (np.asarray(x, np.float64) - width / 2.0) * (2 * np.pi / width)
    pitch = (height / 2.0 - np.asarray(y, np.float64)) * (np.pi / height)
    cos_p = np.cos(pitch)
    return np.stack([cos_p * np.sin(yaw), np.sin(pitch), cos_p * np.cos(yaw)], axis=-1)


@dataclass(frozen=True)
class MotionFit:
    """One step's fit. `omega` (rad): the camera turned by the rotation vector omega (camera axes:
    x right, y up, z ahead), so yaw right = omega[1], pitch up = -omega[0], roll right-down =
    -omega[2]. `translation`: unit direction of travel in the earlier camera frame, None when the
    camera did not measurably translate. `parallax`: median translational flow (rad)."""

    omega: np.ndarray
    translation: np.ndarray | None
    parallax: float
    inlier_share: float

    @property
    def yaw_deg(self) -> float:
        return float(np.degrees(self.omega[1]))

    @property
    def pitch_deg(self) -> float:
        return float(-np.degrees(self.omega[0]))

    @property
    def roll_deg(self) -> float:
        return float(-np.degrees(self.omega[2]))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b row by row (N x 3 with N x 3, or with one 3-vector); np.cross's generic broadcasting
    costs ~10x as much on the fit's ~1000 points, and the fit calls it every iteration."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _weighted_scatter(weights: np.ndarray, a: np.ndarray) -> np.ndarray:
    """sum_n w_n a_n a_n^T (3 x 3), as one matrix product."""
    return (a * weights[:, None]).T @ a


def _parallax(p: np.ndarray, translational: np.ndarray) -> float:
    """Median translational flow (rad) of all the points, or of those on the ground below the wearer if more.

    The ground is the one static surface near enough for parallax wherever a wearer walks: in an open
    square or a park everything else may be far, and the median of all points then reads a walk as
    standing still (it did on real photographs as the world beyond 30 m)."""
    size = np.linalg.norm(translational, axis=1)
    ground = p[:, 1] < _GROUND_Y
    overall = float(np.median(size))
    return max(overall, float(np.median(size[ground]))) if ground.sum() >= 8 else overall


def _cauchy(residuals: np.ndarray) -> np.ndarray:
    scale = _CAUCHY_SIGMAS * 1.4826 * float(np.median(residuals)) + 1e-9
    return 1.0 / (1.0 + (residuals / scale) ** 2)


def _rotation_only(p: np.ndarray, f: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares for f = p x w: normal matrix sum(I - p p^T), right side sum(f x p)."""
    normal = weights.sum() * np.eye(3) - _weighted_scatter(weights, p)
    rhs = weights @ _cross(f, p)
    return np.linalg.solve(normal + 1e-12 * np.eye(3), rhs)


def fit_motion(p1: np.ndarray, p2: np.ndarray, prior_weights: np.ndarray | None = None,
               known_rotation: np.ndarray | None = None) -> MotionFit:
    """Rotation and direction of travel from N bearing pairs (N x 3 unit vectors, earlier -> later).
    With `known_rotation` (a gyro's rotation vector) only the direction of travel is fitted."""
    if p1.shape != p2.shape or p1.ndim != 2 or p1.shape[1] != 3:
        raise ValueError(f"bearing pairs must both be N x 3, got {p1.shape} and {p2.shape}")
    if p1.shape[0] < 8:
        raise ValueError(f"ego-motion needs at least 8 bearing pairs, got {p1.shape[0]}")
    f = p2 - p1
    prior = np.ones(len(p1)) if prior_weights is None else np.asarray(prior_weights, np.float64)
    if known_rotation is not None:
        omega = np.asarray(known_rotation, np.float64)
        weights = prior * _cauchy(np.linalg.norm(f - _cross(p1, omega), axis=1))
    else:
        # Start from a pure rotation fitted to the points near or above the horizon (far: little parallax).
        far = prior * (p1[:, 1] > -0.2)
        omega = _rotation_only(p1, f, far if far.sum() >= 8 else prior)
        for _ in range(3):
            weights = prior * _cauchy(np.linalg.norm(f - _cross(p1, omega), axis=1))
            omega = _rotation_only(p1, f, weights)
    parallax = _parallax(p1, f - _cross(p1, omega))
    if parallax < _MIN_PARALLAX_RAD:
        inliers = float(np.mean(weights > 0.5))
        return MotionFit(omega, None, parallax, inliers)
    pxf = _cross(p1, f)
    weights = prior.copy()
    direction = np.zeros(3)
    for _ in range(_ITERATIONS):
        # T: the direction most perpendicular to every point's constraint vector m = p x (f - p x w).
        m = pxf + omega[None, :] - (p1 @ omega)[:, None] * p1
        scatter = _weighted_scatter(weights, m)
        direction = np.linalg.eigh(scatter)[1][:, 0]
        if known_rotation is None:
            # w given T: w . (T - (p.T) p) = -T . (p x f), one equation per point.
            a = direction[None, :] - (p1 @ direction)[:, None] * p1
            b = -(pxf @ direction)
            normal = _weighted_scatter(weights, a)
            omega = np.linalg.solve(normal + 1e-12 * np.eye(3), (weights * b) @ a)
        residual = np.abs(m @ direction)
        weights = prior * _cauchy(residual)
    translational = f - _cross(p1, omega)
    # Static points move away from the focus of expansion: f_t = -(T - (T.p) p) / rho with rho > 0.
    away = -(direction[None, :] - (p1 @ direction)[:, None] * p1)
    if float(np.sum(weights * (translational * away).sum(axis=1))) < 0:
        direction = -direction
    parallax = _parallax(p1, translational)
    return MotionFit(omega, direction, parallax, float(np.mean(weights > 0.5 * prior.max())))


def _matched(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """`current` with its median brightness matched to `previous`'s: an auto-exposure step between two
    frames breaks brightness constancy everywhere at once."""
    gain = (float(np.median(previous[::4, ::4])) + 1.0) / (float(np.median(current[::4, ::4])) + 1.0)
    return current if abs(gain - 1.0) < 0.01 else cv2.convertScaleAbs(current, alpha=gain)


def _wrap(image: np.ndarray, pad: int) -> np.ndarray:
    return np.concatenate([image[:, -pad:], image, image[:, :pad]], axis=1)


def flow_between(previous: np.ndarray, current: np.ndarray, dis: cv2.DISOpticalFlow, pad: int = 16) -> np.ndarray:
    """Dense flow (H x W x 2, pixels) from previous to current grey frames, seam-aware: both are padded
    with the columns from across the seam so flow near +-180 deg sees its real neighbours."""
    flow = dis.calc(_wrap(previous, pad), _wrap(current, pad), None)
    return flow[:, pad:-pad]


def sample_maps(p: np.ndarray, m: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Equirect pixel coordinates (x in [0, width), y) of the bearings `m @ p` (p: ... x 3 float32, m: 3 x 3):
    cv2.remap maps that sample, at each bearing p, the frame where m turns it."""
    m = np.asarray(m, np.float32)
    x = m[0, 0] * p[..., 0] + m[0, 1] * p[..., 1] + m[0, 2] * p[..., 2]
    y = m[1, 0] * p[..., 0] + m[1, 1] * p[..., 1] + m[1, 2] * p[..., 2]
    z = m[2, 0] * p[..., 0] + m[2, 1] * p[..., 1] + m[2, 2] * p[..., 2]
    # Pixel x sits at yaw (x - W/2) 2pi/W, as in `bearings`.
    map_x = np.arctan2(x, z) * np.float32(width / (2 * np.pi)) + np.float32(width / 2.0)
    map_y = np.float32(height / 2.0) - np.arcsin(np.clip(y, -1, 1)) * np.float32(height / np.pi)
    return np.mod(map_x, np.float32(width)), map_y


class SphereFlowField:
    """Per-pixel geometry of one working resolution, computed once: bearings, and the two linear maps
    from a small motion to pixel flow (rotation: f = p x w; unit-depth translation: f = -(I - p p^T) T),
    each a 2 x 3 matrix per pixel so a whole flow field is one matrix-vector product. `rows` and `cols`
    (half-open pixel ranges) restrict it to a window of the sphere."""

    def __init__(self, width: int, height: int, rows: tuple[int, int] | None = None,
                 cols: tuple[int, int] | None = None) -> None:
        self.width, self.height = width, height
        (r0, r1), (c0, c1) = rows or (0, height), cols or (0, width)
        self.rows = (r0, r1)
        ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        p = bearings(xs, ys, width, height)
        self.p = p.astype(np.float32)  # H x W x 3
        cos2 = np.maximum(p[..., 0] ** 2 + p[..., 2] ** 2, 1e-6)
        # Pixel displacement per change of bearing: d(x_px) = W/2pi (pz dpx - px dpz) / cos^2(pitch),
        # d(y_px) = -H/pi dpy / cos(pitch).
        to_pixels = np.zeros((*p.shape[:2], 2, 3))
        to_pixels[..., 0, 0] = width / (2 * np.pi) * p[..., 2] / cos2
        to_pixels[..., 0, 2] = -width / (2 * np.pi) * p[..., 0] / cos2
        to_pixels[..., 1, 1] = -height / np.pi / np.sqrt(cos2)
        cross = np.zeros((*p.shape[:2], 3, 3))  # [p]x: p x w = [p]x w
        cross[..., 0, 1], cross[..., 0, 2] = -p[..., 2], p[..., 1]
        cross[..., 1, 0], cross[..., 1, 2] = p[..., 2], -p[..., 0]
        cross[..., 2, 0], cross[..., 2, 1] = -p[..., 1], p[..., 0]
        tangent = np.eye(3) - p[..., :, None] * p[..., None, :]
        # Stored as six contiguous planes per map: a flow field is then six scaled adds.
        self._rotation = np.ascontiguousarray(np.moveaxis(to_pixels @ cross, (2, 3), (0, 1)), dtype=np.float32)
        self._translation = np.ascontiguousarray(np.moveaxis(-(to_pixels @ tangent), (2, 3), (0, 1)),
                                                 dtype=np.float32)

    @staticmethod
    def _apply(planes: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b, c = (np.float32(v) for v in vector)
        return (planes[0, 0] * a + planes[0, 1] * b + planes[0, 2] * c,
                planes[1, 0] * a + planes[1, 1] * b + planes[1, 2] * c)

    def level_maps(self, pitch_deg: float, roll_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps showing the frame as a level head would see it: the output pixel of bearing d
        samples the camera frame at R^T d, R the head's tilt (pitch up, then roll right-side-down)."""
        p, r = np.radians(pitch_deg), np.radians(roll_deg)
        # Level-from-camera = pitch(p) roll(r) in the generator's and the fit's axes; its transpose
        # takes a level bearing into the camera.
        pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
        roll = np.array([[np.cos(r), np.sin(r), 0], [-np.sin(r), np.cos(r), 0], [0, 0, 1]])
        return sample_maps(self.p, (pitch @ roll).T, self.width, self.height)

    def rotation_flow(self, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) pixel flow planes of a static world for the camera rotation omega."""
        return self._apply(self._rotation, omega)

    def translation_flow(self, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) pixel flow planes of a static point at unit depth for a unit step along `direction`."""
        return self._apply(self._translation, direction)


@dataclass(frozen=True)
class Residual:
    """Per-pixel flow the static world cannot explain (pixels per step), and the step's scale."""

    magnitude: np.ndarray  # rows x W float32, after the tolerance: > 0 means "moving"
    metres_per_step: float | None  # camera travel, from the ground's flow and the camera height
    first_row: int = 0  # the frame row of magnitude's first row (a field of some rows only)


def residual_motion(flow: np.ndarray, fit: MotionFit, field: SphereFlowField, camera_height_m: float,
                    min_ground_pitch_deg: float = -20.0, tolerance_px: float = 0.6,
                    relative_tolerance: float = 0.2, scale: float | None = None) -> Residual:
    """How far each pixel's flow is from anything a static world could do, given the fitted motion, less
    a tolerance: `tolerance_px` for flow noise plus `relative_tolerance` of the flow the static world
    itself has there (dense flow errs in proportion to the flow: the paving under the wearer's feet
    moves 5-10 px per step). `flow` and `field` cover the same rows of the frame."""
    if flow.shape[:2] != field.p.shape[:2]:
        raise ValueError(f"flow of shape {flow.shape[:2]} on a field of shape {field.p.shape[:2]}")
    rot_x, rot_y = field.rotation_flow(fit.omega)
    dx, dy = flow[..., 0] - rot_x, flow[..., 1] - rot_y
    rotation_size = cv2.magnitude(rot_x, rot_y)
    if fit.translation is None:
        tolerance = np.float32(tolerance_px) + np.float32(relative_tolerance) * rotation_size
        return Residual(cv2.magnitude(dx, dy) - tolerance, 0.0, field.rows[0])
    ux, uy = field.translation_flow(fit.translation)  # static flow at 1 m depth for a 1 m step
    norm = cv2.magnitude(ux, uy) + np.float32(1e-6)
    ex, ey = ux / norm, uy / norm
    along = dx * ex + dy * ey
    across = np.abs(dx * ey - dy * ex)
    # Ground depth along each downward ray: rho = h / (-p_y); its flow is unit / rho per metre of travel.
    below = field.p[..., 1]
    ground_gain = np.maximum(-below, 0.0) * np.float32(1.0 / camera_height_m) * norm
    if scale is None:
        rows = max(0, field.height // 2 + int(round(-min_ground_pitch_deg / 180.0 * field.height)) - field.rows[0])
        ratios = along[rows:] / np.maximum(ground_gain[rows:], np.float32(1e-6))
        scale = max(float(np.median(ratios)), 0.0) if ratios.size else 0.0
    # A static point below the horizon is no farther than the ground behind it: it moves at least as
    # fast as the ground would (half of it, for slack against the fit's own error).
    too_slow = np.float32(0.5 * scale) * ground_gain - along
    magnitude = np.maximum(np.maximum(across, -along), too_slow)
    # Dense flow errs in proportion to the flow itself (it smooths; the ground near the feet moves most).
    expected = np.float32(_ROTATION_SHARE) * rotation_size + np.float32(scale) * ground_gain
    return Residual(magnitude - np.float32(tolerance_px) - np.float32(relative_tolerance) * expected, scale,
                    field.rows[0])


@dataclass(frozen=True)
class EgoStep:
    """What the ego stage knows after one frame: the fit between this frame and an earlier one `dt_s`
    before it, and the dense flow of that pair (its residual: `EgoMotion.residual`)."""

    fit: MotionFit
    flow: np.ndarray | None  # H x W x 2 px; None when only the fit was asked for (a standing wearer)
    dt_s: float
    earlier_time_s: float
    metres_per_step: float = 0.0  # from the sparse ground points' flow and the camera height

    @property
    def speed_mps(self) -> float:
        """The camera's speed over ground (0 when it did not measurably translate)."""
        if self.fit.translation is None:
            return 0.0
        return self.metres_per_step / self.dt_s


class EgoMotion:
    """Fits the camera's motion between each frame and the frame about `lag_s` before it.

    A lag of ~0.15 s, whatever the frame rate, makes slow movers measurable: a passer-by at 8 m moves
    well under a pixel per frame at 30 fps and 480 px, but ~2 px over 0.15 s, well above flow noise.
    The fit's points are every `grid_step` = 10 px: every 12 px was cheaper, but the window behind a
    walking wearer (`cones`, which chains these fits over 0.45 s) then lost a development thief it had
    flagged 1.47 s ahead."""

    def __init__(self, width: int, height: int, camera_height_m: float, lag_s: float = 0.15,
                 grid_step: int = 10, max_abs_pitch_deg: float = 75.0,
                 residual_rows: tuple[int, int] | None = None) -> None:
        """`residual_rows` (half-open): the rows the residual is wanted on (all by default); the per-pixel
        tests cost in proportion to them."""
        if lag_s < 0:
            raise ValueError(f"lag_s must be >= 0, got {lag_s}")
        self.width, self.height = width, height
        self.camera_height_m = camera_height_m
        self.lag_s = lag_s
        self.field = SphereFlowField(width, height)
        self.residual_field = self.field if residual_rows is None else SphereFlowField(width, height, residual_rows)
        # The fast preset (variational refinement on): the ultrafast one leaves 0.3 % of a static street
        # "moving" while walking (its flow on horizontal edges lags), the fast one none, for ~25 % more time.
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        rows = np.arange(grid_step // 2, height, grid_step)
        pitch = (height / 2.0 - rows) * 180.0 / height
        rows = rows[np.abs(pitch) <= max_abs_pitch_deg]
        cols = np.arange(grid_step // 2, width, grid_step)
        self.grid_y, self.grid_x = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
        self.grid_p = self.field.p[self.grid_y, self.grid_x].astype(np.float64)
        self._history: list[tuple[float, np.ndarray, np.ndarray]] = []  # time, grey, `min_eigenvalues`
        self._scale = 0.0
        self.min_eigen: np.ndarray | None = None  # `min_eigenvalues` of the last frame

    def reset(self) -> None:
        self._history = []

    def update(self, gray: np.ndarray, time_s: float | None = None, gyro: GyroTrack | None = None,
               dense: bool = True) -> EgoStep | None:
        """Feed the next working-resolution grey frame; None until a frame `lag_s` older is known.
        Without a time, frames count as one second apart (the lag is then always one frame). With a
        `gyro` covering the pair, its integrated rotation replaces the fitted one. Without `dense`, no
        dense flow, so no residual: the sparse tracks alone give the fit and the speed (half the cost,
        all a standing or turning wearer needs)."""
        if gray.shape != (self.height, self.width):
            raise ValueError(f"ego-motion expects {self.height}x{self.width} grey frames, got {gray.shape}")
        if time_s is None:
            time_s = self._history[-1][0] + 1.0 if self._history else 0.0
        earlier = [item for item in self._history if time_s - item[0] >= self.lag_s * (1 - 1e-6)]
        # Keep what a longer lag may need later (the tier lengthens it while the wearer strolls).
        self._history = [item for item in self._history if time_s - item[0] < _MAX_LAG_S]
        self.min_eigen = min_eigenvalues(gray)
        self._history.append((time_s, gray, self.min_eigen))
        if not earlier:
            return None
        then, previous, previous_eigen = earlier[-1]
        matched = _matched(previous, gray)
        flow = flow_between(previous, matched, self.dis) if dense else None
        known = gyro.rotation_between(then, time_s) if gyro is not None and gyro.covers(then, time_s) else None
        fit = self.fit_flow(previous, matched, flow, known, previous_eigen)
        return EgoStep(fit, flow, time_s - then, then, self._scale)

    def residual(self, step: EgoStep) -> Residual | None:
        """The residual motion of a step's pair on the `residual_rows`; None without dense flow. Apart from
        `update` so that the tier can start what needs only the fit (the window behind, `cones`) first."""
        if step.flow is None:
            return None
        r0, r1 = self.residual_field.rows
        return residual_motion(step.flow[r0:r1], step.fit, self.residual_field, self.camera_height_m,
                               scale=step.metres_per_step)

    def fit_flow(self, previous: np.ndarray, current: np.ndarray, flow: np.ndarray | None,
                 known_rotation: np.ndarray | None = None, previous_eigen: np.ndarray | None = None) -> MotionFit:
        """Fit on sparse pyramidal Lucas-Kanade tracks of the textured grid points, seeded with the dense
        flow: DIS is smoothed and shrinks flows by 5-15 %, which would bias pitch and roll by as much;
        LK refines each point to a fraction of a pixel. `previous_eigen`: `min_eigenvalues(previous)`, if
        already known."""
        if previous_eigen is None:
            previous_eigen = min_eigenvalues(previous)
        fit, self._scale = self._sparse_fit(previous, current, flow, known_rotation, previous_eigen)
        return fit

    def _sparse_fit(self, previous: np.ndarray, current: np.ndarray, flow: np.ndarray | None,
                    known_rotation: np.ndarray | None, previous_eigen: np.ndarray) -> tuple[MotionFit, float]:
        strength = previous_eigen[self.grid_y, self.grid_x]
        weights = np.clip(strength / (np.percentile(strength, 75) + 1e-9), 0.0, 1.0)
        keep = np.flatnonzero(weights > 0.05)
        pad = _LK_PAD
        start = np.stack([self.grid_x[keep] + pad, self.grid_y[keep]], axis=1).astype(np.float32)
        guess = start + (0.0 if flow is None else flow[self.grid_y[keep], self.grid_x[keep]])
        # Seeded by dense flow, one pyramid level is enough; unseeded, three cover a sway step's few pixels.
        tracked, status, _ = cv2.calcOpticalFlowPyrLK(
            _wrap(previous, pad), _wrap(current, pad), start.reshape(-1, 1, 2), guess.reshape(-1, 1, 2).copy(),
            winSize=(9, 9), maxLevel=1 if flow is not None else 3, flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 0.01))
        ok = status.ravel() == 1
        tracked = tracked.reshape(-1, 2)[ok]
        keep = keep[ok]
        p2 = bearings(tracked[:, 0] - pad, tracked[:, 1], self.width, self.height)
        fit = fit_motion(self.grid_p[keep], p2, weights[keep], known_rotation)
        return fit, self._ground_scale(self.grid_p[keep], p2, fit)

    def _ground_scale(self, p1: np.ndarray, p2: np.ndarray, fit: MotionFit) -> float:
        """Metres travelled in the pair: on the ground a unit step moves a point's bearing by
        |T - (T.p) p| / rho with rho = h / (-p_y); the median ratio of the measured translational flow
        along that direction over the ground points below -20 deg."""
        if fit.translation is None:
            return 0.0
        ground = p1[:, 1] < _GROUND_Y
        if ground.sum() < 8:
            return 0.0
        p, t = p1[ground], fit.translation
        moved = (p2[ground] - p) - np.cross(p, fit.omega)
        away = -(t[None, :] - (p @ t)[:, None] * p)
        size = np.linalg.norm(away, axis=1) + 1e-9
        per_metre = size * (-p[:, 1]) / self.camera_height_m
        along = np.einsum("ni,ni->n", moved, away) / size
        return max(float(np.median(along / per_metre)), 0.0)
