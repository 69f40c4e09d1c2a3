"""Movers behind a walking wearer, from a long pair of frames finer than the working grid (issue 12).

A walking wearer's commonest threats come from straight behind: a thief walking up at a brisk pace, a
cyclist overtaking. There, at the focus of contraction, the static world barely moves (translational
flow is zero at a focus and grows with the sine of the angle from it), so such a mover's own motion is
mostly *along* the static world's epipolar circle and tiny over the short pair: the tier's dense flow
(DIS, fast preset) stops at a 120-px-wide grid of a 480-px working frame, and a thief at 5 m (~8 working
pixels wide) is smoothed into the street until ~2.5 m, too late for a 1.5 s lead.

Here, in a window of the frame at twice the working width (the full frame up to 960 px; see `perception`)
centred on the focus of contraction (the equirect is
close to conformal this near the horizon, and the flow geometry used is exact anyway):
- the pair is long (>= 0.45 s, a chain of the ego stage's own short-pair fits, so no fit of its own);
- its earlier frame is derotated into the later one (one remap through a coarse map), so the static
  world's remaining flow is pure translation: toward the focus along every epipolar circle, and below
  the horizon at least the ground's own flow at that bearing;
- it is then moved by the ground plane's own flow, so dense flow only measures what is left (the paving
  near the wearer's feet moves tens of pixels over the pair, more than DIS finds from scratch);
- dense flow runs down to the working grid (4x finer than the short pair's).
A thief or cyclist gaining on the wearer grows while the world there shrinks: flow backward along the
circle, a sign test that needs no depth. Someone matching pace stands still where the paving at their
feet streams by (too slow). These are the tests `ego_motion.residual_motion` makes on the short pair;
the moving pixels, pooled onto the working grid, join that pair's residual, so tracks and risk
see one foreground.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vigil360.edge.geometry import rotation
from vigil360.edge.reflex.ego_motion import EgoStep, MotionFit, SphereFlowField, bearings, residual_motion, sample_maps

# Least pair lag: a thief 7 m behind gaining at 1.2 m/s then moves their feet ~5 px at 1920 px; short enough
# that the static flow off the focus stays within what dense flow follows once the ground's own flow is
# taken out. At 30 fps three short fits (0.5 s). Measured on development clips: 0.33 s (two fits) took the
# seed-1 thief's lead from ~1.2 s to 0.13 s (window down to -25 deg in both).
CONE_LAG_S = 0.45
# Half-width of the window (deg of yaw about the focus): a thief starts 25-60 deg off straight behind. With
# +-35 deg a development thief 46 deg off was first tracked at 1.9 m instead of 4.6 m.
_HALF_WIDTH_DEG = 60.0
# Rows kept (deg of pitch): anything far enough to need the long pair (>= ~3.5 m: the short pair sees nearer)
# stands on the ground above -27 deg from a camera at up to 1.8 m, with a few degrees of head pitch to spare;
# and is no taller than a bus.
_MIN_PITCH_DEG = -32.0
_MAX_PITCH_DEG = 12.0
# Flow noise, in window pixels (two fifths of a working pixel in a 960-px window; DIS's own error on its finest
# level is a fraction of that level's pixel).
_TOLERANCE_PX = 0.8
# Share of a working pixel's window pixels that must move for it to count.
_POOL_SHARE = 0.25
# Slack in proportion to the flow the static world has there (the ground's, from the camera height) and to the
# flow measured (facades far off the focus move far, at depths unknown): dense flow errs in proportion to flow.
_RELATIVE_TOLERANCE = 0.25
_FLOW_SHARE = 0.25
# Which foci get a window: -1 the focus of contraction (behind a walking wearer), +1 that of expansion. Ahead,
# a window was measured (development clips, BENCHMARKS.md issue 12) and left out: people walking toward the
# wearer expand faster than the street there too, and without a ground-contact magnitude test one such
# passer-by became a false "approaching fast"; it also doubles the cost. Ahead stays the short pair's.
_FOCI = (-1.0,)
# The derotation map is smooth: computed on a grid this much coarser and interpolated.
_MAP_STEP = 8
# A chained link must have walked: a metric step of 1 cm at least, along a direction within 30 deg of level.
_MIN_LINK_M = 0.01
_MAX_LINK_SLOPE = float(np.sin(np.radians(30.0)))


@dataclass(frozen=True)
class LongPair:
    """The camera's motion between an earlier frame and now: `rotation` takes a later-camera bearing to the
    earlier camera's (p1 = R p2 for a far point), `travel` is the unit direction of travel in the later
    camera's axes, `metres` the distance travelled."""

    earlier_time_s: float
    rotation: np.ndarray
    travel: np.ndarray
    metres: float


