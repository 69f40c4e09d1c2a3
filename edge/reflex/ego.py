"""Ego-rotation: how far the wearer turned between two frames, as a horizontal image shift.

A turn of the wearer is one rotation of the whole sphere; about the vertical axis it is an
exact circular shift of the equirectangular image. So the yaw change is the peak of a
circular cross-correlation along x, and phase correlation finds it with no windowing (the
image really is periodic in x). Only a band around the horizon is used: the poles are
stretched, barely informative, and hold the ceiling/ground that walking distorts most.
Moving entities cover a small part of the band, so the background dominates the peak.
"""

from __future__ import annotations

import cv2
import numpy as np

from vigil360.edge.geometry import wrap_yaw


def horizon_band(gray: np.ndarray, half_height_deg: float = 30.0) -> np.ndarray:
    height = gray.shape[0]
    half_rows = max(1, int(round(height * half_height_deg / 180.0)))
    return gray[height // 2 - half_rows: height // 2 + half_rows]


def estimate_shift(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Circular shift dx (pixels, sub-pixel) with `current ~= np.roll(previous, dx, axis=1)`, and
    the peak's sharpness in [0, 1] (near 0: no reliable estimate, e.g. a featureless scene)."""
    if previous.shape != current.shape:
        raise ValueError(f"shift estimate needs equal shapes, got {previous.shape} and {current.shape}")
    a = previous.astype(np.float32)
    b = current.astype(np.float32)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    fa = np.fft.rfft(a, axis=1)
    fb = np.fft.rfft(b, axis=1)
    # Summing the rows' cross-spectra before normalising weights textured rows more than flat ones.
    cross = (fb * np.conj(fa)).sum(axis=0)
    normalised = cross / (np.abs(cross) + 1e-9)
    corr = np.fft.irfft(normalised, n=a.shape[1])
    width = corr.size
    peak = int(np.argmax(corr))
    dx = peak + _subpixel_residual(cross, peak, width)
    if dx > width / 2:
        dx -= width
    centre = corr[peak]
    return float(dx), float(np.clip(centre, 0.0, 1.0))


def _subpixel_residual(cross: np.ndarray, peak: int, width: int) -> float:
    """The shift's fraction beyond the integer `peak`, from the slope of the cross-spectrum's phase.

    A parabola through the correlation peak is biased toward whole pixels (phase correlation peaks
    are nearly a delta), and a slow turn of a fraction of a pixel per frame then reads as none at
    all while the reference band drifts along with it. For a pure shift the phase of frequency k is
    -2 pi k dx / width exactly, so a magnitude-weighted least-squares line through the phases, once
    the integer part is removed, gives the fraction without that bias."""
    k = np.arange(cross.size, dtype=np.float64)
    residual = cross * np.exp(2j * np.pi * k * peak / width)
    use = slice(1, max(2, cross.size // 2))  # low and middle frequencies: the phase stays within +-pi/2
    phase = np.angle(residual[use])
    weight = np.abs(residual[use])
    k = k[use]
    denom = float(np.sum(weight * k * k))
    if denom == 0:
        return 0.0
    fraction = -width / (2 * np.pi) * float(np.sum(weight * k * phase)) / denom
    return float(np.clip(fraction, -0.5, 0.5))


def circular_shift(image: np.ndarray, dx: float) -> np.ndarray:
    """`image` shifted right by dx pixels, wrapping around the seam; the fractional part is a
    linear blend of the two neighbouring integer shifts (what bilinear resampling does, at the
    cost of two rolls - cv2.warpAffine with BORDER_WRAP is several times slower here)."""
    whole = int(np.floor(dx))
    frac = float(dx - whole)
    base = np.roll(image, whole, axis=1)
    if frac < 1e-3:
        return base
    return cv2.addWeighted(base, 1.0 - frac, np.roll(base, 1, axis=1), frac, 0.0)


class EgoRotation:
    """The wearer's accumulated turn since the first frame, as a shift of the working image.

    Each frame is matched against a slowly refreshed reference band held in world
    coordinates, not against the previous frame: chained frame-to-frame estimates drift
    (their sub-pixel errors add up, ~6 px over 3 s in a test), an absolute match does not.
    """

    def __init__(self, width: int, min_sharpness: float = 0.05, refresh: float = 0.1) -> None:
        self.width = width
        self.min_sharpness = min_sharpness
        self.refresh = refresh
        self.offset_px = 0.0  # content shift of the current frame relative to the world reference
        self._reference: np.ndarray | None = None

    @property
    def yaw_deg(self) -> float:
        """Wearer's accumulated turn, degrees, positive to the right (content moves left)."""
        return float(wrap_yaw(-self.offset_px * 360.0 / self.width))

    def update(self, gray: np.ndarray) -> float:
        """Feed the next working-resolution grey frame; returns the sub-pixel content shift of
        this frame relative to the world reference (shift by minus it to stabilise)."""
        band = horizon_band(gray).astype(np.float32)
        if self._reference is None:
            self._reference = band
            return self.offset_px
        dx, sharpness = estimate_shift(self._reference, band)
        # A flat peak means the estimate is noise (a featureless view): keep the last heading.
        if sharpness >= self.min_sharpness:
            self.offset_px = dx % self.width
        stabilised = circular_shift(band, -self.offset_px)
        # Refreshing lets lighting changes and parallax in; moving entities average out.
        cv2.accumulateWeighted(stabilised, self._reference, self.refresh)
        return self.offset_px
