"""Procedural sprites: people, cyclists, cars and balls painted on an actor's billboard.

A sprite is a few primitives (capsules, ellipses, convex polygons) in billboard coordinates.
Each primitive is evaluated only over the pixels of its own bounding box, found from the
monotone pixel -> billboard mapping, so a person filling half the frame costs a few small
array operations rather than a dozen passes over the whole actor box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

# BGR, as OpenCV writes them. Names are the words captions use.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (40, 40, 200),
    "blue": (190, 90, 30),
    "green": (60, 150, 50),
    "yellow": (40, 210, 230),
    "orange": (30, 130, 240),
    "white": (235, 235, 235),
    "black": (30, 30, 30),
    "grey": (130, 130, 130),
    "purple": (140, 50, 120),
    "brown": (40, 75, 120),
    "dark blue": (100, 40, 20),
    "beige": (150, 190, 210),
    "silver": (190, 190, 185),
}
TOP_COLOURS = ("red", "blue", "green", "yellow", "orange", "white", "black", "grey", "purple")
BOTTOM_COLOURS = ("black", "dark blue", "grey", "brown", "beige")
CAR_COLOURS = ("silver", "red", "white", "blue", "black")
BALL_COLOURS = ("yellow", "orange", "red", "white")

# Palette indices shared by all sprites; 0 is transparent.
SKIN, HAIR, MAIN, SECOND, DARK, WINDOW, HUB = 1, 2, 3, 4, 5, 6, 7
_FIXED = {
    SKIN: (120, 150, 190),
    HAIR: (25, 30, 40),
    DARK: (20, 20, 20),
    WINDOW: (90, 70, 60),
    HUB: (160, 160, 160),
}

LookKind = Literal["person", "cyclist", "car", "ball"]
CAR_LENGTH_M = 4.2


@dataclass(frozen=True)
class Look:
    """What an actor looks like: a shape and its colours (caption words come from these)."""

    kind: LookKind
    height_m: float
    main: str  # top for people, body for cars and balls
    second: str = "black"  # trousers for people

    def palette(self) -> np.ndarray:
        """Palette index -> BGR (uint8)."""
        table = np.zeros((8, 3), dtype=np.uint8)
        for index, colour in _FIXED.items():
            table[index] = colour
        table[MAIN], table[SECOND] = COLOURS[self.main], COLOURS[self.second]
        return table

    def half_width_m(self, reach: float = 0.0) -> float:
        """Half the sprite's width: how far from its centre line anything is painted."""
        if self.kind == "person":
            return self.height_m * max(0.2, 0.2 + 0.26 * reach)
        if self.kind == "cyclist":
            return self.height_m * 0.22
        if self.kind == "car":
            return CAR_LENGTH_M / 2 + 0.05
        return self.height_m / 2


