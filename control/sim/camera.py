"""A front pinhole camera looking at the ground plane, rendered by table lookup.

The track is rasterised once into a palette texture (one uint8 class per cell: ground,
road, border line, centerline). Each pixel's ray is intersected with the ground once, in
the car frame; a frame is then a rotation + translation of those ground points into the
world, a conversion to texture indices and two gathers (texture -> class -> colour).
No per-pixel Python, a few hundred microseconds per 160x120 frame.

Two compiled extensions share the pixel rays' geometry: `LensPoses` gives each car its own
lens height, pitch, field of view and mounting offsets (per-episode pose jitter, stereo pairs),
and `ObjectBoxes` (DeepRacer's boxes and bot cars as upright oriented boxes) are painted over
the ground where a pixel's ray meets one first (ray/box slab test over each car's few objects,
within the object's projected bounding rectangle only). Without either, a frame is the plain
ground gather, bit for bit.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from PIL import Image, ImageDraw

from control.sim.base import CameraSpec

# Palette classes stored in the texture.
GROUND, ROAD, BORDER, CENTERLINE, SKY = 0, 1, 2, 3, 4

# RGB colours per class; chosen so their grayscale values are also far apart
# (ground 110, road 50, border 245, centerline 184, sky 201).
PALETTE_RGB = np.array(
    [
        (70, 140, 60),  # GROUND: grass, distinct from the road
        (50, 50, 50),  # ROAD: dark asphalt
        (245, 245, 245),  # BORDER: DeepRacer's white edge lines
        (230, 190, 30),  # CENTERLINE: dashed yellow
        (170, 210, 240),  # SKY: above the horizon
    ],
    dtype=np.uint8,
)
# ITU-R 601 luma: the one RGB -> gray conversion (the env converts a backend's RGB frames with it too).
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])
PALETTE_GRAY = np.round(PALETTE_RGB.astype(np.float64) @ GRAY_WEIGHTS).astype(np.uint8)

# Objects: (kind, face) -> RGB. Kinds as control.sim.objects (0 box, 1 bot car); faces: ends (along the
# object's length axis), sides, top. The shades make a volume read as 3D; DeepRacer's boxes are bright,
# its bot cars dark. First channels (gray and red) differ from every palette class's, so the appearance
# randomisation leaves object pixels their colour (control/sim/appearance.py tells classes by them).
FACE_SHADES = np.array([0.82, 0.64, 1.0])
OBJECT_BASE_RGB = np.array([(235, 140, 40), (30, 100, 200)], dtype=np.float64)  # orange box, blue bot car
OBJECT_RGB = np.round(OBJECT_BASE_RGB[:, None, :] * FACE_SHADES[None, :, None]).astype(np.uint8)  # (kinds, faces, 3)
OBJECT_GRAY = np.round(OBJECT_RGB.astype(np.float64) @ GRAY_WEIGHTS).astype(np.uint8)  # (kinds, faces)
assert not set(OBJECT_GRAY.ravel().tolist()) & set(PALETTE_GRAY.tolist())
assert not set(OBJECT_RGB[..., 0].ravel().tolist()) & set(PALETTE_RGB[:, 0].tolist())

BORDER_LINE_WIDTH_M = 0.05  # DeepRacer tapes 2-inch white lines on the track edges
CENTERLINE_WIDTH_M = 0.04
CENTERLINE_DASH_M = 0.30  # dash and gap length of the yellow centerline
TEXTURE_MARGIN_M = 1.0  # ground drawn around the track's bounding box; beyond it is ground too
MAX_VIEW_DISTANCE_M = 200.0  # pixels hitting the ground farther than this (at the horizon) show ground


# DeepRacer's camera frustum starts 0.2 m in front of the lens (deepracer-simapp bundle/markov/cameras/frustum.py,
# Frustum.near); its far plane (300 m) is beyond anything our camera draws, so ours ends at the view distance.
FRUSTUM_NEAR_M = 0.2
NEAR_CLIP_M = 0.005  # the painter ignores the parts of an object closer to the lens than this (a car inside it has crashed)


@functools.lru_cache(maxsize=64)
def frustum_constants(spec: CameraSpec) -> np.ndarray:
    """The `spec` camera's frustum as the compiled footprint test reads it: lens offset and height, pitch cos/sin, half tangents."""
    p = math.radians(spec.pitch_down_deg)
    half_w = math.tan(math.radians(spec.fov_deg) / 2)
    constants = np.array([spec.x_offset_m, spec.height_m, math.cos(p), math.sin(p), half_w, half_w * spec.height_px / spec.width_px])
    constants.flags.writeable = False  # cached per spec (frozen): shared by every call
    return constants


