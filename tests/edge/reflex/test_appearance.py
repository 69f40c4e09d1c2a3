import numpy as np
import pytest

from vigil360.edge.geometry import Distance
from vigil360.edge.reflex.appearance import (
    COLOUR_NAMES,
    Appearance,
    article,
    colour_indices,
    dominant_colour,
    grey_world_gains,
    measure_appearance,
    size_class,
)

# X-Rite ColorChecker Classic patches, sRGB (D65) as published by BabelColor (post-2014 formulation),
# with the plain words a sighted person could use for each (a set where two words are fair).
CHECKER = [
    ("dark skin", (115, 82, 68), {"brown"}),
    ("light skin", (194, 150, 130), {"beige", "pink", "orange"}),
    ("blue sky", (98, 122, 157), {"blue", "grey"}),
    ("foliage", (87, 108, 67), {"green"}),
    ("blue flower", (133, 128, 177), {"blue", "purple"}),
    ("bluish green", (103, 189, 170), {"teal", "green"}),
    ("orange", (214, 126, 44), {"orange"}),
    ("purplish blue", (80, 91, 166), {"blue", "purple"}),
    ("moderate red", (193, 90, 99), {"red", "pink"}),
    ("purple", (94, 60, 108), {"purple"}),
    ("yellow green", (157, 188, 64), {"green", "yellow"}),
    ("orange yellow", (224, 163, 46), {"orange", "yellow"}),
    ("blue", (56, 61, 150), {"blue"}),
    ("green", (70, 148, 73), {"green"}),
    ("red", (175, 54, 60), {"red"}),
    ("yellow", (231, 199, 31), {"yellow"}),
    ("magenta", (187, 86, 149), {"pink", "purple"}),
    ("cyan", (8, 133, 161), {"teal", "blue"}),
    ("white", (243, 243, 242), {"white"}),
    ("neutral 8", (200, 200, 200), {"white", "grey"}),
    ("neutral 6.5", (160, 160, 160), {"grey"}),
    ("neutral 5", (122, 122, 121), {"grey"}),
    ("neutral 3.5", (85, 85, 85), {"grey", "black"}),
    ("black", (52, 52, 52), {"black"}),
]
# CIE 1931 XYZ -> linear sRGB (IEC 61966-2-1) and illuminant chromaticities (CIE 15).
_XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
_ILLUMINANTS = {"D65": (0.31271, 0.32902), "A": (0.44757, 0.40745), "D50": (0.34567, 0.35850),
                "F11": (0.38052, 0.37713), "D75": (0.29902, 0.31485)}


def _illuminant_rgb(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    rgb = _XYZ_TO_SRGB @ np.array([x / y, 1.0, (1 - x - y) / y])
    return rgb / rgb[1]


def _srgb_to_linear(rgb: tuple[int, int, int]) -> np.ndarray:
    c = np.asarray(rgb, float) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.round(255 * np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
                    ).astype(np.uint8)


def _chart_scene(illuminant: str, exposure: float) -> tuple[np.ndarray, np.ndarray]:
    """(BGR pixels of the 24 patches, BGR pixels of the whole scene: the chart on a neutral-5 surround of
    equal area) as an sRGB camera balanced for daylight records them under `illuminant`, metered so the
    brightest channel of white light is just unclipped, times `exposure`."""
    light = _illuminant_rgb(_ILLUMINANTS[illuminant]) / _illuminant_rgb(_ILLUMINANTS["D65"])
    light = light / light.max() * exposure
    patches = np.array([_srgb_to_linear(rgb) for _, rgb, _ in CHECKER]) * light
    surround = np.tile(_srgb_to_linear((122, 122, 121)) * light, (2400, 1))
    scene = np.vstack([np.repeat(patches, 100, axis=0), surround])
    return _linear_to_srgb(patches)[:, ::-1], _linear_to_srgb(scene)[:, ::-1]


@pytest.mark.parametrize("illuminant", ["D65", "A", "D50", "F11", "D75"])
@pytest.mark.parametrize("exposure", [0.5, 0.75, 1.0])
def test_colorchecker_patches_are_named_after_white_balance(illuminant: str, exposure: float) -> None:
    patches, scene = _chart_scene(illuminant, exposure)
    gains = grey_world_gains(scene)
    names = [COLOUR_NAMES[i] for i in colour_indices(patches, gains)]
    wrong = [(patch, got) for (patch, _, fair), got in zip(CHECKER, names, strict=True) if got not in fair]
    assert not wrong


def test_without_white_balance_tungsten_light_turns_the_chart_orange() -> None:
    # The balance is doing the work: under CIE A the raw pixels of the neutral patches read warm.
    patches, _ = _chart_scene("A", 1.0)
    names = [COLOUR_NAMES[i] for i in colour_indices(patches)]
    neutrals = names[18:23]
    assert sum(name not in ("white", "grey") for name in neutrals) >= 3


def test_grey_world_ignores_clipped_pixels_and_bounds_its_gains() -> None:
    clipped = np.full((100, 3), 255, np.uint8)
    assert grey_world_gains(clipped) == pytest.approx([1, 1, 1])
    blue_only = np.tile(np.array([[200, 10, 10]], np.uint8), (100, 1))
    assert grey_world_gains(blue_only).max() <= 12.0


def test_the_most_frequent_name_wins_over_stray_pixels() -> None:
    red, grey = (60, 54, 175), (122, 122, 121)  # ColorChecker red and neutral 5, BGR
    pixels = np.array([red] * 8 + [grey] * 3, dtype=np.uint8)
    assert dominant_colour(pixels) == "red"


@pytest.mark.parametrize(
    ("appearance", "phrase"),
    [
        (Appearance("red", "blue", "person-sized", "person"), "person in a red top and blue trousers"),
        (Appearance("black", "black", "person-sized", "person"), "person dressed in black"),
        (Appearance("yellow", "yellow", "small", "small object"), "small yellow object"),
        (Appearance("white", "black", "large", "vehicle"), "white vehicle"),
        (Appearance("grey", "grey", "unknown", "moving object"), "grey moving object"),
        (Appearance("orange", "grey", "person-sized", "person"), "person in an orange top and grey trousers"),
    ],
)
def test_phrases(appearance: Appearance, phrase: str) -> None:
    assert appearance.phrase() == phrase


@pytest.mark.parametrize(("word", "expected"), [("orange", "an"), ("red", "a"), ("olive", "an"), ("yellow", "a"),
                                                ("ash", "an"), ("indigo", "an"), ("ecru", "an"), ("blue", "a")])
def test_an_before_vowels(word: str, expected: str) -> None:
    assert article(word) == expected


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
    image[10:30, 15:25] = (60, 54, 175)  # ColorChecker red (BGR): the top
    image[30:50, 15:25] = (150, 61, 56)  # ColorChecker blue: the trousers
    image[~mask] = (121, 122, 122)  # neutral 5 street: the mask must ignore it, white balance uses it
    found = measure_appearance(image, mask, top_pitch=10.0, contact_pitch=-21.8, width_deg=9.0,
                               distance=Distance(3.0, 0.2))
    assert (found.upper, found.lower, found.label_guess) == ("red", "blue", "person")
    with pytest.raises(ValueError, match="empty mask"):
        measure_appearance(image, np.zeros_like(mask), 0.0, -10.0, 3.0, Distance(3.0, 0.2))
