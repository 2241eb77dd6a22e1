"""The env's rgb_array frame: top-down track with car, trail and rays, the camera view, telemetry."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from control.env.race_state import RaceState

FRAME_W, FRAME_H = 800, 480
MAP_SIZE = 480  # the top-down view is MAP_SIZE × MAP_SIZE on the left
COLOURS = {"ground": (34, 110, 50), "road": (70, 70, 74), "line": (235, 235, 235), "bg": (20, 20, 24),
           "box": (240, 150, 30), "bot": (40, 120, 250)}


def speed_colour(speed_mps: float, max_speed_mps: float) -> tuple[int, int, int]:
    """Blue (slow) → green → red (fast)."""
    t = float(np.clip(speed_mps / max_speed_mps, 0.0, 1.0))
    return (int(255 * t), int(255 * (1 - abs(2 * t - 1))), int(255 * (1 - t)))


class TrackCanvas:
    """Maps world metres to pixels of a square top-down view and caches the drawn track."""

    def __init__(self, track, size_px: int = MAP_SIZE, margin_m: float = 0.5) -> None:
        pts = np.vstack([track.inner_m, track.outer_m])
        lo, hi = pts.min(axis=0) - margin_m, pts.max(axis=0) + margin_m
        self.scale = (size_px - 1) / float(np.max(hi - lo))
        self.lo, self.size_px = lo, size_px
        self.offset = (size_px - 1 - (hi - lo) * self.scale) / 2
        image = Image.new("RGB", (size_px, size_px), COLOURS["ground"])
        draw = ImageDraw.Draw(image)
        outer, inner = self.px(track.outer_m), self.px(track.inner_m)
        # The road is the outer polygon minus the inner one, whichever side is which.
        big, small = (outer, inner) if _area(track.outer_m) >= _area(track.inner_m) else (inner, outer)
        draw.polygon(big, fill=COLOURS["road"])
        draw.polygon(small, fill=COLOURS["ground"])
        draw.line(big + big[:1], fill=COLOURS["line"], width=2)
        draw.line(small + small[:1], fill=COLOURS["line"], width=2)
        center = self.px(track.center_m)
        for i in range(0, len(center) - 1, 4):
            draw.line([center[i], center[i + 1]], fill=(220, 190, 40), width=1)
        draw.ellipse(_dot(center[0], 4), fill=(255, 255, 255))  # waypoint 0
        self.image = image

    def px(self, points_m: np.ndarray) -> list[tuple[float, float]]:
        """World (M,2) metres → image pixel tuples (y up)."""
        p = (np.asarray(points_m, dtype=float).reshape(-1, 2) - self.lo) * self.scale + self.offset
        p[:, 1] = self.size_px - 1 - p[:, 1]
        return [tuple(q) for q in p.tolist()]


def rectangle_corners_m(rectangles: np.ndarray) -> np.ndarray:
    """(M, 4, 2) corners, in order around each, of M rectangles given as rows x_m, y_m, yaw_rad, half_length_m, half_width_m."""
    r = np.asarray(rectangles, dtype=np.float64).reshape(-1, 5)
    x, y, yaw, hl, hw = r.T
    along = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    across = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)  # (along, across) of each corner
    return (np.stack([x, y], axis=1)[:, None, :] + signs[None, :, :1] * (hl[:, None, None] * along[:, None, :])
            + signs[None, :, 1:] * (hw[:, None, None] * across[:, None, :]))


def draw_objects(draw: ImageDraw.ImageDraw, canvas: TrackCanvas, rectangles: np.ndarray, bots: bool) -> None:
    """The race's boxes (orange) or bot cars (blue, a white mark at the front) as filled rectangles on the top-down view."""
    corners = rectangle_corners_m(rectangles)
    fill = COLOURS["bot"] if bots else COLOURS["box"]
    for quad in corners:
        pts = canvas.px(quad)
        draw.polygon(pts, fill=fill, outline=(255, 255, 255))
        if bots:  # the front edge (corners 0 and 1): which way the bot drives
            draw.line([pts[0], pts[1]], fill=(255, 255, 255), width=2)


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return abs(float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))) / 2


