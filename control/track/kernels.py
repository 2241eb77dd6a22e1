"""Compiled geometry kernels for many cars at once: centerline projection and ray casting.

They compute exactly what Track.project(local=True) and Track.ray_distances compute for one car,
for N cars per call, without a Python loop per car, ray or segment.
"""
from __future__ import annotations

import math

import numba
import numpy as np


# inline="always": inlined into both kernels at numba IR level, so the shared loop costs no call per point.
@numba.njit(cache=True, inline="always")
def closest_segment(qx, qy, nearest, window, count, local, start_x, start_y, vec_x, vec_y, len2, unit_x, unit_y):  # pragma: no cover - compiled
    """(segment, t along it, squared distance, side) of the segment closest to (qx, qy), Track.project's order.

    The `count` segments searched start `window` before `nearest` (wrapping) when `local`, else all of them.
    """
    n = start_x.shape[0]
    best_d2, best_seg, best_t, best_side = np.inf, 0, 0.0, 0.0
    for k in range(count):
        i = (nearest - window + k) % n if local else k
        rx, ry = qx - start_x[i], qy - start_y[i]
        t = (rx * vec_x[i] + ry * vec_y[i]) / len2[i]
        t = min(max(t, 0.0), 1.0)
        dx, dy = rx - t * vec_x[i], ry - t * vec_y[i]
        d2 = dx * dx + dy * dy
        if d2 < best_d2:
            best_d2, best_seg, best_t = d2, i, t
            best_side = unit_x[i] * ry - unit_y[i] * rx
    return best_seg, best_t, best_d2, best_side


@numba.njit(cache=True)
def project_cars(px, py, start_x, start_y, vec_x, vec_y, len2, unit_x, unit_y, window, out_seg, out_t, out_d2, out_side):  # pragma: no cover - compiled
    """For each car (row of px/py, P points), the closest centerline segment of each point.

    The segments searched are those within `window` of the waypoint nearest the car's mean point
    (all of them when 2 * window + 1 >= the number of waypoints), in Track.project's order.
    """
    n = start_x.shape[0]
    local = n > 2 * window + 1
    for c in range(px.shape[0]):
        num_points = px.shape[1]
        mx, my = 0.0, 0.0
        for p in range(num_points):
            mx += px[c, p]
            my += py[c, p]
        mx /= num_points
        my /= num_points
        nearest = 0
        if local:
            best = np.inf
            for i in range(n):
                dx, dy = start_x[i] - mx, start_y[i] - my
                d = dx * dx + dy * dy
                if d < best:
                    best, nearest = d, i
        count = 2 * window + 1 if local else n
        for p in range(num_points):
            best_seg, best_t, best_d2, best_side = closest_segment(px[c, p], py[c, p], nearest, window, count, local, start_x,
                                                                   start_y, vec_x, vec_y, len2, unit_x, unit_y)
            out_seg[c, p], out_t[c, p], out_d2[c, p], out_side[c, p] = best_seg, best_t, best_d2, best_side


@numba.njit(cache=True, inline="always")
def _hit_t(ox, oy, dx, dy, sx, sy, ex, ey):  # pragma: no cover - compiled
    """Distance along ray o + t·d to segment s + u·e, or inf when it misses.

    The miss tests (u outside [0, 1], t < 0) compare numerators with the denominator's sign instead of
    dividing: most segments a ray is tested against miss, and a division costs more than the rest.
    """
    denom = dx * ey - dy * ex
    qx, qy = sx - ox, sy - oy
    num_u = qx * dy - qy * dx
    num_t = qx * ey - qy * ex
    if denom > 0.0:
        if num_u < 0.0 or num_u > denom or num_t < 0.0:
            return np.inf
    elif denom < 0.0:
        if num_u > 0.0 or num_u < denom or num_t > 0.0:
            return np.inf
    else:
        return np.inf
    return num_t / denom


