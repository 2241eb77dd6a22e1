"""A front pinhole camera looking at the ground plane, rendered by table lookup.

The track is rasterised once into a palette texture (one uint8 class per cell: ground,
road, border line, centerline). Each pixel's ray is intersected with the ground once, in
the car frame; a frame is then a rotation + translation of those ground points into the
world, a conversion to texture indices and two gathers (texture -> class -> colour).
No per-pixel Python, a few hundred microseconds per 160x120 frame.
"""
from __future__ import annotations

import math
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

BORDER_LINE_WIDTH_M = 0.05  # DeepRacer tapes 2-inch white lines on the track edges
CENTERLINE_WIDTH_M = 0.04
CENTERLINE_DASH_M = 0.30  # dash and gap length of the yellow centerline
TEXTURE_MARGIN_M = 1.0  # ground drawn around the track's bounding box; beyond it is ground too
MAX_VIEW_DISTANCE_M = 200.0  # pixels hitting the ground farther than this (at the horizon) show ground


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

    def render_batch(self, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
        """The views of k cars: (k, H, W) gray or (k, H, W, 3) RGB uint8, one compiled gather for all."""
        k = len(x_m)
        channels = 3 if self.rgb else 1
        out = np.empty((k, self.height_px * self.width_px, channels), dtype=np.uint8)
        palette = self.palette.reshape(len(PALETTE_RGB), channels)
        _render_frames(np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64), np.asarray(yaw_rad, dtype=np.float64),
                       self._inv_res, self._origin_px[0], self._origin_px[1], self._ground_fwd_px, self._ground_left_px,
                       self._first_ground_px, self._max_col, self._max_row, self._tex_w, self._tex_flat, palette, out)
        return out.reshape((k, self.height_px, self.width_px, 3) if self.rgb else (k, self.height_px, self.width_px))


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