def _dot(xy: tuple[float, float], r: float) -> list[float]:
    return [xy[0] - r, xy[1] - r, xy[0] + r, xy[1] + r]


def _canvas(env: "RaceState") -> TrackCanvas:
    # Kept on the track itself: it lives and dies with it (procedural tracks come and go every
    # episode, and a dead track's id() can be reused by the next one).
    track = env.track
    canvas = track.__dict__.get("_render_canvas")
    if canvas is None:
        canvas = track._render_canvas = TrackCanvas(track)
    return canvas


def render_frame(env: "RaceState") -> np.ndarray:
    """One FRAME_H × FRAME_W × 3 uint8 frame of a car's public race state."""
    canvas = _canvas(env)
    top = canvas.image.copy()
    draw = ImageDraw.Draw(top)
    trail = env.trail
    if len(trail) > 1:
        pts = canvas.px(np.array([(x, y) for x, y, _ in trail]))
        for i in range(1, len(pts)):
            draw.line([pts[i - 1], pts[i]], fill=speed_colour(trail[i][2], env.max_speed_mps), width=3)
    if env.object_rectangles is not None and len(env.object_rectangles):
        draw_objects(draw, canvas, env.object_rectangles, env.objects_are_bots)
    v = env.vehicle
    has_lidar = env.lidar_angles_rad is not None
    if has_lidar:
        origin = canvas.px(np.array([[v.x_m, v.y_m]]))[0]
        angles = v.yaw_rad + env.lidar_angles_rad
        ends = np.c_[np.cos(angles), np.sin(angles)] * env.lidar_distances_m[:, None]
        for end in canvas.px(ends + [v.x_m, v.y_m]):
            draw.line([origin, end], fill=(255, 220, 80), width=1)
    draw.polygon(canvas.px(v.wheel_positions_m[[0, 1, 3, 2]]), fill=(230, 30, 30), outline=(255, 255, 255))

    frame = Image.new("RGB", (FRAME_W, FRAME_H), COLOURS["bg"])
    frame.paste(top, (0, 0))
    cam = env.camera_image
    if cam is not None:
        cam_img = Image.fromarray(cam if cam.ndim == 3 else cam.squeeze()).convert("RGB").resize((320, 240), Image.NEAREST)
        frame.paste(cam_img, (MAP_SIZE, 0))
    elif has_lidar:
        objects_in_car_frame = None
        if env.object_rectangles is not None and len(env.object_rectangles):
            # Forward and left of the car, m: the panel draws the car's frame with forward up.
            rel = rectangle_corners_m(env.object_rectangles) - np.array([v.x_m, v.y_m])
            c, s = math.cos(v.yaw_rad), math.sin(v.yaw_rad)
            objects_in_car_frame = np.stack([rel[..., 0] * c + rel[..., 1] * s, -rel[..., 0] * s + rel[..., 1] * c], axis=-1)
        frame.paste(_lidar_panel(env.lidar_angles_rad, env.lidar_distances_m, env.lidar_max_range_m, objects_in_car_frame,
                                 env.objects_are_bots, title=env.lidar_name), (MAP_SIZE, 0))
    _speed_strip(ImageDraw.Draw(frame), trail, env.max_speed_mps, (MAP_SIZE + 12, FRAME_H - 70, FRAME_W - 12, FRAME_H - 10))
    p = env.params
    steering_deg, speed_cmd, action_index = env.steering_cmd_deg, env.speed_cmd_mps, env.action_index
    lines = [
        f"track {env.track.name}  {env.direction.replace('_', ' ')}",
        f"lap time {env.lap_elapsed_s:6.2f} s   laps {env.laps_completed}",
        f"progress {p['progress']:6.1f} %",
        f"speed {v.speed_mps:5.2f} m/s (cmd {speed_cmd:4.2f})",
        f"steering {math.degrees(v.steering_rad):6.1f} deg (cmd {steering_deg:5.1f})",
        f"reward {env.reward:8.3f}",
        f"action {action_index if action_index >= 0 else 'continuous'}",
        f"center offset {p['distance_from_center']:5.2f} m  all wheels on: {p['all_wheels_on_track']}",
    ]
    if env.object_rectangles is not None and p.get("closest_objects"):
        ahead = p["closest_objects"][1]
        gap_m = (p["objects_distance"][ahead] - p["projection_distance"]) % p["track_length"]
        kind = "bot" if env.objects_are_bots else "box"
        side = "left" if p["objects_left_of_center"][ahead] else "right"
        lines.append(f"next {kind} #{ahead} {gap_m:5.2f} m ahead, {side}{'  CRASHED' if p['is_crashed'] else ''}")
    text = ImageDraw.Draw(frame)
    y0 = 250 if cam is not None or has_lidar else 16
    for i, line in enumerate(lines):
        text.text((MAP_SIZE + 12, y0 + 18 * i), line, fill=(235, 235, 235))
    return np.asarray(frame)