@numba.njit(cache=True)
def cast_rays(ox, oy, angles, max_range, lo_x, lo_y, cell_m, nx, ny, cell_start, cell_segments, sx, sy, ex, ey, out):  # pragma: no cover - compiled
    """Ray distances (N, R) to the nearest border segment, capped at max_range, by grid traversal.

    Each ray walks the grid cells it crosses in order (Amanatides-Woo) and tests the segments
    listed in each; it stops once its nearest hit lies before the cell it would enter next.
    A car outside the grid tests every segment.
    """
    for c in range(ox.shape[0]):
        _cast_car(ox[c], oy[c], np.cos(angles[c]), np.sin(angles[c]), max_range, lo_x, lo_y, cell_m, nx, ny, cell_start,
                  cell_segments, sx, sy, ex, ey, out[c])


def point_grid(points: np.ndarray, cell_m: float) -> tuple[float, float, float, int, int, np.ndarray, np.ndarray]:
    """A uniform grid over points (M, 2): origin, cell size, shape and CSR lists (cell_start, point ids, ascending per cell)."""
    lo = points.min(axis=0)
    cells_xy = np.floor((points - lo) / cell_m).astype(np.int64)
    nx, ny = (int(v) + 1 for v in cells_xy.max(axis=0))
    cell = cells_xy[:, 0] * ny + cells_xy[:, 1]
    order = np.lexsort((np.arange(len(points)), cell))
    cell_start = np.zeros(nx * ny + 1, dtype=np.int64)
    np.add.at(cell_start, cell + 1, 1)
    return float(lo[0]), float(lo[1]), float(cell_m), nx, ny, np.cumsum(cell_start), order.astype(np.int64)