def chain(steps: dict[float, EgoStep], now_s: float, lag_s: float = CONE_LAG_S) -> LongPair | None:
    """Join the ego stage's short-pair fits back from `now_s` (each frame's fit against the frame ~0.15 s
    before it, keyed by the later frame's time) until they span `lag_s`; None when a link is missing or
    any link did not measurably walk: no translation, no metric step, or a direction of travel more than
    30 deg off the ground plane (a wearer walks on the ground; such a fit is a failed one, and one bad link
    would tilt the whole window's derotation)."""
    rotation, travel, metres, time_s = np.eye(3), np.zeros(3), 0.0, now_s
    while now_s - time_s < lag_s * (1 - 1e-6):
        step = steps.get(time_s)
        if (step is None or step.fit.translation is None or step.metres_per_step < _MIN_LINK_M
                or abs(float(step.fit.translation[1])) > _MAX_LINK_SLOPE):
            return None
        link = cv2.Rodrigues(np.asarray(step.fit.omega, np.float64))[0]
        rotation = link @ rotation  # later bearings -> this link's earlier frame
        # The link's travel is in its earlier camera's axes; bring it into the latest camera's.
        travel = travel + step.metres_per_step * (rotation.T @ np.asarray(step.fit.translation, np.float64))
        metres += step.metres_per_step
        time_s = step.earlier_time_s
    norm = float(np.linalg.norm(travel))
    if norm == 0.0:
        return None
    return LongPair(time_s, rotation, travel / norm, metres)


