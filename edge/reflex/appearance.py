"""Measured appearance without a model: named colours of the upper and lower halves of a mask,
and a size class from angular size and distance ("person in a red top and blue trousers").

Colour names survive real light: pixels are first white-balanced with the scene's own grey-world
estimate (the mean of the frame in linear light, which is what a camera's auto white balance
assumes too: a street averages out to grey), then named in CIELAB, where lightness, chroma and
hue are perceptual axes - so "brown" is a dark, modest-chroma orange and "beige" a light, low-
chroma one, rather than thresholds between some palette's values. Each mask pixel gets a name and
the most frequent name wins, which is robust to shading and to the few background pixels a motion
mask always carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vigil360.edge.geometry import Distance

COLOUR_NAMES: tuple[str, ...] = (
    "black", "white", "grey", "red", "orange", "brown", "beige", "yellow", "green", "teal", "blue", "purple",
    "pink",
)
# CIELAB hue angle (degrees, a* toward b*) bounds of the chromatic names, upper bound exclusive.
_HUE_TABLE: tuple[tuple[float, str], ...] = (
    (15.0, "pink"), (48.0, "red"), (75.0, "orange"), (108.0, "yellow"), (170.0, "green"), (235.0, "teal"),
    (310.0, "blue"), (338.0, "purple"), (360.0, "pink"),
)
_ACHROMATIC_CHROMA = 10.0  # below: black, grey or white by lightness alone
_BLACK_L = 28.0
_WHITE_L = 82.0
_DARK_L = 20.0  # below: black whatever the hue (noise makes dark hues meaningless)
_MID_GREY = 0.18  # grey-world: a scene's mean reflectance in linear light
_MAX_GAIN = 12.0  # tungsten light (CIE A) needs ~8x on blue


def _linear(bgr_uint8: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> linear light in [0, 1] (the exact sRGB transfer curve)."""
    c = bgr_uint8.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def grey_world_gains(bgr_pixels: np.ndarray) -> np.ndarray:
    """Per-channel (B, G, R) gains in linear light that turn the scene's mean into a mid grey: white
    balance and exposure in one. Clipped pixels (near 0 or 255) say nothing about the light and are
    left out; gains are bounded so a near-monochrome scene cannot blow a colour up."""
    pixels = np.asarray(bgr_pixels, dtype=np.uint8).reshape(-1, 3)
    usable = pixels[(pixels.max(axis=1) < 250) & (pixels.min(axis=1) > 5)]
    if usable.shape[0] < 16:
        return np.ones(3, dtype=np.float32)
    means = _linear(usable).mean(axis=0)
    return np.clip(_MID_GREY / np.maximum(means, 1e-4), 1.0 / _MAX_GAIN, _MAX_GAIN).astype(np.float32)


def colour_indices(bgr_pixels: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """Index into COLOUR_NAMES for each of N BGR uint8 pixels (shape (N, 3)), after applying the linear
    white-balance `gains` (from `grey_world_gains`; None: the pixels are taken as balanced)."""
    linear = _linear(np.asarray(bgr_pixels).reshape(-1, 3))
    if gains is not None:
        linear = np.clip(linear * np.asarray(gains, dtype=np.float32)[None, :], 0.0, 1.0)
    # OpenCV's float Lab conversion applies the sRGB curve itself: hand it gamma-encoded values.
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055).astype(np.float32)
    lab = cv2.cvtColor(encoded.reshape(-1, 1, 3), cv2.COLOR_BGR2Lab).reshape(-1, 3)
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    bounds = np.array([bound for bound, _ in _HUE_TABLE])
    hue_names = np.array([COLOUR_NAMES.index(name) for _, name in _HUE_TABLE])
    names = hue_names[np.minimum(np.searchsorted(bounds, hue, side="right"), len(bounds) - 1)]
    index = COLOUR_NAMES.index
    # Orange and red at low lightness are what people call brown; light, low-chroma warm hues are beige.
    warm = (hue >= 25.0) & (hue < 100.0)
    names = np.where(warm & (lightness < 50.0) & (chroma < 45.0), index("brown"), names)
    names = np.where(warm & (lightness >= 60.0) & (chroma < 30.0), index("beige"), names)
    achromatic = np.where(lightness >= _WHITE_L, index("white"),
                          np.where(lightness < _BLACK_L, index("black"), index("grey")))
    names = np.where(chroma < _ACHROMATIC_CHROMA, achromatic, names)
    return np.where(lightness < _DARK_L, index("black"), names)


def article(word: str) -> str:
    """'a' or 'an' before `word`, by its first sound (spelling is close enough for colour words)."""
    return "an" if word[:1].lower() in "aeio" else "a"


def dominant_colour(bgr_pixels: np.ndarray, gains: np.ndarray | None = None) -> str:
    if bgr_pixels.size == 0:
        return "unknown"
    counts = np.bincount(colour_indices(bgr_pixels, gains), minlength=len(COLOUR_NAMES))
    return COLOUR_NAMES[int(np.argmax(counts))]


@dataclass(frozen=True)
class Appearance:
    upper: str
    lower: str
    size_class: str  # "small", "person-sized", "large" or "unknown"
    label_guess: str  # "person", "small object", "vehicle" or "moving object"

    def phrase(self) -> str:
        if self.label_guess == "person":
            if self.upper == self.lower:
                return f"person dressed in {self.upper}"
            return f"person in {article(self.upper)} {self.upper} top and {self.lower} trousers"
        if self.label_guess == "small object":
            return f"small {self.upper} object"
        if self.label_guess == "vehicle":
            return f"{self.upper} vehicle"
        return f"{self.upper} moving object"


def size_class(top_pitch: float, contact_pitch: float, width_deg: float,
               distance: Distance) -> tuple[str, str]:
    """(size class, label guess) from the physical height and width the angles imply."""
    if not np.isfinite(distance.metres):
        return "unknown", "moving object"
    # An upright entity standing at horizontal distance d spans d * (tan(top) - tan(bottom)).
    height_m = distance.metres * (np.tan(np.radians(top_pitch)) - np.tan(np.radians(contact_pitch)))
    width_m = distance.metres * np.radians(width_deg)
    if height_m < 0.9:
        return "small", "small object"
    if height_m > 2.3 or width_m > 2.5:
        return "large", "vehicle"
    return "person-sized", "person"


def measure_appearance(small_bgr: np.ndarray, mask: np.ndarray, top_pitch: float, contact_pitch: float,
                       width_deg: float, distance: Distance, gains: np.ndarray | None = None) -> Appearance:
    """Colours of the upper and lower halves of `mask` (same size as `small_bgr`), white-balanced with
    `gains` (None: the frame's own grey-world estimate)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValueError("cannot measure the appearance of an empty mask")
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    # Skip the top tenth (head and hair) so "top" means clothing.
    upper_start = top + (bottom - top) // 10
    middle = (top + bottom) // 2
    upper = small_bgr[upper_start:middle][mask[upper_start:middle]]
    lower = small_bgr[middle:bottom][mask[middle:bottom]]
    size, label = size_class(top_pitch, contact_pitch, width_deg, distance)
    if gains is None:
        gains = grey_world_gains(small_bgr[::4, ::4])
    upper_name = dominant_colour(upper if upper.size else lower, gains)
    lower_name = dominant_colour(lower if lower.size else upper, gains)
    return Appearance(upper_name, lower_name, size, label)