def _lidar_panel(angles: np.ndarray, dist: np.ndarray, max_range_m: float, objects_m: np.ndarray | None = None,
                 bots: bool = False, size: tuple[int, int] = (320, 240), title: str = "virtual lidar") -> Image.Image:
    """The rays in the car's frame (forward up), coloured near red → far green.

    The car sits at the bottom centre when every ray looks forward (|angle| <= 90°), else at the centre with
    full range rings (DeepRacer's lidar sees ±150°).
    objects_m: (M, 4, 2) corners of the race's boxes or bots as (forward, left) metres from the car, drawn under the rays.
    """
    w, h = size
    panel = Image.new("RGB", size, (12, 12, 16))
    draw = ImageDraw.Draw(panel)
    looks_back = bool(len(angles)) and float(np.abs(angles).max()) > math.pi / 2 + 1e-9
    scale = ((h - 30) / 2 if looks_back else h - 30) / max_range_m
    origin = (w / 2, h / 2 + 6 if looks_back else h - 12)
    if objects_m is not None:
        near = np.abs(objects_m).min(axis=1).max(axis=1) <= 1.5 * max_range_m  # the ones around the panel's reach
        for quad in objects_m[near]:
            pts = [(origin[0] - left * scale, origin[1] - forward * scale) for forward, left in quad.tolist()]
            draw.polygon(pts, fill=COLOURS["bot"] if bots else COLOURS["box"])
    for r_m in (0.25, 0.5, 0.75, 1.0):  # range rings at quarters of the max range
        r = r_m * max_range_m * scale
        draw.arc([origin[0] - r, origin[1] - r, origin[0] + r, origin[1] + r], 0 if looks_back else 180, 360, fill=(50, 50, 60))
    # Car frame: angle 0 is straight ahead (up on screen), positive angles to the left.
    ends_x = origin[0] - np.sin(angles) * dist * scale
    ends_y = origin[1] - np.cos(angles) * dist * scale
    for x, y, d in zip(ends_x.tolist(), ends_y.tolist(), (dist / max_range_m).tolist(), strict=False):
        colour = (int(255 * (1 - d)), int(200 * d + 55), 60)
        draw.line([origin, (x, y)], fill=colour, width=2)
    draw.polygon([(origin[0] - 5, origin[1] + 6), (origin[0] + 5, origin[1] + 6), (origin[0], origin[1] - 6)],
                 fill=(230, 30, 30))
    draw.text((8, 6), f"{title} ({len(angles)} rays, {max_range_m:g} m)", fill=(200, 200, 200))
    return panel


def _speed_strip(draw: ImageDraw.ImageDraw, trail, max_speed_mps: float, box: tuple[int, int, int, int],
                 history: int = 150) -> None:
    """The last `history` speeds of the trail as a line chart in `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(80, 80, 90))
    draw.text((x0 + 4, y0 + 2), f"speed, last {history} steps (0..{max_speed_mps:g} m/s)", fill=(170, 170, 180))
    speeds = np.array([s for _, _, s in trail[-history:]], dtype=float)
    if len(speeds) < 2:
        return
    xs = x0 + (x1 - x0) * np.arange(len(speeds)) / (history - 1)
    ys = y1 - 2 - (y1 - y0 - 16) * np.clip(speeds / max_speed_mps, 0.0, 1.0)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=False)), fill=speed_colour(float(speeds[-1]), max_speed_mps), width=2)
