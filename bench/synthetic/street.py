"""A street the wearer can walk down: paved ground, facades with depth, parked cars, a sky.

Unlike the courtyard (one panorama rendered once, rotated for a turn), a walking camera sees
parallax, so the street is ray cast every frame from the camera's own position. To keep that
cheap the textures are baked once into one atlas (ground, the two facades, the sky) and each
frame only computes where every pixel's ray lands and samples the atlas with `cv2.remap`. Far
surfaces are sampled from a blurred copy of the atlas, blended by the ray's footprint, so the
paving does not shimmer (alias) as the camera moves - real optics low-pass far texture too.

Textures follow natural-image statistics (1/f noise on every surface) with man-made structure
on top: paving slabs, brick courses, recessed windows (a shadowed reveal on one side and the
top gives them depth), doors, rooflines of differing heights.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_TEXEL_M = 0.04  # metres per atlas texel
_GROUND_PERIOD_M = 16.0
_FACADE_PERIOD_M = 64.0
_FACADE_HEIGHT_M = 16.0
_SKY_W, _SKY_H = 512, 128  # sky texture over world yaw x upper hemisphere pitch
# With a photograph as the backdrop, the street's own ground ends here and the photograph (at infinity) shows
# beyond: at 30 m a 10 cm step moves a point by under 0.2 deg, less than a pixel at the 480-px working width.
BACKDROP_M = 30.0


def pink_noise(shape: tuple[int, int], rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std noise with a 1/f^exponent amplitude spectrum, tileable (it is periodic)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    spectrum = (rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))) / radius**exponent
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(h, w))
    return (field / (field.std() + 1e-9)).astype(np.float32)


@dataclass(frozen=True)
class ParkedCar:
    x: float  # centre, metres
    z: float
    length: float
    width: float
    height: float
    colour: tuple[float, float, float]


@dataclass
class Street:
    """A straight street along z: facades at x = -left and x = +right, cars parked along one side."""

    left: float
    right: float
    roofs_left: np.ndarray  # roof height (m) per facade texel column
    roofs_right: np.ndarray
    atlas: np.ndarray  # uint8 BGR, sharp
    atlas_blur: np.ndarray
    cars: list[ParkedCar]
    ground_rows: tuple[int, int]  # atlas row ranges of each texture
    left_rows: tuple[int, int]
    right_rows: tuple[int, int]
    sky_rows: tuple[int, int]
    # A real photograph (uint8 BGR equirect) for everything beyond BACKDROP_M: no facades, no sky texture.
    backdrop: np.ndarray | None = None

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Street:
        left, right = float(rng.uniform(10.0, 16.0)), float(rng.uniform(10.0, 16.0))
        ground = _paving(rng)
        facade_l, roofs_l = _facade(rng)
        facade_r, roofs_r = _facade(rng)
        facade_r *= 0.82  # the far side of the street in its own light
        sky = _sky(rng)
        width = max(t.shape[1] for t in (ground, facade_l, facade_r, sky))
        parts, rows, top = [], [], 0
        for texture in (ground, facade_l, facade_r, sky):
            # Two wrapped texels right and below, so bilinear reads across a period's edge stay inside it.
            texture = np.pad(texture, ((0, 2), (0, 2), (0, 0)), mode="wrap")
            padded = np.zeros((texture.shape[0], width + 2, 3), np.float32)
            padded[:, : texture.shape[1]] = texture
            parts.append(padded)
            rows.append((top, top + texture.shape[0]))
            top += texture.shape[0]
        atlas = np.concatenate(parts, axis=0)
        blurred = np.clip(cv2.GaussianBlur(atlas, (0, 0), 2.5), 0, 255).astype(np.uint8)
        atlas = np.clip(atlas, 0, 255).astype(np.uint8)
        cars = []
        side = float(rng.choice([-1.0, 1.0]))
        kerb = (right if side > 0 else left) - 3.0
        z = float(rng.uniform(-40, -25))
        while z < 60:
            if rng.random() < 0.75:
                colour = tuple(float(c) for c in rng.uniform(30, 220, 3))
                cars.append(ParkedCar(side * kerb, z, float(rng.uniform(3.8, 4.8)), 1.8,
                                      float(rng.uniform(1.4, 1.6)), colour))  # type: ignore[arg-type]
            z += float(rng.uniform(5.5, 9.0))
        return cls(left, right, roofs_l, roofs_r, atlas, blurred, cars, rows[0], rows[1], rows[2], rows[3])

    def contains(self, x: float, z: float) -> bool:
        """Actors beyond a facade are inside the buildings (they come and go through doorways)."""
        return -self.left < x < self.right

    def render(self, width: int, height: int, cam_x: float, cam_z: float, cam_h: float,
               yaw_deg: float) -> np.ndarray:
        """uint8 BGR equirect seen from (cam_x, cam_h, cam_z) by a level camera turned yaw_deg right."""
        f32 = np.float32
        cols = (np.arange(width, dtype=f32) + f32(0.5) - f32(width / 2.0)) * f32(2 * np.pi / width) \
            + f32(np.radians(yaw_deg))
        rows = (f32(height / 2.0) - np.arange(height, dtype=f32) - f32(0.5)) * f32(np.pi / height)
        sin_y, cos_y = np.sin(cols)[None, :], np.cos(cols)[None, :]
        cos_p, sin_p = np.cos(rows)[:, None], np.sin(rows)[:, None]
        dx = cos_p * sin_y
        dz = cos_p * cos_y
        far = f32(1e6)
        # Ground hits depend on the row only (range) and the column only (direction): outer products.
        row_range = np.where(sin_p < -1e-5, f32(cam_h) / np.maximum(-sin_p, f32(1e-5)) * cos_p, far)
        with np.errstate(divide="ignore"):
            inv_right = np.where(sin_y > 1e-5, f32(self.right - cam_x) / sin_y, far)
            inv_left = np.where(sin_y < -1e-5, f32(-self.left - cam_x) / sin_y, far)
        # Horizontal distance to the nearest facade along each column, the same for every row.
        col_wall = np.minimum(inv_left, inv_right)
        on_right = (inv_right <= inv_left)[0]
        hor_ground = np.broadcast_to(row_range, (height, width))
        wall_z = f32(cam_z) + col_wall * cos_y  # (1, W)
        texel_z = np.mod(wall_z / f32(_TEXEL_M), f32(_FACADE_PERIOD_M / _TEXEL_M))
        roof_index = texel_z.astype(np.int32)[0] % self.roofs_left.size
        roof = np.where(on_right, self.roofs_right[roof_index], self.roofs_left[roof_index])[None, :]
        tan_p = sin_p / np.maximum(cos_p, f32(1e-6))
        wall_y = f32(cam_h) + col_wall * tan_p  # (H, W)
        if self.backdrop is None:
            wall = (col_wall < hor_ground) & (wall_y <= roof) & (wall_y >= 0)
            ground = ~wall & (hor_ground < far)
        else:
            wall = np.zeros((height, width), bool)
            ground = hor_ground < f32(BACKDROP_M)
        period = f32(_GROUND_PERIOD_M / _TEXEL_M)
        gx = np.mod((f32(cam_x) + hor_ground * sin_y) / f32(_TEXEL_M), period)
        gz = np.mod((f32(cam_z) + hor_ground * cos_y) / f32(_TEXEL_M), period) + f32(self.ground_rows[0])
        facade_top = np.where(on_right, f32(self.right_rows[0]), f32(self.left_rows[0]))[None, :]
        wy = facade_top + (f32(_FACADE_HEIGHT_M) - wall_y) / f32(_TEXEL_M)
        sky_x = np.broadcast_to(np.mod(cols / f32(2 * np.pi), f32(1.0))[None, :] * f32(_SKY_W), (height, width))
        sky_y = f32(self.sky_rows[0]) + (f32(1.0) - np.clip(rows, 0, np.pi / 2)[:, None] / f32(np.pi / 2)) \
            * f32(_SKY_H - 1)
        map_x = np.where(wall, np.broadcast_to(texel_z, (height, width)), np.where(ground, gx, sky_x))
        map_y = np.where(wall, wy, np.where(ground, gz, np.broadcast_to(sky_y, (height, width))))
        sharp = cv2.remap(self.atlas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        soft = cv2.remap(self.atlas_blur, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        # A pixel's footprint on the surface, in texels: distance x pixel angle / obliquity.
        hor = np.where(wall, col_wall, np.where(ground, hor_ground, f32(0)))
        obliquity = np.where(wall, np.abs(sin_y) * cos_p, np.abs(sin_p)) + f32(0.05)
        footprint = hor * f32(np.pi / height / _TEXEL_M) / (obliquity * cos_p + f32(1e-3))
        soft_w = np.clip((footprint - f32(1.0)) * f32(0.5), f32(0), f32(1))
        image = cv2.blendLinear(sharp, soft, f32(1) - soft_w, soft_w)
        if self.backdrop is not None:
            beyond = ~ground
            image[beyond] = _photograph(self.backdrop, cols, rows)[beyond]
        lam_hit = np.where(wall | ground, hor / np.maximum(cos_p, f32(1e-6)), far)
        dy = np.broadcast_to(sin_p, (height, width))
        for car in self.cars:
            _draw_car(image, lam_hit, car, cam_x, cam_z, cam_h, dx, dy, dz)
        return image


def _photograph(photo: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The photograph sampled at world yaws `cols` (radians, per column) and pitches `rows` (per row)."""
    f32 = np.float32
    height, width = photo.shape[:2]
    map_x = np.mod(cols * f32(width / (2 * np.pi)) + f32(width / 2.0 - 0.5), f32(width))
    map_y = f32(height / 2.0 - 0.5) - rows * f32(height / np.pi)
    map_x, map_y = np.broadcast_arrays(map_x[None, :], map_y[:, None])
    return cv2.remap(photo, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_WRAP)