def segment_grid(start: np.ndarray, vec: np.ndarray, lo: np.ndarray, cell_m: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists (cell_start, cell_segments) of the segments whose bounding box touches each grid cell."""
    end = start + vec
    pad = 1e-6 * cell_m  # a hit on a cell boundary belongs to both cells
    lo_cell = np.floor((np.minimum(start, end) - lo - pad) / cell_m).astype(np.int64)
    hi_cell = np.floor((np.maximum(start, end) - lo + pad) / cell_m).astype(np.int64)
    lo_cell = np.clip(lo_cell, 0, np.array(shape) - 1)
    hi_cell = np.clip(hi_cell, 0, np.array(shape) - 1)
    cells, segs = [], []
    for s in range(len(start)):  # built once per track: a few thousand short segments
        xs = np.arange(lo_cell[s, 0], hi_cell[s, 0] + 1)
        ys = np.arange(lo_cell[s, 1], hi_cell[s, 1] + 1)
        ids = (xs[:, None] * shape[1] + ys[None, :]).ravel()
        cells.append(ids)
        segs.append(np.full(len(ids), s))
    cells_arr, segs_arr = np.concatenate(cells), np.concatenate(segs)
    order = np.lexsort((segs_arr, cells_arr))
    cell_start = np.zeros(shape[0] * shape[1] + 1, dtype=np.int64)
    np.add.at(cell_start, cells_arr + 1, 1)
    return np.cumsum(cell_start), segs_arr[order].astype(np.int64)


@numba.njit(cache=True)
def project_race(rows, x, y, wheels, start_x, start_y, vec_x, vec_y, len2, unit_x, unit_y, window, cum_s, seg_len, length_m,
                 width, seg_heading, wp_direction, grid_lo_x, grid_lo_y, grid_cell_m, grid_nx, grid_ny, grid_start, grid_points,
                 hint, out_s, out_dist, out_half_width, out_left, out_heading, out_closest, out_wp_direction,
                 out_wheels_on):  # pragma: no cover - compiled
    """Project each car `rows[j]` and its 4 wheels (as Track.project(local=True)); write row j of the per-car outputs.

    The car's centre gives s, distance from center, half width, side, heading, closest waypoints and
    DeepRacer's waypoint direction; each wheel is on the track when within the half width.
    The waypoint nearest the car (the window's centre) is found exactly as an argmin over all waypoints
    would (lowest index on ties), but only among the waypoints of the grid cells within the distance to
    `hint[c]` (the car's nearest waypoint last time; updated here).
    """
    n = start_x.shape[0]
    local = n > 2 * window + 1
    count = 2 * window + 1 if local else n
    for j in range(rows.shape[0]):
        c = rows[j]
        mx, my = x[c], y[c]
        for w in range(4):
            mx += wheels[c, w, 0]
            my += wheels[c, w, 1]
        mx /= 5.0
        my /= 5.0
        nearest = 0
        if local:
            nearest = hint[c] % n
            dx, dy = start_x[nearest] - mx, start_y[nearest] - my
            best = dx * dx + dy * dy
            reach = math.sqrt(best)
            gx0 = min(max(int(math.floor((mx - reach - grid_lo_x) / grid_cell_m)), 0), grid_nx - 1)
            gx1 = min(max(int(math.floor((mx + reach - grid_lo_x) / grid_cell_m)), 0), grid_nx - 1)
            gy0 = min(max(int(math.floor((my - reach - grid_lo_y) / grid_cell_m)), 0), grid_ny - 1)
            gy1 = min(max(int(math.floor((my + reach - grid_lo_y) / grid_cell_m)), 0), grid_ny - 1)
            for gx in range(gx0, gx1 + 1):
                for gy in range(gy0, gy1 + 1):
                    cell = gx * grid_ny + gy
                    for k in range(grid_start[cell], grid_start[cell + 1]):
                        i = grid_points[k]
                        dx, dy = start_x[i] - mx, start_y[i] - my
                        d = dx * dx + dy * dy
                        if d < best or (d == best and i < nearest):
                            best, nearest = d, i
            hint[c] = nearest
        for p in range(5):
            qx = x[c] if p == 0 else wheels[c, p - 1, 0]
            qy = y[c] if p == 0 else wheels[c, p - 1, 1]
            best_seg, best_t, best_d2, best_side = closest_segment(qx, qy, nearest, window, count, local, start_x, start_y,
                                                                   vec_x, vec_y, len2, unit_x, unit_y)
            nxt = best_seg + 1 if best_seg + 1 < n else 0
            half_width = 0.5 * (width[best_seg] * (1 - best_t) + width[nxt] * best_t)
            dist = math.sqrt(best_d2)
            if p == 0:
                out_s[j] = (cum_s[best_seg] + best_t * seg_len[best_seg]) % length_m
                out_dist[j] = dist
                out_half_width[j] = half_width
                out_left[j] = best_side > 0
                out_heading[j] = seg_heading[best_seg]
                out_closest[j, 0], out_closest[j, 1] = best_seg, nxt
                out_wp_direction[j] = wp_direction[best_seg]
            else:
                out_wheels_on[j, p - 1] = dist <= half_width


@numba.njit(cache=True)
def lidar_observe(rows, x, y, yaw, speed, steer, cos_rel, sin_rel, max_range, lo_x, lo_y, cell_m, nx, ny, cell_start,
                  cell_segments, sx, sy, ex, ey, ego, max_speed, max_steer, out_distances, out_obs):  # pragma: no cover - compiled
    """Ray distances of cars rows[j] into out_distances[rows[j]] and their observation into out_obs[j].

    The observation is distance / max_range per ray, then (ego) speed / max speed and steering / lock.
    """
    num_rays = cos_rel.shape[0]
    for j in range(rows.shape[0]):
        c = rows[j]
        cy, sy_ = math.cos(yaw[c]), math.sin(yaw[c])
        dx_rays = np.empty(num_rays)
        dy_rays = np.empty(num_rays)
        for r in range(num_rays):
            dx_rays[r] = cy * cos_rel[r] - sy_ * sin_rel[r]  # cos(yaw + a)
            dy_rays[r] = sy_ * cos_rel[r] + cy * sin_rel[r]  # sin(yaw + a)
        _cast_car(x[c], y[c], dx_rays, dy_rays, max_range, lo_x, lo_y, cell_m, nx, ny, cell_start, cell_segments,
                  sx, sy, ex, ey, out_distances[c])
        for r in range(num_rays):
            out_obs[j, r] = out_distances[c, r] / max_range
        if ego:
            out_obs[j, num_rays] = min(speed[c] / max_speed, 1.0)
            out_obs[j, num_rays + 1] = min(max(steer[c] / max_steer, -1.0), 1.0)


@numba.njit(cache=True)
def _cast_car(x0, y0, dxs, dys, max_range, lo_x, lo_y, cell_m, nx, ny, cell_start, cell_segments, sx, sy, ex, ey, out):  # pragma: no cover - compiled
    """Distances along unit directions (dxs, dys) from (x0, y0) to the nearest segment, capped (cast_rays' traversal)."""
    gx, gy = (x0 - lo_x) / cell_m, (y0 - lo_y) / cell_m
    inside = 0 <= gx < nx and 0 <= gy < ny
    for r in range(dxs.shape[0]):
        dx, dy = dxs[r], dys[r]
        best = max_range
        if not inside:
            for s in range(sx.shape[0]):
                best = min(best, _hit_t(x0, y0, dx, dy, sx[s], sy[s], ex[s], ey[s]))
            out[r] = best
            continue
        ix, iy = int(gx), int(gy)
        step_x = 1 if dx > 0 else -1
        step_y = 1 if dy > 0 else -1
        t_max_x = ((ix + (step_x > 0)) - gx) * cell_m / dx if dx != 0.0 else np.inf
        t_max_y = ((iy + (step_y > 0)) - gy) * cell_m / dy if dy != 0.0 else np.inf
        t_delta_x = cell_m / abs(dx) if dx != 0.0 else np.inf
        t_delta_y = cell_m / abs(dy) if dy != 0.0 else np.inf
        while True:
            cell = ix * ny + iy
            for k in range(cell_start[cell], cell_start[cell + 1]):
                s = cell_segments[k]
                best = min(best, _hit_t(x0, y0, dx, dy, sx[s], sy[s], ex[s], ey[s]))
            t_exit = min(t_max_x, t_max_y)
            if best <= t_exit or t_exit >= max_range:
                break
            if t_max_x < t_max_y:
                ix += step_x
                t_max_x += t_delta_x
            else:
                iy += step_y
                t_max_y += t_delta_y
            if ix < 0 or ix >= nx or iy < 0 or iy >= ny:
                break
        out[r] = best


@numba.njit(cache=True)
def start_poses(s_m, lateral, heading_noise, lateral_noise_m, heading_noise_deg, cum_s, seg_len_safe, center_x, center_y,
                vec_x, vec_y, seg_heading, length_m, out_x, out_y, out_yaw):  # pragma: no cover - compiled
    """Poses at lap distances s_m (as Track.point_at), moved lateral * lateral_noise_m across the track and turned
    heading_noise * heading_noise_deg; lateral and heading_noise are draws in [-1, 1]."""
    n = center_x.shape[0]
    for j in range(s_m.shape[0]):
        s = s_m[j] % length_m
        seg = min(max(np.searchsorted(cum_s, s, side="right") - 1, 0), n - 1)
        t = (s - cum_s[seg]) / seg_len_safe[seg]
        heading = seg_heading[seg]
        offset = lateral[j] * lateral_noise_m  # across the track, not along the noisy heading
        out_x[j] = center_x[seg] + t * vec_x[seg] + offset * -math.sin(heading)
        out_y[j] = center_y[seg] + t * vec_y[seg] + offset * math.cos(heading)
        out_yaw[j] = heading + heading_noise[j] * heading_noise_deg * (math.pi / 180.0)