def footprints_in_view(spec: CameraSpec, car_x: np.ndarray, car_y: np.ndarray, car_yaw: np.ndarray, x: np.ndarray, y: np.ndarray,
                       yaw: np.ndarray, half_length_m: np.ndarray, half_width_m: np.ndarray) -> np.ndarray:
    """(N, M) whether a corner or the centre of each footprint (N, M), on the ground, lies in car i's camera frustum.

    DeepRacer's object_in_camera test (deepracer-simapp markov/track_geom/track_data.py,
    get_objects_in_camera_frustums): the footprint's 4 corners and its centre against the frustum's
    near, side, top and bottom planes; here the frustum is the `spec` camera's (its fov and aspect).
    """
    x, y, yaw, hl, hw = (np.asarray(a, dtype=np.float64) for a in (x, y, yaw, half_length_m, half_width_m))
    shape = np.broadcast_shapes(x.shape, y.shape, yaw.shape, hl.shape, hw.shape)
    x, y, yaw, hl, hw = (np.ascontiguousarray(np.broadcast_to(a, shape)) for a in (x, y, yaw, hl, hw))
    car_x, car_y, car_yaw = (np.ascontiguousarray(a, dtype=np.float64).reshape(-1) for a in (car_x, car_y, car_yaw))
    out = np.empty(shape, dtype=np.bool_)
    _footprints_in_view(frustum_constants(spec), car_x, car_y, car_yaw, x.reshape(shape[0], -1), y.reshape(shape[0], -1),
                        yaw.reshape(shape[0], -1), hl.reshape(shape[0], -1), hw.reshape(shape[0], -1), out.reshape(shape[0], -1))
    return out


@numba.njit(cache=True)
def _footprints_in_view(frustum, car_x, car_y, car_yaw, x, y, yaw, hl, hw, out):  # pragma: no cover - compiled
    """footprints_in_view for every (car i, footprint j): one compiled pass."""
    for i in range(x.shape[0]):
        c, s = math.cos(car_yaw[i]), math.sin(car_yaw[i])
        for j in range(x.shape[1]):
            out[i, j] = footprint_in_view(frustum, car_x[i], car_y[i], c, s, x[i, j], y[i, j], yaw[i, j], hl[i, j], hw[i, j])


@numba.njit(cache=True)
def footprint_in_view(frustum, car_x, car_y, car_cos, car_sin, x, y, yaw, hl, hw):  # pragma: no cover - compiled
    """Whether a corner or the centre of one footprint lies in the frustum (frustum_constants) of a car at (car_x, car_y)."""
    x_offset_m, lens_height_m, cos_p, sin_p, half_w, half_h = frustum[0], frustum[1], frustum[2], frustum[3], frustum[4], frustum[5]
    cb, sb = math.cos(yaw), math.sin(yaw)
    up_m = -lens_height_m
    for k in range(5):  # the 4 corners, then the centre
        sx = (1.0 if k < 2 else -1.0) if k < 4 else 0.0
        sy = (1.0 if k % 2 == 0 else -1.0) if k < 4 else 0.0
        ex, ey = sx * hl, sy * hw
        px, py = x + cb * ex - sb * ey, y + sb * ex + cb * ey  # the point in the world
        wx, wy = px - car_x, py - car_y
        fwd, left = car_cos * wx + car_sin * wy - x_offset_m, -car_sin * wx + car_cos * wy  # relative to the lens, car frame
        depth = fwd * cos_p - up_m * sin_p
        rise = fwd * sin_p + up_m * cos_p
        if (depth >= FRUSTUM_NEAR_M and math.hypot(fwd, left) <= MAX_VIEW_DISTANCE_M and abs(left) <= depth * half_w
                and abs(rise) <= depth * half_h):
            return True
    return False


