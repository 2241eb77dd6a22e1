"""Procedural and hand-designed tracks at DeepRacer scale (15–80 m long, 0.6–1.2 m wide; 2.0 m with "deepracer").

Two generator profiles. `classic` (the default, what env_config.procedural has always drawn):
one width per track, corners no tighter than max(0.5 m, 0.75 × width). `deepracer`: what real
DeepRacer tracks hold: corners down to the car's own turning circle, a width that changes along
the lap (0.6–2.0 m), many control points for chicanes and long technical sections.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from control.track.track import Track

MIN_LENGTH_M, MAX_LENGTH_M = 15.0, 80.0
MIN_WIDTH_M, MAX_WIDTH_M = 0.6, 1.2
DEFAULT_LENGTH_RANGE_M = (20.0, 60.0)  # generated track length range, m (env_config.procedural reads it)
DEFAULT_WIDTH_RANGE_M = (0.76, 1.07)  # generated track width range, m
WAYPOINT_SPACING_M = 0.2  # DeepRacer files space waypoints 0.1–0.3 m apart
# The built-in DeepRacer car's turning circle: wheelbase / tan(max steering) = 0.165 m / tan(30°), m.
# Kept as a number: the track layer does not import the simulator layer (a test checks it matches).
CAR_TURNING_RADIUS_M = 0.286


@dataclass(frozen=True)
class GeneratorProfile:
    """How random shapes are drawn: control points, their spread, the width along the lap, the tightest corner."""

    num_control_points: tuple[int, int]  # control points per track [low, high]
    radius_range: tuple[float, float]  # control-point distance from the centre, as a fraction of the largest
    angle_jitter: float  # control-point angle jitter, as a fraction of the even spacing
    length_m: tuple[float, float]  # default track length range, m
    width_m: tuple[float, float]  # default width range, m
    width_variation: float  # 0: one width per track; > 0: up to this fraction of variation along the lap
    min_radius_m: float | None  # tightest centerline radius; None: max(0.5 m, 0.75 x mean width)
    max_inner_fold: float = 0.9  # |curvature| x half-width at most this: the inner border never folds over


GENERATOR_PROFILES: dict[str, GeneratorProfile] = {
    "classic": GeneratorProfile((8, 14), (0.45, 1.0), 0.35, DEFAULT_LENGTH_RANGE_M, DEFAULT_WIDTH_RANGE_M, 0.0, None),
    "deepracer": GeneratorProfile((10, 22), (0.3, 1.0), 0.42, (MIN_LENGTH_M, 60.0), (0.6, 2.0), 0.5,
                                  1.05 * CAR_TURNING_RADIUS_M),
}
DEFAULT_PROFILE = "classic"


def smooth_closed_track(
    control_points_m: np.ndarray, width_m: float | np.ndarray, name: str, spacing_m: float = WAYPOINT_SPACING_M,
    smoothing: float = 0.0,
) -> Track:
    """A periodic cubic spline through control points, resampled at equal arc length, as a counter-clockwise Track.

    `width_m` is one width, or a callable mapping the (N, 2) centerline to (N,) widths.
    """
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
    return Track(center, width_m(center) if callable(width_m) else width_m, name=name)


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


def validate_track(track: Track, min_radius_m: float | None = None, max_inner_fold: float | None = None) -> str | None:
    """Why a generated track is unusable, or None when it is valid."""
    if not MIN_LENGTH_M <= track.length_m <= MAX_LENGTH_M:
        return f"length {track.length_m:.1f} m outside [{MIN_LENGTH_M}, {MAX_LENGTH_M}]"
    min_radius = min_radius_m if min_radius_m is not None else max(0.5, 0.75 * track.mean_width_m)
    curvature = np.abs(track.curvature_per_m())
    kappa = curvature.max()
    if kappa > 1.0 / min_radius:
        return f"tightest radius {1 / kappa:.2f} m below {min_radius:.2f} m"
    if max_inner_fold is not None and np.any(curvature * 0.5 * track.width_m > max_inner_fold):
        return "a corner tighter than its half-width: the inner border folds"
    for border in (track.center_m, track.inner_m, track.outer_m):
        if polyline_self_intersects(border):
            return "track crosses itself"
    if polylines_intersect(track.inner_m, track.outer_m):
        return "borders cross"
    return None


def _width_profile(rng: np.random.Generator, base_m: float, profile: GeneratorProfile, width_range_m: tuple[float, float]):
    """A callable centerline (N, 2) -> widths (N,): smooth periodic variation, narrowed where corners are tight."""
    harmonics = rng.integers(1, 5, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    amplitude = rng.uniform(0.0, profile.width_variation)

    def widths(center: np.ndarray) -> np.ndarray:
        n = len(center)
        phase = 2 * np.pi * np.arange(n) / n
        wave = sum(np.sin(h * phase + p) for h, p in zip(harmonics, phases, strict=True)) / 3.0
        w = np.clip(base_m * (1.0 + amplitude * wave), *width_range_m)
        # Tight corners are narrower on real tracks too: keep the inner border from folding over.
        probe = Track(center, 0.1, name="probe")
        w = np.minimum(w, 2 * 0.8 * profile.max_inner_fold / np.maximum(np.abs(probe.curvature_per_m()), 1e-9))
        kernel = np.ones(7) / 7.0  # smooth the narrowing: no kinks in the borders
        w = np.convolve(np.r_[w[-3:], w, w[:3]], kernel, mode="valid")
        return np.maximum(w, width_range_m[0])

    return widths


def generate_track(
    seed: int,
    length_m: tuple[float, float] | None = None,
    width_m: tuple[float, float] | None = None,
    num_control_points: tuple[int, int] | None = None,
    max_attempts: int = 200,
    profile: str = DEFAULT_PROFILE,
) -> Track:
    """A random valid closed track from a seed (same seed and profile ⇒ same track).

    `profile`: "classic" (one width per track; the default) or "deepracer" (the range of real
    DeepRacer tracks: tighter corners, width changing along the lap, technical sections).
    Ranges left None take the profile's defaults.
    """
    if profile not in GENERATOR_PROFILES:
        from control.errors import ConfigError, did_you_mean

        raise ConfigError(f"track generator profile {profile!r}{did_you_mean(profile, GENERATOR_PROFILES)}; "
                          f"expected one of {', '.join(GENERATOR_PROFILES)}")
    prof = GENERATOR_PROFILES[profile]
    length_m = prof.length_m if length_m is None else length_m
    width_m = prof.width_m if width_m is None else width_m
    num_control_points = prof.num_control_points if num_control_points is None else num_control_points
    rng = np.random.default_rng(seed)
    for _attempt in range(max_attempts):
        k = int(rng.integers(num_control_points[0], num_control_points[1] + 1))
        angles = np.sort((np.arange(k) + rng.uniform(-prof.angle_jitter, prof.angle_jitter, k)) * 2 * np.pi / k)
        radii = rng.uniform(*prof.radius_range, k)
        pts = np.c_[radii * np.cos(angles), radii * np.sin(angles)]
        width = float(rng.uniform(*width_m))
        target_length = float(rng.uniform(*length_m))
        # Scale the unit shape so the final spline has the target length.
        probe = smooth_closed_track(pts, 0.1, "probe", spacing_m=0.01)
        pts *= target_length / probe.length_m
        track_width = _width_profile(rng, width, prof, width_m) if prof.width_variation > 0 else width
        track = smooth_closed_track(pts, track_width, name=f"procedural_{seed}")
        max_fold = prof.max_inner_fold if prof.width_variation > 0 else None
        if validate_track(track, prof.min_radius_m, max_fold) is None:
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
def pooled_track(seed: int, length_m: tuple[float, float], width_m: tuple[float, float], reverse: bool = False,
                 profile: str = DEFAULT_PROFILE) -> Track:
    """A generated track shared by every env in the process (its ray-cast grid is built once)."""
    track = generate_track(seed, length_m=length_m, width_m=width_m, profile=profile)
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