class FocusCones:
    """Moving pixels behind a walking wearer, from a long pair of frames finer than the working grid (`_FOCI`)."""

    def __init__(self, full_width: int, full_height: int, work_width: int, work_height: int,
                 camera_height_m: float, lag_s: float = CONE_LAG_S, half_width_deg: float = _HALF_WIDTH_DEG,
                 source_width: int | None = None) -> None:
        """`full_width` x `full_height` is the resolution the window reads; the frames `remember` gets may be
        `source_width` wide, a whole multiple of it (their band is averaged down first)."""
        if full_width % work_width or full_width // work_width != full_height // work_height:
            raise ValueError(f"working size {work_width}x{work_height} must divide {full_width}x{full_height}")
        source_width = full_width if source_width is None else source_width
        if source_width % full_width:
            raise ValueError(f"window width {full_width} must divide the frame width {source_width}")
        self.source_factor = source_width // full_width
        self.full_width, self.full_height = full_width, full_height
        self.work_width, self.work_height = work_width, work_height
        self.factor = full_width // work_width
        self.camera_height_m = camera_height_m
        self.lag_s = lag_s
        px_per_deg = full_width / 360.0
        # The stored band has a margin for the head's pitch and roll over the lag.
        margin = 10.0
        self.row0 = max(0, int(np.floor((90.0 - _MAX_PITCH_DEG - margin) * px_per_deg)))
        self.row1 = min(full_height, int(np.ceil((90.0 - _MIN_PITCH_DEG + margin) * px_per_deg)))
        # The window rows and columns are multiples of the pooling factor so they land on working pixels.
        f = self.factor
        top = int(np.floor((90.0 - _MAX_PITCH_DEG) * px_per_deg / f)) * f
        bottom = int(np.ceil((90.0 - _MIN_PITCH_DEG) * px_per_deg / f)) * f
        half = int(np.ceil(half_width_deg * px_per_deg / f)) * f
        self.rows = (top, bottom)
        self.half_cols = half
        centre = full_width // 2
        # One geometry for a window centred straight ahead; a window about another yaw is the same pixels
        # with its vectors turned about the vertical (the equirect is invariant to a yaw shift).
        self.field = SphereFlowField(full_width, full_height, rows=(top, bottom), cols=(centre - half, centre + half))
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        # DIS stops at its finest pyramid level and interpolates from there. The short pair (fast preset, level
        # 2 of the working frame) thus sees a 120-px-wide grid; here the finest level is the working grid, 4x
        # finer. Finer still costs 4x per level and, on a static street at 1920 px, flagged paving.
        self.dis.setFinestScale(min(2, int(np.log2(self.factor))))
        rows_n, cols_n = (bottom - top - 1) // _MAP_STEP + 2, (2 * half - 1) // _MAP_STEP + 2
        node_y, node_x = np.mgrid[0:rows_n, 0:cols_n] * _MAP_STEP
        self._coarse_p = bearings(node_x + centre - half, node_y + top, full_width, full_height).astype(np.float32)
        pixel_y, pixel_x = np.mgrid[0:bottom - top, 0:2 * half].astype(np.float32) / np.float32(_MAP_STEP)
        self._node_x, self._node_y = pixel_x, pixel_y
        below = np.maximum(-self.field.p[..., 1], 0.0)
        self._ground_depth_inverse = (below / np.float32(camera_height_m)).astype(np.float32)
        rows_, cols_ = np.mgrid[0:bottom - top, 0:2 * half].astype(np.float32)
        self._grid = (cols_, rows_)
        self._bands: dict[float, np.ndarray] = {}

    def reset(self) -> None:
        self._bands = {}

    def remember(self, full_bgr: np.ndarray, time_s: float) -> None:
        """Keep the band of this frame the windows read (grey), and those of the last second."""
        self._bands = {t: band for t, band in self._bands.items() if time_s - t <= 1.0}
        f = self.source_factor
        band = cv2.cvtColor(full_bgr[self.row0 * f:self.row1 * f], cv2.COLOR_BGR2GRAY)
        if f > 1:
            band = cv2.resize(band, (band.shape[1] // f, band.shape[0] // f), interpolation=cv2.INTER_AREA)
        self._bands[time_s] = band

    def moving(self, now_s: float, pair: LongPair) -> np.ndarray | None:
        """uint8 working-resolution mask (0 / 255) of pixels moving on their own near the foci, from
        the frames at `now_s` and at the pair's earlier time; None if either frame is not kept."""
        earlier, later = self._bands.get(pair.earlier_time_s), self._bands.get(now_s)
        if earlier is None or later is None:
            return None
        out = np.zeros((self.work_height, self.work_width), np.uint8)
        for sign in _FOCI:
            focus = sign * pair.travel
            yaw = float(np.arctan2(focus[0], focus[2]))
            centre = int(round((yaw / (2 * np.pi) * self.full_width + self.full_width / 2) / self.factor)) * self.factor
            view_yaw = (centre - self.full_width / 2) * 2 * np.pi / self.full_width
            self._window(earlier, later, pair, centre, view_yaw, out)
        return out

    def _fine(self, coarse: np.ndarray) -> np.ndarray:
        """Values on the coarse node grid (every `_MAP_STEP` pixels, one node past each edge) at every pixel."""
        return cv2.remap(coarse, self._node_x, self._node_y, cv2.INTER_LINEAR)

    def _ground_flow(self, direction: np.ndarray, metres: float) -> np.ndarray:
        """Flow (px) of the ground plane for a step of `metres` along `direction` (window axes); 0 above it."""
        ux, uy = self.field.translation_flow(direction)
        gain = self._ground_depth_inverse * np.float32(metres)
        return np.ascontiguousarray(np.stack([ux * gain, uy * gain], axis=-1))

    def _window(self, earlier: np.ndarray, later: np.ndarray, pair: LongPair, centre: int, view_yaw: float,
                out: np.ndarray) -> None:
        top, bottom = self.rows
        cols = np.arange(centre - self.half_cols, centre + self.half_cols) % self.full_width
        current = np.ascontiguousarray(later[top - self.row0:bottom - self.row0][:, cols])
        # The earlier frame seen with the later one's rotation: sample it at R v for each later-view bearing
        # v (the fit moves a far point's bearing from p1 to p2 = R^T p1).
        turn = rotation(np.degrees(view_yaw), 0.0).T  # camera axes -> window axes; its transpose goes back
        w, h = self.full_width, self.full_height
        # Window bearings (as if centred straight ahead) turned into the camera, then into the earlier frame.
        map_x, map_y = sample_maps(self._coarse_p, pair.rotation @ turn.T, w, h)
        map_y = map_y - np.float32(self.row0)  # the stored band starts at row0
        # Unwrapped about the window's own centre before interpolating, so the seam does not smear the map.
        map_x = np.mod(map_x - np.float32(centre - w / 2.0), np.float32(w)) + np.float32(centre - w / 2.0)
        map_x, map_y = self._fine(map_x), self._fine(map_y)
        previous = cv2.remap(earlier, np.mod(map_x, np.float32(w)), map_y, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_WRAP)
        gain = (float(np.median(current[::4, ::4])) + 1.0) / (float(np.median(previous[::4, ::4])) + 1.0)
        if abs(gain - 1.0) >= 0.01:
            previous = cv2.convertScaleAbs(previous, alpha=gain)
        # Flow from the later frame back to the earlier one: the moving pixels come out where things are
        # now; in that pair the camera stepped back along -travel.
        back = MotionFit(np.zeros(3), -(turn @ pair.travel), 0.0, 1.0)
        # The paving below a walking wearer moves tens of pixels over the long pair, more than DIS's pyramid
        # finds from scratch on a window this low (it returns ~0 there): the earlier frame is first moved by
        # the ground plane's own flow, and DIS measures what is left.
        ground = self._ground_flow(back.translation, pair.metres)
        previous = cv2.remap(previous, self._grid[0] + ground[..., 0], self._grid[1] + ground[..., 1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        flow = self.dis.calc(current, previous, None) + ground
        residual = residual_motion(flow, back, self.field, self.camera_height_m, tolerance_px=_TOLERANCE_PX,
                                   relative_tolerance=_RELATIVE_TOLERANCE, scale=pair.metres)
        # Far from the focus the facades' flow is large (its depth unknown, so `residual_motion` gives it no
        # relative slack): dense flow errs in proportion to the flow it measures.
        moving = (residual.magnitude > _FLOW_SHARE * cv2.magnitude(flow[..., 0], flow[..., 1])).astype(np.float32)
        # Pooled onto the working grid: a working pixel moves when a quarter of its window pixels do (a
        # test on the averaged flow instead, measured on a development thief, cut its lead from 1.47 s to 0.57 s).
        f = self.factor
        pooled = cv2.resize(moving, (moving.shape[1] // f, moving.shape[0] // f), interpolation=cv2.INTER_AREA)
        work_cols = (np.arange(centre - self.half_cols, centre + self.half_cols, f) // f) % self.work_width
        rows = slice(top // f, bottom // f)
        flagged = np.where(pooled >= _POOL_SHARE, 255, 0).astype(np.uint8)
        out[rows, work_cols] = np.maximum(out[rows, work_cols], flagged)