def rasterise_track(track: Any, resolution_m: float, centerline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Palette texture (Ht, Wt) uint8 of `track` and its world origin (x0, y0) of cell [0, 0].

    Row index grows with y, column index with x; a cell spans `resolution_m` metres.
    """
    pts = np.concatenate([track.inner_m, track.outer_m, track.center_m])
    origin = pts.min(axis=0) - TEXTURE_MARGIN_M
    extent = pts.max(axis=0) + TEXTURE_MARGIN_M - origin
    width_px, height_px = (np.ceil(extent / resolution_m).astype(int) + 1).tolist()
    image = Image.new("L", (width_px, height_px), GROUND)
    draw = ImageDraw.Draw(image)

    def px(points_m: np.ndarray) -> list[tuple[float, float]]:
        """World metres -> texture pixel coordinates (PIL: x right, y down = our +y rows)."""
        return [tuple(p) for p in ((points_m - origin) / resolution_m).tolist()]

    inner, outer = track.inner_m, track.outer_m
    inner_next, outer_next = np.roll(inner, -1, axis=0), np.roll(outer, -1, axis=0)
    # The road is the union of one quad per segment: robust to either loop orientation.
    for quad in np.stack([inner, inner_next, outer_next, outer], axis=1):
        draw.polygon(px(quad), fill=ROAD)
    for border in (inner, outer):
        _draw_thick_polyline(draw, px(np.vstack([border, border[:1]])), BORDER_LINE_WIDTH_M / resolution_m, BORDER)
    if centerline:
        for dash in _centerline_dashes(track.center_m):
            _draw_thick_polyline(draw, px(dash), CENTERLINE_WIDTH_M / resolution_m, CENTERLINE)
    return np.asarray(image, dtype=np.uint8), origin


def _draw_thick_polyline(draw: ImageDraw.ImageDraw, points_px: list[tuple[float, float]], width_px: float, fill: int) -> None:
    """A polyline `width_px` wide: one quad per segment and a disc at each joint.

    PIL's own wide lines leave notches and slivers at short segments and joints.
    """
    pts = np.asarray(points_px, dtype=np.float64)
    half = 0.5 * max(width_px, 1.0)
    seg = np.diff(pts, axis=0)
    length = np.hypot(seg[:, 0], seg[:, 1])
    normal = np.c_[-seg[:, 1], seg[:, 0]] / np.maximum(length, 1e-12)[:, None] * half
    for p0, p1, nrm, ln in zip(pts[:-1], pts[1:], normal, length, strict=False):
        if ln > 1e-9:
            draw.polygon([tuple(p0 + nrm), tuple(p1 + nrm), tuple(p1 - nrm), tuple(p0 - nrm)], fill=fill)
    for x, y in pts:
        draw.ellipse([x - half, y - half, x + half, y + half], fill=fill)


def _centerline_dashes(center_m: np.ndarray) -> list[np.ndarray]:
    """Polylines of the dashed centerline: CENTERLINE_DASH_M on, CENTERLINE_DASH_M off, along the lap."""
    centre = np.vstack([center_m, center_m[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(centre, axis=0).T))])
    dashes = []
    for k in range(int(s[-1] // (2 * CENTERLINE_DASH_M))):
        s0, s1 = 2 * k * CENTERLINE_DASH_M, (2 * k + 1) * CENTERLINE_DASH_M
        inside = (s > s0) & (s < s1)
        ends = np.c_[np.interp([s0, s1], s, centre[:, 0]), np.interp([s0, s1], s, centre[:, 1])]
        dashes.append(np.vstack([ends[:1], centre[inside], ends[1:]]))
    return dashes


@dataclass(frozen=True)
class LensPoses:
    """Each car's lens for one batch of frames: every field is (k,), in the car frame (x forward, y left)."""

    height_m: np.ndarray  # lens height above the ground
    pitch_down_deg: np.ndarray  # optical axis below the horizon (positive = down)
    fov_deg: np.ndarray  # horizontal field of view
    x_offset_m: np.ndarray  # ahead of the car's centre
    y_offset_m: np.ndarray  # left of the car's centre (a stereo pair's half baseline)

    @classmethod
    def of_spec(cls, spec: CameraSpec, k: int, y_offset_m: float = 0.0) -> "LensPoses":
        """k copies of the spec's lens, moved y_offset_m to the left."""
        def full(v: float) -> np.ndarray:
            return np.full(k, float(v))
        return cls(full(spec.height_m), full(spec.pitch_down_deg), full(spec.fov_deg), full(spec.x_offset_m), full(y_offset_m))

    def take(self, rows: np.ndarray) -> "LensPoses":
        """The lenses of positions `rows`."""
        return LensPoses(self.height_m[rows], self.pitch_down_deg[rows], self.fov_deg[rows], self.x_offset_m[rows], self.y_offset_m[rows])


@dataclass(frozen=True)
class ObjectBoxes:
    """Upright boxes standing on the ground, for the envs of a batch: every field is (N, M)."""

    x_m: np.ndarray  # centre of the footprint
    y_m: np.ndarray
    yaw_rad: np.ndarray  # direction of the length axis
    half_length_m: np.ndarray
    half_width_m: np.ndarray
    height_m: np.ndarray
    kind: np.ndarray  # 0 box, 1 bot car (control.sim.objects.KIND_BOX / KIND_BOT): picks the colour

    @classmethod
    def of_race(cls, objects: Any, box_height_m: float, bot_height_m: float) -> "ObjectBoxes":
        """The boxes of a control.sim.objects.RaceObjects: its footprints, a height per kind."""
        x, y, yaw, half_length, half_width = objects.rectangles()
        kind = np.asarray(objects.state.kind, dtype=np.int64)
        return cls(x, y, yaw, half_length, half_width, np.where(kind == 1, float(bot_height_m), float(box_height_m)), kind)


class GroundCamera:
    """Pinhole camera on the car, looking forward and down at a flat world with the track painted on it."""

    def __init__(
        self,
        track: Any,
        width_px: int = CameraSpec.width_px,
        height_px: int = CameraSpec.height_px,
        fov_deg: float = CameraSpec.fov_deg,
        height_m: float = CameraSpec.height_m,
        pitch_deg: float = CameraSpec.pitch_down_deg,
        x_offset_m: float = CameraSpec.x_offset_m,
        rgb: bool = CameraSpec.rgb,
        texture_resolution_m: float = 0.02,
        centerline: bool = True,
        spec: CameraSpec | None = None,
    ) -> None:
        if spec is not None:  # one CameraSpec instead of the separate settings
            width_px, height_px, fov_deg, height_m = spec.width_px, spec.height_px, spec.fov_deg, spec.height_m
            pitch_deg, x_offset_m, rgb = spec.pitch_down_deg, spec.x_offset_m, spec.rgb
        self.width_px, self.height_px, self.rgb = int(width_px), int(height_px), bool(rgb)
        self.palette = PALETTE_RGB if self.rgb else PALETTE_GRAY
        self.texture, origin = rasterise_track(track, texture_resolution_m, centerline)
        tex_h, tex_w = self.texture.shape
        self._tex_flat = self.texture.ravel()
        self._tex_w = tex_w
        self._max_col, self._max_row = float(tex_w - 1), float(tex_h - 1)
        inv_res = 1.0 / texture_resolution_m
        self._origin_px = origin * inv_res

        # Per-pixel rays in the car frame (x forward, y left, z up), through pixel centres.
        focal_px = 0.5 * self.width_px / math.tan(math.radians(fov_deg) / 2)
        u = (np.arange(self.width_px) + 0.5 - 0.5 * self.width_px) / focal_px  # + right
        v = (0.5 * self.height_px - (np.arange(self.height_px) + 0.5)) / focal_px  # + up
        pitch = math.radians(pitch_deg)
        # Optical axis tilted down by `pitch`: forward = (cos, 0, -sin), up = (sin, 0, cos).
        ray_x = math.cos(pitch) + v * math.sin(pitch)  # (H,)
        ray_z = -math.sin(pitch) + v * math.cos(pitch)  # (H,)
        with np.errstate(divide="ignore"):
            t_row = np.where(ray_z < 0, height_m / -ray_z, np.inf)  # ray length to the ground, per row
        # Rows hitting the ground within the view distance; rows above it are sky. With no
        # roll the horizon is a row boundary, so ground pixels are a contiguous tail.
        ground_rows = np.flatnonzero(t_row * np.abs(ray_x) < MAX_VIEW_DISTANCE_M)
        self._first_ground_px = int(ground_rows[0]) * self.width_px if len(ground_rows) else self.width_px * self.height_px
        rows = np.arange(self._first_ground_px // self.width_px, self.height_px)
        gx = x_offset_m + t_row[rows, None] * ray_x[rows, None] * np.ones(self.width_px)  # forward, m
        gy = -t_row[rows, None] * u[None, :]  # left, m
        # Stored in texture pixels so a frame needs no extra scaling.
        self._ground_fwd_px = (gx * inv_res).ravel()
        self._ground_left_px = (gy * inv_res).ravel()
        self._inv_res = inv_res
        self.spec = CameraSpec(width_px=self.width_px, height_px=self.height_px, rgb=self.rgb, fov_deg=float(fov_deg),
                               height_m=float(height_m), pitch_down_deg=float(pitch_deg), x_offset_m=float(x_offset_m))
        self.last_object_pixels = np.zeros(0, dtype=np.int64)  # per frame of the latest render_batch: pixels showing an object
        self._classes = np.full(self.width_px * self.height_px, SKY, dtype=np.uint8)

    def render(self, x_m: float, y_m: float, yaw_rad: float) -> np.ndarray:
        """The view from a car at (x_m, y_m) heading yaw_rad: (H, W) gray or (H, W, 3) RGB uint8."""
        c, s = math.cos(yaw_rad), math.sin(yaw_rad)
        col0 = x_m * self._inv_res - self._origin_px[0]
        row0 = y_m * self._inv_res - self._origin_px[1]
        col = col0 + c * self._ground_fwd_px - s * self._ground_left_px
        row = row0 + s * self._ground_fwd_px + c * self._ground_left_px
        # The texture's outer cells are ground (margin), so clipping maps far points to ground.
        np.clip(col, 0.0, self._max_col, out=col)
        np.clip(row, 0.0, self._max_row, out=row)
        lin = row.astype(np.intp)
        lin *= self._tex_w
        lin += col.astype(np.intp)
        self._classes[self._first_ground_px :] = self._tex_flat[lin]
        image = self.palette.take(self._classes, axis=0)  # take: ~4x faster than fancy indexing for RGB
        return image.reshape((self.height_px, self.width_px, 3) if self.rgb else (self.height_px, self.width_px))

    def render_batch(self, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray, lens: LensPoses | None = None,
                     objects: ObjectBoxes | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """The views of k cars: (k, H, W) gray or (k, H, W, 3) RGB uint8, one compiled pass for all.

        lens: each car's own lens (None: the camera's own, precomputed); objects: boxes to paint, frame i
        seeing the boxes of env rows[i] (rows defaults to 0..k-1). last_object_pixels counts what was painted.
        """
        k = len(x_m)
        channels = 3 if self.rgb else 1
        out = np.empty((k, self.height_px * self.width_px, channels), dtype=np.uint8)
        palette = self.palette.reshape(len(PALETTE_RGB), channels)
        x, y, yaw = (np.ascontiguousarray(a, dtype=np.float64).reshape(-1) for a in (x_m, y_m, yaw_rad))
        if lens is None:
            _render_frames(x, y, yaw, self._inv_res, self._origin_px[0], self._origin_px[1], self._ground_fwd_px, self._ground_left_px,
                           self._first_ground_px, self._max_col, self._max_row, self._tex_w, self._tex_flat, palette, out)
        else:
            _render_posed(x, y, yaw, *_lens_columns(lens), self.width_px, self.height_px, self._inv_res, self._origin_px[0],
                          self._origin_px[1], self._max_col, self._max_row, self._tex_w, self._tex_flat, palette, out)
        self.last_object_pixels = np.zeros(k, dtype=np.int64)
        if objects is not None and objects.x_m.shape[1] > 0 and k:
            lens = lens if lens is not None else LensPoses.of_spec(self.spec, k)
            env_rows = np.arange(k, dtype=np.intp) if rows is None else np.asarray(rows, dtype=np.intp)
            colours = (OBJECT_RGB if self.rgb else OBJECT_GRAY[..., None]).reshape(len(OBJECT_RGB), 3, channels)
            boxes = [np.ascontiguousarray(a, dtype=np.float64) for a in (objects.x_m, objects.y_m, objects.yaw_rad,
                                                                         objects.half_length_m, objects.half_width_m, objects.height_m)]
            _paint_boxes(x, y, yaw, *_lens_columns(lens), self.width_px, self.height_px, env_rows, *boxes,
                         np.ascontiguousarray(objects.kind, dtype=np.int64), colours, np.empty(self.height_px * self.width_px),
                         np.full(self.height_px * self.width_px, -1, dtype=np.int64), out, self.last_object_pixels)
        return out.reshape((k, self.height_px, self.width_px, 3) if self.rgb else (k, self.height_px, self.width_px))


def _lens_columns(lens: LensPoses) -> tuple[np.ndarray, ...]:
    """The lens fields as the kernels take them: float64 height, pitch (rad), focal length factor, offsets."""
    def col(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    half_fov_tan = np.tan(np.radians(col(lens.fov_deg)) / 2)
    return col(lens.height_m), np.radians(col(lens.pitch_down_deg)), 0.5 / half_fov_tan, col(lens.x_offset_m), col(lens.y_offset_m)


@numba.njit(cache=True)
def _render_frames(x, y, yaw, inv_res, origin_col, origin_row, fwd, left, first_ground, max_col, max_row, tex_w, tex,
                   palette, out):  # pragma: no cover - compiled
    """Fill out (k, H*W, C): sky above the horizon, then per ground pixel the texture class's colour."""
    channels = out.shape[2]
    gray = palette[:, 0].copy()
    for k in range(x.shape[0]):
        c, s = math.cos(yaw[k]), math.sin(yaw[k])
        col0 = x[k] * inv_res - origin_col
        row0 = y[k] * inv_res - origin_row
        frame = out[k]
        for j in range(first_ground):
            for ch in range(channels):
                frame[j, ch] = palette[SKY, ch]
        if channels == 1:  # gray (the default): one byte per pixel, no channel loop
            pixels = frame[:, 0]
            for j in range(fwd.shape[0]):
                col = min(max(col0 + c * fwd[j] - s * left[j], 0.0), max_col)
                row = min(max(row0 + s * fwd[j] + c * left[j], 0.0), max_row)
                pixels[first_ground + j] = gray[tex[int(row) * tex_w + int(col)]]
            continue
        for j in range(fwd.shape[0]):
            col = min(max(col0 + c * fwd[j] - s * left[j], 0.0), max_col)
            row = min(max(row0 + s * fwd[j] + c * left[j], 0.0), max_row)
            cls = tex[int(row) * tex_w + int(col)]
            for ch in range(channels):
                frame[first_ground + j, ch] = palette[cls, ch]


@numba.njit(cache=True)
def _render_posed(x, y, yaw, cam_h, pitch, focal_of_width, x_off, y_off, width, height, inv_res, origin_col, origin_row, max_col,
                  max_row, tex_w, tex, palette, out):  # pragma: no cover - compiled
    """_render_frames with each car's own lens: the ground ray of every pixel computed on the fly (sky above the view distance)."""
    channels = out.shape[2]
    for k in range(x.shape[0]):
        c, s = math.cos(yaw[k]), math.sin(yaw[k])
        focal = focal_of_width[k] * width
        cp, sp = math.cos(pitch[k]), math.sin(pitch[k])
        col0 = x[k] * inv_res - origin_col
        row0 = y[k] * inv_res - origin_row
        frame = out[k]
        for r in range(height):
            v = (0.5 * height - (r + 0.5)) / focal
            ray_x, ray_z = cp + v * sp, -sp + v * cp
            t = cam_h[k] / -ray_z if ray_z < 0 else math.inf
            base = r * width
            if not t * abs(ray_x) < MAX_VIEW_DISTANCE_M:
                for j in range(width):
                    for ch in range(channels):
                        frame[base + j, ch] = palette[SKY, ch]
                continue
            fwd = (x_off[k] + t * ray_x) * inv_res
            # Along a row the ground point moves linearly with the column: left = left0 + j * step.
            step = -t / focal * inv_res
            left0 = (y_off[k] - t * (0.5 - 0.5 * width) / focal) * inv_res
            col_a, row_a = col0 + c * fwd - s * left0, row0 + s * fwd + c * left0
            col_b, row_b = -s * step, c * step
            for j in range(width):
                col = min(max(col_a + j * col_b, 0.0), max_col)
                row = min(max(row_a + j * row_b, 0.0), max_row)
                cls = tex[int(row) * tex_w + int(col)]
                for ch in range(channels):
                    frame[base + j, ch] = palette[cls, ch]


@numba.njit(cache=True)
def _paint_boxes(x, y, yaw, cam_h, pitch, focal_of_width, x_off, y_off, width, height, rows, box_x, box_y, box_yaw, box_hl, box_hw,
                 box_h, kind, colours, depth, depth_owner, out, painted):  # pragma: no cover - compiled
    """Paint each car's boxes over its frame where a pixel's ray meets a box before the ground or a nearer box.

    A box is skipped when it lies behind the lens; otherwise only the pixels of its projected bounding
    rectangle (its corners, clipped at the near plane) are tested (slab method in the box's frame, the entry face picks the shade).
    depth[p] holds the nearest hit so far of frame depth_owner[p] (stale for any other frame: no per-frame clearing).
    """
    channels = out.shape[2]
    num_boxes = box_x.shape[1]
    cqx, cqy, cqz, cd = np.empty(8), np.empty(8), np.empty(8), np.empty(8)  # a box's corners relative to the lens, and their depths
    for k in range(x.shape[0]):
        i = rows[k]
        c, s = math.cos(yaw[k]), math.sin(yaw[k])
        focal = focal_of_width[k] * width
        cp, sp = math.cos(pitch[k]), math.sin(pitch[k])
        # The lens in the world.
        lx = x[k] + c * x_off[k] - s * y_off[k]
        ly = y[k] + s * x_off[k] + c * y_off[k]
        lz = cam_h[k]
        frame = out[k]
        count = 0
        for j in range(num_boxes):
            hl, hw, bh = box_hl[i, j], box_hw[i, j], box_h[i, j]
            # The box centre in the car frame, relative to the lens.
            wx, wy = box_x[i, j] - lx, box_y[i, j] - ly
            fx, fy = c * wx + s * wy, -s * wx + c * wy
            radius = math.sqrt(hl * hl + hw * hw + bh * bh)
            if fx * cp + (0.5 * bh - lz) * -sp < -radius or math.sqrt(fx * fx + fy * fy) - radius > MAX_VIEW_DISTANCE_M:
                continue  # wholly behind the lens plane, or beyond the view distance
            # Projected bounding rectangle of the box's part in front of the near clip plane: its corners there, and
            # where its edges cross the plane (a box beside the lens then covers only the frame's edge it shows in).
            rel = box_yaw[i, j] - yaw[k]
            ca, sa = math.cos(rel), math.sin(rel)
            for corner in range(8):
                ex = hl if corner & 1 else -hl
                ey = hw if corner & 2 else -hw
                cqx[corner], cqy[corner], cqz[corner] = fx + ca * ex - sa * ey, fy + sa * ex + ca * ey, (bh if corner & 4 else 0.0) - lz
                cd[corner] = cqx[corner] * cp - cqz[corner] * sp  # depth along the optical axis
            c_lo, c_hi, r_lo, r_hi = width, -1, height, -1
            for corner in range(8):
                for bit in (0, 1, 2, 4):  # the corner itself (bit 0), then its edges to the corners one bit up
                    if bit == 0:
                        if cd[corner] < NEAR_CLIP_M:
                            continue
                        qx, qy, qz, d = cqx[corner], cqy[corner], cqz[corner], cd[corner]
                    else:
                        other = corner | bit
                        if other == corner or (cd[corner] < NEAR_CLIP_M) == (cd[other] < NEAR_CLIP_M):
                            continue
                        f = (NEAR_CLIP_M - cd[corner]) / (cd[other] - cd[corner])
                        qx, qy, qz = (cqx[corner] + f * (cqx[other] - cqx[corner]), cqy[corner] + f * (cqy[other] - cqy[corner]),
                                      cqz[corner] + f * (cqz[other] - cqz[corner]))
                        d = NEAR_CLIP_M
                    col = min(max(-qy / d * focal + 0.5 * width - 0.5, -1.0), width + 0.0)
                    row = min(max(0.5 * height - (qx * sp + qz * cp) / d * focal - 0.5, -1.0), height + 0.0)
                    c_lo, c_hi = min(c_lo, int(math.floor(col))), max(c_hi, int(math.ceil(col)))
                    r_lo, r_hi = min(r_lo, int(math.floor(row))), max(r_hi, int(math.ceil(row)))
            c_lo, c_hi = max(c_lo, 0), min(c_hi, width - 1)
            r_lo, r_hi = max(r_lo, 0), min(r_hi, height - 1)
            if c_lo > c_hi or r_lo > r_hi:
                continue  # outside the frame
            # The lens in the box's frame; pixel rays are rotated into it below.
            px, py = -(ca * fx + sa * fy), -(-sa * fx + ca * fy)
            pz = lz
            kd = kind[i, j]
            for r in range(r_lo, r_hi + 1):
                v = (0.5 * height - (r + 0.5)) / focal
                ray_x, ray_z = cp + v * sp, -sp + v * cp
                dz = ray_z if abs(ray_z) > 1e-12 else 1e-12
                tz1, tz2 = (0.0 - pz) / dz, (bh - pz) / dz
                tz_near, tz_far = min(tz1, tz2), max(tz1, tz2)
                for col in range(c_lo, c_hi + 1):
                    ray_y = -(col + 0.5 - 0.5 * width) / focal
                    dx = ca * ray_x + sa * ray_y
                    dy = -sa * ray_x + ca * ray_y
                    if abs(dx) < 1e-12:
                        dx = 1e-12
                    if abs(dy) < 1e-12:
                        dy = 1e-12
                    tx1, tx2 = (-hl - px) / dx, (hl - px) / dx
                    ty1, ty2 = (-hw - py) / dy, (hw - py) / dy
                    tx_near, ty_near = min(tx1, tx2), min(ty1, ty2)
                    t_near = max(tx_near, ty_near, tz_near)
                    t_far = min(max(tx1, tx2), max(ty1, ty2), tz_far)
                    if t_near > t_far or t_far <= 0.0:
                        continue
                    t = max(t_near, 0.0)
                    pixel = r * width + col
                    if depth_owner[pixel] != k:  # the first object hit at this pixel in this frame
                        depth_owner[pixel] = k
                        count += 1
                    elif t >= depth[pixel]:
                        continue
                    depth[pixel] = t
                    face = 2 if t_near == tz_near else (0 if t_near == tx_near else 1)
                    for ch in range(channels):
                        frame[pixel, ch] = colours[kd, face, ch]
        painted[k] = count
