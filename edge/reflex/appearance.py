"""Measured appearance without a model: named colours of the upper and lower halves of a mask,
and a size class from angular size and distance ("person in a red top and blue trousers").

Colour names come from a small HSV table (OpenCV's H in 0..179, S and V in 0..255); each mask
pixel gets a name and the most frequent name wins, which is robust to shading and to the few
background pixels a motion mask always carries.
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
# Upper hue bound (exclusive) of each chromatic name, OpenCV hue units (degrees / 2).
_HUE_TABLE: tuple[tuple[int, str], ...] = (
    (8, "red"), (20, "orange"), (33, "yellow"), (85, "green"), (100, "teal"), (130, "blue"),
    (150, "purple"), (170, "pink"), (180, "red"),
)
_DARK_V = 55  # below: black, whatever the hue (camera noise makes dark hues meaningless)
_GREY_S = 45  # below: achromatic
_WHITE_V = 190
_PALE_S = 100  # below (and above _GREY_S): a pale tint - beige for the warm hues


def colour_indices(bgr_pixels: np.ndarray) -> np.ndarray:
    """Index into COLOUR_NAMES for each of N BGR uint8 pixels (shape (N, 3))."""
    hsv = cv2.cvtColor(bgr_pixels.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    h, s, v = hsv[:, 0].astype(np.int32), hsv[:, 1].astype(np.int32), hsv[:, 2].astype(np.int32)
    bounds = np.array([b for b, _ in _HUE_TABLE])
    hue_names = np.array([COLOUR_NAMES.index(n) for _, n in _HUE_TABLE])
    names = hue_names[np.searchsorted(bounds, h, side="right")]
    # Dark orange is what people call brown; pale, light orange-to-yellow is beige.
    warm = (names == COLOUR_NAMES.index("orange")) | (names == COLOUR_NAMES.index("yellow"))
    names = np.where((names == COLOUR_NAMES.index("orange")) & (v < 150), COLOUR_NAMES.index("brown"), names)
    names = np.where(warm & (s < _PALE_S) & (v >= 150), COLOUR_NAMES.index("beige"), names)
    achromatic = np.where(v >= _WHITE_V, COLOUR_NAMES.index("white"), COLOUR_NAMES.index("grey"))
    names = np.where(s < _GREY_S, achromatic, names)
    return np.where(v < _DARK_V, COLOUR_NAMES.index("black"), names)


def dominant_colour(bgr_pixels: np.ndarray) -> str:
    if bgr_pixels.size == 0:
        return "unknown"
    counts = np.bincount(colour_indices(bgr_pixels), minlength=len(COLOUR_NAMES))
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
            return f"person in a {self.upper} top and {self.lower} trousers"
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
                       width_deg: float, distance: Distance) -> Appearance:
    """Colours of the upper and lower halves of `mask` (same size as `small_bgr`)."""
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
    upper_name = dominant_colour(upper if upper.size else lower)
    lower_name = dominant_colour(lower if lower.size else upper)
    return Appearance(upper_name, lower_name, size, label)
