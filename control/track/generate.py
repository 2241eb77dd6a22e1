"""Procedural and hand-designed tracks at DeepRacer scale (15–80 m long, 0.6–1.2 m wide)."""
from __future__ import annotations

import functools

import numpy as np

from control.track.track import Track

MIN_LENGTH_M, MAX_LENGTH_M = 15.0, 80.0
MIN_WIDTH_M, MAX_WIDTH_M = 0.6, 1.2
DEFAULT_LENGTH_RANGE_M = (20.0, 60.0)  # generated track length range, m (env_config.procedural reads it)
DEFAULT_WIDTH_RANGE_M = (0.76, 1.07)  # generated track width range, m
WAYPOINT_SPACING_M = 0.2  # DeepRacer files space waypoints 0.1–0.3 m apart


def smooth_closed_track(
    control_points_m: np.ndarray, width_m: float, name: str, spacing_m: float = WAYPOINT_SPACING_M, smoothing: float = 0.0
) -> Track:
    """A periodic cubic spline through control points, resampled at equal arc length, as a counter-clockwise Track."""
    from scipy.interpolate import splev, splprep  # here: reading the generator's ranges (env_config) needs no scipy

    pts = np.asarray(control_points_m, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:  # make it counter-clockwise, like DeepRacer files
        pts = pts[::-1]
    closed = np.vstack([pts, pts[:1]])
    tck, _ = splprep(closed.T, s=smoothing, per=True)
    dense = np.array(splev(np.linspace(0, 1, 4000, endpoint=False), tck)).T
    seg = np.hypot(*np.diff(np.vstack([dense, dense[:1]]), axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(round(s[-1] / spacing_m)), 8)
    targets = np.linspace(0, s[-1], n, endpoint=False)
    u = np.interp(targets, s, np.linspace(0, 1, len(s)))
    center = np.array(splev(u, tck)).T
    return Track(center, width_m, name=name)


def _segments_intersect(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Pairwise proper intersection of segments a (P) and b (Q): (P, Q) bool."""
    def orient(p, q, r):
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])

    A0, A1 = a0[:, None], a1[:, None]
    B0, B1 = b0[None], b1[None]
    d1, d2 = orient(A0, A1, B0), orient(A0, A1, B1)
    d3, d4 = orient(B0, B1, A0), orient(B0, B1, A1)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def polyline_self_intersects(points: np.ndarray) -> bool:
    """Whether a closed polyline crosses itself (adjacent segments excluded)."""
    p0, p1 = points, np.roll(points, -1, axis=0)
    hits = _segments_intersect(p0, p1, p0, p1)
    n = len(points)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    gap = np.abs(i - j)
    hits &= (gap > 1) & (gap < n - 1)
    return bool(hits.any())


def polylines_intersect(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two closed polylines cross each other."""
    return bool(_segments_intersect(a, np.roll(a, -1, axis=0), b, np.roll(b, -1, axis=0)).any())


def validate_track(track: Track, min_radius_m: float | None = None) -> str | None:
    """Why a generated track is unusable, or None when it is valid."""
    if not MIN_LENGTH_M <= track.length_m <= MAX_LENGTH_M:
        return f"length {track.length_m:.1f} m outside [{MIN_LENGTH_M}, {MAX_LENGTH_M}]"
    min_radius = min_radius_m if min_radius_m is not None else max(0.5, 0.75 * track.mean_width_m)
    kappa = np.abs(track.curvature_per_m()).max()
    if kappa > 1.0 / min_radius:
        return f"tightest radius {1 / kappa:.2f} m below {min_radius:.2f} m"
    for border in (track.center_m, track.inner_m, track.outer_m):
        if polyline_self_intersects(border):
            return "track crosses itself"
    if polylines_intersect(track.inner_m, track.outer_m):
        return "borders cross"
    return None


def generate_track(
    seed: int,
    length_m: tuple[float, float] = DEFAULT_LENGTH_RANGE_M,
    width_m: tuple[float, float] = DEFAULT_WIDTH_RANGE_M,
    num_control_points: tuple[int, int] = (8, 14),
    max_attempts: int = 200,
) -> Track:
    """A random valid closed track from a seed (same seed ⇒ same track)."""
    rng = np.random.default_rng(seed)
    for _attempt in range(max_attempts):
        k = int(rng.integers(num_control_points[0], num_control_points[1] + 1))
        angles = np.sort((np.arange(k) + rng.uniform(-0.35, 0.35, k)) * 2 * np.pi / k)
        radii = rng.uniform(0.45, 1.0, k)
        pts = np.c_[radii * np.cos(angles), radii * np.sin(angles)]
        width = float(rng.uniform(*width_m))
        target_length = float(rng.uniform(*length_m))
        # Scale the unit shape so the final spline has the target length.
        probe = smooth_closed_track(pts, 0.1, "probe", spacing_m=0.01)
        pts *= target_length / probe.length_m
        track = smooth_closed_track(pts, width, name=f"procedural_{seed}")
        if validate_track(track) is None:
            return track
    raise RuntimeError(f"no valid track for seed {seed} in {max_attempts} attempts")


def _stadium(straight_m: float, radius_m: float, points_per_part: int = 12) -> list[list[float]]:
    """Control points of a stadium (two straights, two half circles), counter-clockwise."""
    half = straight_m / 2
    xs = np.linspace(-half, half, points_per_part, endpoint=False)
    arc = np.linspace(-np.pi / 2, np.pi / 2, points_per_part, endpoint=False)
    bottom = np.c_[xs, np.full_like(xs, -radius_m)]
    right = np.c_[half + radius_m * np.cos(arc), radius_m * np.sin(arc)]
    top = np.c_[-xs, np.full_like(xs, radius_m)]
    left = np.c_[-half - radius_m * np.cos(arc), -radius_m * np.sin(arc)]
    return np.vstack([bottom, right, top, left]).tolist()


@functools.lru_cache(maxsize=128)
def pooled_track(seed: int, length_m: tuple[float, float], width_m: tuple[float, float], reverse: bool = False) -> Track:
    """A generated track shared by every env in the process (its ray-cast grid is built once)."""
    track = generate_track(seed, length_m=length_m, width_m=width_m)
    return track.reversed() if reverse else track


# Hand-designed shapes of the bundled tracks (control points in metres).
BUNDLED_TRACK_SHAPES: dict[str, dict] = {
    # An easy stadium loop: two 9 m straights joined by 1.6 m-radius half circles (≈ 28 m).
    "oval": {"points": _stadium(straight_m=9.0, radius_m=1.6), "width_m": 0.76},
    # Technical: hairpins and an S-section (≈ 55 m).
    "hairpins": {
        "scale": 1.3,
        "points": [
            [0, 0], [3, 0], [6, 0.2], [7.6, 1.4], [7.2, 3.0], [5.4, 3.2], [4.4, 2.4], [3.2, 2.2], [2.4, 3.2],
            [3.0, 4.6], [5.6, 5.2], [7.6, 6.2], [7.2, 8.0], [5.0, 8.4], [2.0, 8.2], [-0.6, 7.6], [-1.4, 6.2],
            [-0.2, 5.0], [0.2, 3.8], [-1.2, 3.0], [-2.4, 1.8], [-1.6, 0.4],
        ],
        "width_m": 0.9,
    },
    # Long and fast: long straights joined by sweeping corners (≈ 70 m).
    "speedway": {
        "points": [
            [-12, -5], [-4, -5.6], [4, -5.6], [12, -5], [16, -2], [16, 2], [12, 5], [6, 5.6], [2, 4.2],
            [-2, 4.2], [-6, 5.6], [-12, 5], [-16, 2], [-16, -2],
        ],
        "width_m": 1.07,
    },
}


def bundled_track(name: str) -> Track:
    """Build one of the bundled tracks from its shape."""
    shape = BUNDLED_TRACK_SHAPES[name]
    points = np.array(shape["points"], dtype=float) * shape.get("scale", 1.0)
    return smooth_closed_track(points, shape["width_m"], name=name)
