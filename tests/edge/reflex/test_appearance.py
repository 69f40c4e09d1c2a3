import numpy as np
import pytest

from vigil360.edge.geometry import Distance
from vigil360.edge.reflex.appearance import Appearance, dominant_colour, measure_appearance, size_class


@pytest.mark.parametrize(
    ("bgr", "name"),
    [
        ((40, 40, 200), "red"),
        ((190, 90, 30), "blue"),
        ((100, 40, 20), "blue"),  # dark blue is still blue in plain words
        ((60, 150, 50), "green"),
        ((40, 210, 230), "yellow"),
        ((30, 130, 240), "orange"),
        ((40, 75, 120), "brown"),
        ((150, 190, 210), "beige"),
        ((140, 50, 120), "purple"),
        ((180, 105, 255), "pink"),
        ((235, 235, 235), "white"),
        ((130, 130, 130), "grey"),
        ((30, 30, 30), "black"),
        ((0, 0, 0), "black"),
    ],
)
def test_known_colours_are_named(bgr: tuple[int, int, int], name: str) -> None:
    pixels = np.array([bgr] * 5, dtype=np.uint8)
    assert dominant_colour(pixels) == name


def test_the_most_frequent_name_wins_over_stray_pixels() -> None:
    pixels = np.array([(40, 40, 200)] * 8 + [(130, 130, 130)] * 3, dtype=np.uint8)
    assert dominant_colour(pixels) == "red"


@pytest.mark.parametrize(
    ("appearance", "phrase"),
    [
        (Appearance("red", "blue", "person-sized", "person"), "person in a red top and blue trousers"),
        (Appearance("black", "black", "person-sized", "person"), "person dressed in black"),
        (Appearance("yellow", "yellow", "small", "small object"), "small yellow object"),
        (Appearance("white", "black", "large", "vehicle"), "white vehicle"),
        (Appearance("grey", "grey", "unknown", "moving object"), "grey moving object"),
    ],
)
def test_phrases(appearance: Appearance, phrase: str) -> None:
    assert appearance.phrase() == phrase


def _pitch_of_height(height_m: float, distance_m: float, camera_m: float = 1.2) -> float:
    return float(np.degrees(np.arctan2(height_m - camera_m, distance_m)))


@pytest.mark.parametrize(
    ("height_m", "width_m", "distance_m", "expected"),
    [
        (1.75, 0.5, 3.0, ("person-sized", "person")),
        (1.75, 0.5, 8.0, ("person-sized", "person")),
        (0.25, 0.25, 2.0, ("small", "small object")),
        (1.45, 4.2, 2.0, ("large", "vehicle")),
    ],
)
def test_size_class_from_angles_and_distance(height_m, width_m, distance_m, expected) -> None:
    top, contact = _pitch_of_height(height_m, distance_m), _pitch_of_height(0.0, distance_m)
    width_deg = float(np.degrees(width_m / distance_m))
    assert size_class(top, contact, width_deg, Distance(distance_m, 0.1)) == expected


def test_unknown_distance_gives_no_size_guess() -> None:
    assert size_class(5.0, -1.0, 3.0, Distance(float("inf"), float("inf"))) == ("unknown", "moving object")


def test_measure_appearance_splits_top_and_trousers() -> None:
    image = np.zeros((60, 40, 3), dtype=np.uint8)
    mask = np.zeros((60, 40), dtype=bool)
    mask[10:50, 15:25] = True
    image[10:30, 15:25] = (40, 40, 200)  # red top
    image[30:50, 15:25] = (190, 90, 30)  # blue trousers
    image[~mask] = (0, 255, 0)  # background the mask must ignore
    found = measure_appearance(image, mask, top_pitch=10.0, contact_pitch=-21.8, width_deg=9.0,
                               distance=Distance(3.0, 0.2))
    assert (found.upper, found.lower, found.label_guess) == ("red", "blue", "person")
    with pytest.raises(ValueError, match="empty mask"):
        measure_appearance(image, np.zeros_like(mask), 0.0, -10.0, 3.0, Distance(3.0, 0.2))