class Canvas:
    """Palette indices over one actor's pixel box, in sprite units.

    `x` (per column) increases to the right; `y` (per pixel) is height above the sprite's base.
    Along any column y decreases down the rows, and across columns it is extreme where x is
    extreme or zero, which is what lets a primitive find its own pixel box cheaply.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.part = np.zeros(y.shape, dtype=np.uint8)
        self._centre = int(np.argmin(np.abs(x)))

    def _box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
        c0, c1 = int(np.searchsorted(self.x, x0, "left")), int(np.searchsorted(self.x, x1, "right"))
        if c1 <= c0:
            return None
        probe = self.y[:, [c0, c1 - 1, min(max(self._centre, c0), c1 - 1)]]
        rows = np.flatnonzero((probe.max(axis=1) >= y0) & (probe.min(axis=1) <= y1))
        if rows.size == 0:
            return None
        return slice(int(rows[0]), int(rows[-1]) + 1), slice(c0, c1)

    def _fill(self, box: tuple[float, float, float, float], inside: Callable, value: int) -> None:
        found = self._box(*box)
        if found is None:
            return
        rows, cols = found
        x, y = self.x[None, cols], self.y[rows, cols]
        self.part[rows, cols][inside(x, y)] = value

    def capsule(self, a: tuple[float, float], b: tuple[float, float], radius: float, value: int) -> None:
        (ax, ay), dx, dy = a, b[0] - a[0], b[1] - a[1]
        length2 = max(dx * dx + dy * dy, 1e-12)

        def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            t = np.clip(((x - ax) * dx + (y - ay) * dy) / length2, 0.0, 1.0)
            return (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 <= radius * radius

        box = (min(ax, b[0]) - radius, max(ax, b[0]) + radius, min(ay, b[1]) - radius, max(ay, b[1]) + radius)
        self._fill(box, inside, value)

    def ellipse(
        self, centre: tuple[float, float], rx: float, ry: float, value: int, above: float = -np.inf
    ) -> None:
        cx, cy = centre
        box = (cx - rx, cx + rx, max(cy - ry, above), cy + ry)
        self._fill(
            box, lambda x, y: (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0) & (y >= above), value
        )

    def polygon(self, points: Sequence[tuple[float, float]], value: int) -> None:
        """A convex polygon, points counter-clockwise."""
        pts = np.asarray(points, dtype=np.float64)
        edges = list(zip(pts, np.roll(pts, -1, axis=0), strict=True))

        def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            result = np.ones(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
            for (px, py), (qx, qy) in edges:
                result &= (qx - px) * (y - py) - (qy - py) * (x - px) >= 0
            return result

        self._fill((pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max()), inside, value)

    def rect(self, x0: float, x1: float, y0: float, y1: float, value: int) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], value)


def _person(canvas: Canvas, reach: float, phase: float, stride: float) -> None:
    """Units of body height, feet at y = 0. Reaching extends the right arm (viewer's right) out."""
    swing = 0.07 * np.sin(phase) * stride
    for side in (-1.0, 1.0):
        foot = (side * (0.055 + swing), 0.03)
        canvas.capsule((side * 0.055, 0.5), foot, 0.045, SECOND)
        canvas.capsule(foot, (foot[0] + 0.03, 0.015), 0.022, DARK)
    canvas.polygon(
        [(-0.12, 0.48), (0.12, 0.48), (0.12, 0.79), (0.09, 0.84), (-0.09, 0.84), (-0.12, 0.79)], MAIN
    )
    left_hand = (-0.16 - 0.3 * swing, 0.5)
    right_hand = (0.16 + 0.26 * reach + 0.3 * swing * (1 - reach), 0.5 + 0.22 * reach)
    for shoulder, hand in (((-0.135, 0.81), left_hand), ((0.135, 0.81), right_hand)):
        canvas.capsule(shoulder, hand, 0.034, MAIN)
        canvas.ellipse(hand, 0.03, 0.03, SKIN)
    canvas.ellipse((0.0, 0.925), 0.065, 0.075, SKIN)
    canvas.ellipse((0.0, 0.925), 0.065, 0.075, HAIR, above=0.95)


def _cyclist(canvas: Canvas, phase: float) -> None:
    # Seen head-on: the rider above a thin wheel, a handlebar across.
    _person(canvas, 0.0, phase, 0.6)
    canvas.rect(-0.025, 0.025, 0.0, 0.36, DARK)
    canvas.rect(-0.2, 0.2, 0.588, 0.612, DARK)


def _car(canvas: Canvas) -> None:
    """Metres; seen side-on, CAR_LENGTH_M long and 1.45 m high."""
    half = CAR_LENGTH_M / 2
    canvas.rect(-half, half, 0.3, 0.95, MAIN)
    canvas.polygon([(-half * 0.65, 0.94), (half * 0.45, 0.94), (half * 0.2, 1.45), (-half * 0.5, 1.45)], MAIN)
    canvas.polygon([(-half * 0.58, 1.0), (-0.15, 1.0), (-0.15, 1.4), (-half * 0.46, 1.4)], WINDOW)
    canvas.polygon([(-0.05, 1.0), (half * 0.38, 1.0), (half * 0.17, 1.4), (-0.05, 1.4)], WINDOW)
    for centre in (-half * 0.62, half * 0.62):
        canvas.ellipse((centre, 0.33), 0.32, 0.32, DARK)
        canvas.ellipse((centre, 0.33), 0.12, 0.12, HUB)


def _ball(canvas: Canvas, radius: float) -> None:
    canvas.ellipse((0.0, radius), radius, radius, MAIN)
    canvas.polygon(
        [(-radius, 0.8 * radius), (radius, 1.5 * radius), (radius, 1.3 * radius), (-radius, 0.6 * radius)],
        DARK,
    )
    # Keep the seam line inside the ball's outline.
    outside = (canvas.x[None, :] ** 2 + (canvas.y - radius) ** 2) > radius * radius
    canvas.part[outside & (canvas.part == DARK)] = 0


def paint(look: Look, u: np.ndarray, v: np.ndarray, reach: float, phase: float, stride: float) -> np.ndarray:
    """Palette index per pixel. u: metres right of the centre line, per column, increasing;
    v: metres above the sprite's base, per pixel. 0 where the sprite is absent."""
    scale = look.height_m if look.kind in ("person", "cyclist") else 1.0
    canvas = Canvas((u / scale).astype(np.float32), (v / scale).astype(np.float32))
    if look.kind == "person":
        _person(canvas, reach, phase, stride)
    elif look.kind == "cyclist":
        _cyclist(canvas, phase)
    elif look.kind == "car":
        _car(canvas)
    else:
        _ball(canvas, look.height_m / 2)
    return canvas.part