def _draw_car(image: np.ndarray, lam_hit: np.ndarray, car: ParkedCar, cam_x: float, cam_z: float, cam_h: float,
              dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> None:
    """Slab-test the rays of the car's angular bounding box against its box; nearest hit wins."""
    height, width = lam_hit.shape
    x0, x1 = car.x - car.width / 2 - cam_x, car.x + car.width / 2 - cam_x
    z0, z1 = car.z - car.length / 2 - cam_z, car.z + car.length / 2 - cam_z
    y0, y1 = -cam_h, car.height - cam_h
    corners = np.array([(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])
    ranges = np.hypot(corners[:, 0], corners[:, 2])
    if ranges.min() > 40.0 or ranges.min() < 0.3:
        return
    yaws = np.arctan2(corners[:, 0], corners[:, 2])
    pitches = np.arctan2(corners[:, 1], ranges)
    r0 = max(int((np.pi / 2 - pitches.max()) / np.pi * height) - 1, 0)
    r1 = min(int((np.pi / 2 - pitches.min()) / np.pi * height) + 2, height)
    # Column range of the yaws, taken the short way round (the camera's yaw is in dx/dz already,
    # so find the columns whose ray yaw falls within the corners' yaw span).
    ray_yaw = np.arctan2(dx[height // 2], dz[height // 2])
    centre = np.arctan2(np.sin(yaws).mean(), np.cos(yaws).mean())
    spread = np.abs((yaws - centre + np.pi) % (2 * np.pi) - np.pi).max() + 0.02
    cols = np.flatnonzero(np.abs((ray_yaw - centre + np.pi) % (2 * np.pi) - np.pi) <= spread)
    if cols.size == 0 or r1 <= r0:
        return
    sub = (slice(r0, r1), cols)
    ddx, ddy, ddz = dx[r0:r1][:, cols], dy[r0:r1][:, cols], dz[r0:r1][:, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.sort(np.stack([x0 / ddx, x1 / ddx]), axis=0)
        ty = np.sort(np.stack([y0 / ddy, y1 / ddy]), axis=0)
        tz = np.sort(np.stack([z0 / ddz, z1 / ddz]), axis=0)
    near = np.nanmax(np.stack([tx[0], ty[0], tz[0]]), axis=0)
    exit_ = np.nanmin(np.stack([tx[1], ty[1], tz[1]]), axis=0)
    hit = (near <= exit_) & (near > 0) & (near < lam_hit[sub])
    if not hit.any():
        return
    # Which face was hit: the slab whose entry time is the latest.
    face = np.argmax(np.stack([tx[0], ty[0], tz[0]]), axis=0)
    y_hit = cam_h + near * ddy
    colour = np.array(car.colour, np.float32)
    shade = np.where(face == 1, 1.1, np.where(face == 0, 0.8, 0.95)).astype(np.float32)
    pixels = colour[None, None, :] * shade[..., None]
    glass = (y_hit > 0.95) & (y_hit < car.height - 0.1) & (face != 1)
    pixels[glass] = np.array([60, 55, 50], np.float32)
    wheels = y_hit < 0.35
    pixels[wheels] = np.array([25, 25, 28], np.float32)
    block = image[r0:r1][:, cols]
    block[hit] = pixels[hit]
    image[r0:r1, cols] = block
    depth = lam_hit[r0:r1][:, cols]
    depth[hit] = near[hit]
    lam_hit[r0:r1, cols] = depth


def _paving(rng: np.random.Generator) -> np.ndarray:
    size = int(_GROUND_PERIOD_M / _TEXEL_M)
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) * _TEXEL_M
    slab = float(rng.choice([0.4, 0.5, 0.6]))
    iu, iv = np.floor(u / slab).astype(np.int64), np.floor(v / slab).astype(np.int64)
    shade = (((iu * 73856093) ^ (iv * 19349663)) % 97 / 97.0).astype(np.float32)
    fu, fv = u / slab - iu, v / slab - iv
    grout = (np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) < 0.05).astype(np.float32)
    base = rng.uniform(95, 150, 3).astype(np.float32)
    grain = pink_noise((size, size), rng)
    image = base[None, None, :] * (0.85 + 0.25 * shade + 0.07 * grain)[..., None] * (1 - 0.4 * grout)[..., None]
    return image.astype(np.float32)


def _facade(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    width, height = int(_FACADE_PERIOD_M / _TEXEL_M), int(_FACADE_HEIGHT_M / _TEXEL_M)
    y = (_FACADE_HEIGHT_M - (np.arange(height, dtype=np.float32) + 0.5) * _TEXEL_M)[:, None]  # metres up
    z = ((np.arange(width, dtype=np.float32) + 0.5) * _TEXEL_M)[None, :]
    image = np.zeros((height, width, 3), np.float32)
    roofs = np.zeros(width, np.float32)
    start = 0.0
    grain = pink_noise((height, width), rng)
    while start < _FACADE_PERIOD_M:
        length = float(min(rng.uniform(6.0, 14.0), _FACADE_PERIOD_M - start))
        columns = slice(int(start / _TEXEL_M), int((start + length) / _TEXEL_M))
        roofs[columns] = float(rng.uniform(6.0, 14.0))
        colour = rng.uniform(60, 210, 3).astype(np.float32)
        local = z[:, columns] - start
        brick = bool(rng.random() < 0.5)
        part = np.broadcast_to(colour, (height, local.shape[1], 3)).copy()
        if brick:
            course = np.floor(y / 0.075)
            offset = (local / 0.23 + 0.5 * (course % 2)) % 1.0
            mortar = ((y / 0.075) % 1.0 < 0.15) | (offset < 0.05)
            part *= np.where(mortar, 0.75, 1.0)[..., None]
        # Windows on a grid, recessed: dark glass, a shadowed reveal at the left and top.
        bay = float(rng.uniform(2.0, 3.2))
        wx = local % bay
        floor_y = (y - 0.4) % 3.0
        window = (wx > 0.5) & (wx < bay - 0.5) & (floor_y > 0.9) & (floor_y < 2.5) & (y > 2.8)
        reveal = window & ((wx < 0.62) | (floor_y > 2.36))
        glass = np.array(rng.uniform(40, 90, 3), np.float32)
        part[window] = glass + 20 * (np.sin(local * 3.1 + y * 0.7) > 0.6)[window][:, None]
        part[reveal] = colour * 0.45
        door = (np.abs(local - length / 2) < 0.6) & (y < 2.2)
        part[door] = colour * 0.35
        image[:, columns] = part
        start += length
    image *= (1.0 + 0.08 * grain)[..., None]
    # Soft daylight from above: lower storeys a little darker.
    image *= (0.85 + 0.15 * np.clip(y / _FACADE_HEIGHT_M, 0, 1))[..., None]
    return image, roofs


def _sky(rng: np.random.Generator) -> np.ndarray:
    pitch = np.linspace(1.0, 0.0, _SKY_H, dtype=np.float32)[:, None, None]  # 1 at the zenith, 0 at the horizon
    horizon = np.array([230, 215, 200], np.float32)
    zenith = np.array([200, 150, 100], np.float32)
    base = horizon * (1 - pitch) + zenith * pitch
    clouds = pink_noise((_SKY_H, _SKY_W), rng, exponent=1.3)
    return (base + 18.0 * np.clip(clouds, -1.5, 2.5)[..., None]).astype(np.float32)
