"""Track geometry: a closed centerline with borders, in the DeepRacer waypoint format.

Everything here is vectorised over query points: these functions sit on the env's hot path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from control.errors import TrackFileError

_EPS = 1e-9
_LOCAL_WINDOW = 12  # segments either side searched by project(local=True)
_LOCAL_OFFSETS = np.arange(-_LOCAL_WINDOW, _LOCAL_WINDOW + 1)
_RAY_GRID_CELL_M = 0.5  # cell size of the ray caster's segment lookup grid
_WAYPOINT_GRID_CELL_M = 0.5  # cell size of the batched projection's nearest-waypoint lookup grid
_RAY_TRAVERSAL_CELL_M = 0.5  # cell size of the batched ray kernel's grid: fewer cell steps per ray; measured no slower than 0.25 m
BUNDLED_TRACKS_DIR = Path(__file__).resolve().parents[2] / "resources" / "tracks"


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of the 2-D cross product, broadcast over leading axes."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


@dataclass(frozen=True)
class _SegmentTables:
    """Centerline segments as contiguous columns, for Track.project."""

    start_x: np.ndarray  # (N,) segment starts (the waypoints)
    start_y: np.ndarray
    unit_x: np.ndarray  # (N,) each segment's unit direction
    unit_y: np.ndarray
    waypoint_pairs: np.ndarray  # (N, 2) int: [i, (i+1) % N], closest_waypoints of segment i
    every: tuple[np.ndarray, ...]  # (ids, start x, start y, vector x, vector y, squared length) of all segments
    windows: list[tuple[np.ndarray, ...]]  # per waypoint: the same for the _LOCAL_OFFSETS segments around it


class _RayCells:
    """Track.ray_distances' lookup: per grid cell, the border segments a ray can hit, packed on first use."""

    def __init__(self, lo_x: float, lo_y: float, nx: int, ny: int, cells: list[np.ndarray], start: np.ndarray, vec: np.ndarray, real: np.ndarray) -> None:
        self.lo_x, self.lo_y, self.nx, self.ny = lo_x, lo_y, nx, ny
        self.cells, self.start, self.vec, self.real = cells, start, vec, real
        self.packed: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def near(self, x_m: float, y_m: float) -> tuple[np.ndarray, np.ndarray]:
        """`lines` (3, 2S) and `offsets` (3, S) of the S segments near (x_m, y_m).

        For ray direction d and origin o, [dx, dy, o×d] @ lines puts d×e (S columns) beside
        (s-o)×d (S columns), and [1, x, y] @ offsets is (s-o)×e, for segment start s and vector e.
        """
        ix = math.floor((x_m - self.lo_x) / _RAY_GRID_CELL_M)
        iy = math.floor((y_m - self.lo_y) / _RAY_GRID_CELL_M)
        cell = ix * self.ny + iy if 0 <= ix < self.nx and 0 <= iy < self.ny else -1
        packed = self.packed.get(cell)
        if packed is None:
            # Far outside the track (cell -1): every border segment.
            near = np.flatnonzero(self.real) if cell < 0 else self.cells[cell][self.real[self.cells[cell]]]
            (sx, sy), (ex, ey) = self.start[near].T, self.vec[near].T
            zero, one = np.zeros_like(sx), np.ones_like(sx)
            lines = np.array([np.r_[ey, -sy], np.r_[-ex, sx], np.r_[zero, -one]])  # d×e | s×d - o×d
            offsets = np.array([sx * ey - sy * ex, -ey, ex])  # s×e - o×e
            packed = self.packed[cell] = (lines, offsets)
        return packed


@dataclass(frozen=True)
class TrackProjection:
    """Where query points fall on the track (one entry per point)."""

    s_m: np.ndarray  # distance along the centerline from waypoint 0, in [0, length_m)
    distance_from_center_m: np.ndarray
    is_left_of_center: np.ndarray  # bool, left when driving in waypoint-index order
    heading_rad: np.ndarray  # centerline direction (index order) at the projection
    closest_waypoints: np.ndarray  # (M, 2) int: [index behind, index ahead]
    segment_index: np.ndarray  # (M,) int
    half_width_m: np.ndarray  # track half-width at the projection


class Track:
    """A closed track: centerline waypoints (N,2), borders (N,2) each, width per waypoint.

    Waypoints are stored without the DeepRacer duplicate last row; segment i runs from
    waypoint i to waypoint (i+1) % N. Zero-length segments (real DeepRacer files repeat
    points) are kept so waypoint indices match the file, and never divided by.
    """

    def __init__(
        self,
        center_m: np.ndarray,
        width_m: float | np.ndarray | None = None,
        name: str = "track",
        inner_m: np.ndarray | None = None,
        outer_m: np.ndarray | None = None,
    ) -> None:
        center = np.asarray(center_m, dtype=np.float64)
        if center.ndim != 2 or center.shape[1] != 2 or len(center) < 4:
            raise TrackFileError(f"track '{name}': centerline must be an (N>=4, 2) array, got shape {center.shape}")
        closed = np.allclose(center[0], center[-1])
        if closed:
            center = center[:-1]
            inner_m = None if inner_m is None else np.asarray(inner_m, dtype=np.float64)[:-1]
            outer_m = None if outer_m is None else np.asarray(outer_m, dtype=np.float64)[:-1]
        self.name = name
        self.center_m = center
        n = len(center)

        seg = np.roll(center, -1, axis=0) - center
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        if seg_len.sum() <= _EPS:
            raise TrackFileError(f"track '{name}': all waypoints coincide; a track needs a length > 0 m")
        self.segment_length_m = seg_len
        self.cumulative_s_m = np.concatenate([[0.0], np.cumsum(seg_len)])
        self.length_m = float(self.cumulative_s_m[-1])
        self._seg_vec = seg
        self._seg_len_safe = np.maximum(seg_len, _EPS)
        self._seg_len2 = self._seg_len_safe**2
        # Zero-length segments borrow the heading of the previous real segment.
        heading = np.arctan2(seg[:, 1], seg[:, 0])
        real = seg_len > _EPS
        last_real = np.maximum.accumulate(np.where(real, np.arange(n), -1))
        last_real = np.where(last_real < 0, np.flatnonzero(real)[-1], last_real)
        self.segment_heading_rad = heading[last_real]
        self._unit = np.c_[np.cos(self.segment_heading_rad), np.sin(self.segment_heading_rad)]

        x, y = center[:, 0], center[:, 1]
        self.is_counter_clockwise = bool(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0)

        if inner_m is not None and outer_m is not None:
            inner = np.asarray(inner_m, dtype=np.float64)
            outer = np.asarray(outer_m, dtype=np.float64)
            if inner.shape != center.shape or outer.shape != center.shape:
                raise TrackFileError(f"track '{name}': borders must have the centerline's shape {center.shape}")
            width = np.hypot(*(inner - outer).T)
        else:
            if width_m is None:
                raise TrackFileError(f"track '{name}': give width_m or both borders")
            width = np.broadcast_to(np.asarray(width_m, dtype=np.float64), (n,)).copy()
            # Vertex normal: average of the adjacent segments' left normals.
            prev_h = np.roll(self.segment_heading_rad, 1)
            mean_h = np.arctan2(np.sin(prev_h) + np.sin(self.segment_heading_rad), np.cos(prev_h) + np.cos(self.segment_heading_rad))
            left = np.c_[-np.sin(mean_h), np.cos(mean_h)]
            left_border = center + left * (width / 2)[:, None]
            right_border = center - left * (width / 2)[:, None]
            inner, outer = (left_border, right_border) if self.is_counter_clockwise else (right_border, left_border)
        if not np.all(np.isfinite(width)) or np.any(width <= _EPS):
            raise TrackFileError(f"track '{name}': track width must be > 0 m at every waypoint")
        self.inner_m = inner
        self.outer_m = outer
        self.width_m = width
        self.mean_width_m = float(width.mean())
        # Left/right in index order, for the ray caster.
        self.left_border_m, self.right_border_m = (inner, outer) if self.is_counter_clockwise else (outer, inner)
        borders = [self.left_border_m, self.right_border_m]
        self._border_start = np.concatenate(borders)
        self._border_vec = np.concatenate([np.roll(b, -1, axis=0) - b for b in borders])
        self._border_mid = self._border_start + self._border_vec / 2
        self._border_half_len = np.hypot(*self._border_vec.T) / 2

    # ------------------------------------------------------------------ files
    @classmethod
    def from_npy(cls, path: str | Path, name: str | None = None) -> "Track":
        """Load a DeepRacer waypoint file (N×6: center x,y, inner x,y, outer x,y)."""
        path = Path(path)
        if not path.is_file():
            raise TrackFileError(f"track file '{path}' does not exist; expected a DeepRacer .npy waypoint file")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises several types for corrupt files
            raise TrackFileError(f"track file '{path}' is not a readable .npy array ({type(exc).__name__}: {exc})") from None
        if data.ndim != 2 or data.shape[1] != 6 or data.shape[0] < 5:
            raise TrackFileError(
                f"track file '{path}' has shape {data.shape}; expected (N>=5, 6) rows of center x,y, inner x,y, outer x,y"
            )
        if not np.issubdtype(data.dtype, np.number) or not np.all(np.isfinite(data)):
            raise TrackFileError(f"track file '{path}' holds non-finite or non-numeric values; expected finite metres")
        if not np.allclose(data[0], data[-1]):
            data = np.vstack([data, data[:1]])  # some exporters omit the closing row
        return cls(data[:, 0:2], name=name or path.stem, inner_m=data[:, 2:4], outer_m=data[:, 4:6])

    @classmethod
    def load(cls, name_or_path: str | Path) -> "Track":
        """A bundled track by name (`resources/tracks/<name>.npy`) or a path to a DeepRacer `.npy`."""
        text = str(name_or_path)
        bundled = BUNDLED_TRACKS_DIR / f"{text}.npy"
        if bundled.is_file():
            return cls.from_npy(bundled)
        path = Path(text).expanduser()
        if path.suffix == ".npy" or path.exists():
            return cls.from_npy(path)
        from control.errors import did_you_mean

        names = bundled_track_names()
        raise TrackFileError(
            f"unknown track '{text}'{did_you_mean(text, names)}; expected a bundled track ({', '.join(names)}) "
            "or a path to a DeepRacer .npy file"
        )

    def to_waypoint_array(self) -> np.ndarray:
        """The DeepRacer (N+1)×6 array, first row repeated last."""
        rows = np.hstack([self.center_m, self.inner_m, self.outer_m])
        return np.vstack([rows, rows[:1]])

    def to_npy(self, path: str | Path) -> Path:
        """Save in the DeepRacer waypoint format."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, self.to_waypoint_array())
        return path

    def reversed(self) -> "Track":
        """The same track driven the other way (waypoint order reversed; inner stays inner)."""
        return Track(self.center_m[::-1].copy(), name=self.name, inner_m=self.inner_m[::-1].copy(), outer_m=self.outer_m[::-1].copy())

    # --------------------------------------------------------------- geometry
    @property
    def num_waypoints(self) -> int:
        """N, without the duplicated closing row."""
        return len(self.center_m)

    def waypoints_list(self) -> list[tuple[float, float]]:
        """DeepRacer's `waypoints` param: the centerline (x, y) tuples."""
        return [tuple(p) for p in self.center_m.tolist()]

    def project(self, points: np.ndarray, local: bool = False) -> TrackProjection:
        """Project points (M,2) onto the centerline (closest segment).

        local=True searches only the segments around the waypoint nearest to the points' mean:
        exact for a tight cluster such as a car and its wheels, and far cheaper on long tracks.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        segments = self._segments()
        if local and self.num_waypoints > 2 * _LOCAL_WINDOW + 1:
            mean_x, mean_y = np.add.reduce(pts, axis=0) / len(pts)
            dx, dy = segments.start_x - mean_x, segments.start_y - mean_y
            nearest = int((dx * dx + dy * dy).argmin())
            candidates, cx, cy, vx, vy, len2 = segments.windows[nearest]  # precomputed rows: no gather here
        else:
            candidates, cx, cy, vx, vy, len2 = segments.every
        rx, ry = pts[:, 0:1] - cx, pts[:, 1:2] - cy  # (M, S): from each segment start to each point
        t = (rx * vx + ry * vy) / len2
        np.minimum(np.maximum(t, 0.0, out=t), 1.0, out=t)
        dx = rx - t * vx
        dy = ry - t * vy
        d2 = dx * dx + dy * dy
        best = d2.argmin(axis=1)
        rows = np.arange(len(pts))
        t_best = t[rows, best]
        seg = candidates[best]
        side = segments.unit_x[seg] * ry[rows, best] - segments.unit_y[seg] * rx[rows, best]
        pairs = segments.waypoint_pairs[seg]
        nxt = pairs[:, 1]
        half_width = 0.5 * (self.width_m[seg] * (1 - t_best) + self.width_m[nxt] * t_best)
        s = self.cumulative_s_m[seg] + t_best * self.segment_length_m[seg]
        return TrackProjection(
            s_m=np.mod(s, self.length_m),
            distance_from_center_m=np.sqrt(d2[rows, best]),
            is_left_of_center=side > 0,
            heading_rad=self.segment_heading_rad[seg],
            closest_waypoints=pairs,
            segment_index=seg,
            half_width_m=half_width,
        )

    def project_cars(self, points: np.ndarray) -> TrackProjection:
        """Project each car's points (N, P, 2) (a car and its wheels) at once; every field is (N, P).

        The same answer as project(points[i], local=True) for every car i, in one compiled call.
        """
        from control.track.kernels import project_cars

        pts = np.asarray(points, dtype=np.float64)
        n_cars, n_points = pts.shape[:2]
        segments = self._segments()
        seg = np.empty((n_cars, n_points), dtype=np.intp)
        t, d2, side = np.empty((n_cars, n_points)), np.empty((n_cars, n_points)), np.empty((n_cars, n_points))
        _, _, _, vx, vy, len2 = segments.every
        project_cars(np.ascontiguousarray(pts[..., 0]), np.ascontiguousarray(pts[..., 1]), segments.start_x, segments.start_y,
                     vx, vy, len2, segments.unit_x, segments.unit_y, _LOCAL_WINDOW, seg, t, d2, side)
        nxt = segments.waypoint_pairs[seg, 1]
        half_width = 0.5 * (self.width_m[seg] * (1 - t) + self.width_m[nxt] * t)
        s_m = self.cumulative_s_m[seg] + t * self.segment_length_m[seg]
        return TrackProjection(
            s_m=np.mod(s_m, self.length_m),
            distance_from_center_m=np.sqrt(d2),
            is_left_of_center=side > 0,
            heading_rad=self.segment_heading_rad[seg],
            closest_waypoints=segments.waypoint_pairs[seg],
            segment_index=seg,
            half_width_m=half_width,
        )

    def race_projection_tables(self) -> tuple:
        """The arguments of kernels.project_race after the cars: segment columns, window, lap and width tables, waypoint grid (built once)."""
        cached = self.__dict__.get("_race_projection_tables")
        if cached is None:
            segments = self._segments()
            _, _, _, vx, vy, len2 = segments.every
            columns = (self.cumulative_s_m, self.segment_length_m, self.width_m, self.segment_heading_rad, self.waypoint_direction_rad)
            cum_s, seg_len, width, heading, direction = (np.ascontiguousarray(c, dtype=np.float64) for c in columns)
            from control.track.kernels import point_grid

            waypoint_grid = point_grid(self.center_m, _WAYPOINT_GRID_CELL_M)
            cached = self._race_projection_tables = (segments.start_x, segments.start_y, vx, vy, len2, segments.unit_x, segments.unit_y,
                                                     _LOCAL_WINDOW, cum_s, seg_len, self.length_m, width, heading, direction,
                                                     *waypoint_grid)
        return cached

    def lidar_grid(self, max_range_m: float) -> tuple:
        """The ray kernels' grid for rays of max_range_m (origin, cell size, shape, CSR segment lists, segment columns)."""
        return self._ray_traversal_grid(float(max_range_m))

    @property
    def waypoint_direction_rad(self) -> np.ndarray:
        """(N,) direction from waypoint i to waypoint i+1 as DeepRacer rewards compute it (atan2; 0 for a repeated point)."""
        cached = self.__dict__.get("_waypoint_direction_rad")
        if cached is None:
            cached = self._waypoint_direction_rad = np.arctan2(self._seg_vec[:, 1], self._seg_vec[:, 0])
        return cached

    def ray_distances_cars(self, origins_m: np.ndarray, angles_rad: np.ndarray, max_range_m: float) -> np.ndarray:
        """Distances (N, R) from each origin (N, 2) along its world-frame angles (N, R) to the nearest border, capped."""
        from control.track.kernels import cast_rays

        grid = self._ray_traversal_grid(float(max_range_m))
        origins = np.asarray(origins_m, dtype=np.float64)
        angles = np.ascontiguousarray(angles_rad, dtype=np.float64)
        out = np.empty(angles.shape)
        cast_rays(np.ascontiguousarray(origins[:, 0]), np.ascontiguousarray(origins[:, 1]), angles, float(max_range_m), *grid, out)
        return out

    def _ray_traversal_grid(self, max_range_m: float) -> tuple:
        """The ray kernel's grid for rays of max_range_m: origin, cell size, shape, CSR segment lists, segments."""
        grids = self.__dict__.setdefault("_ray_traversal_grids", {})
        grid = grids.get(max_range_m)
        if grid is None:
            from control.track.kernels import segment_grid

            real = np.hypot(*self._border_vec.T) > _EPS  # a zero-length border segment is never hit
            start, vec = self._border_start[real], self._border_vec[real]
            lo = np.minimum(self.inner_m.min(axis=0), self.outer_m.min(axis=0)) - max_range_m
            hi = np.maximum(self.inner_m.max(axis=0), self.outer_m.max(axis=0)) + max_range_m
            shape = tuple(int(v) for v in np.ceil((hi - lo) / _RAY_TRAVERSAL_CELL_M).astype(int))
            cell_start, cell_segments = segment_grid(start, vec, lo, _RAY_TRAVERSAL_CELL_M, shape)
            columns = [np.ascontiguousarray(c) for c in (start[:, 0], start[:, 1], vec[:, 0], vec[:, 1])]
            grid = grids[max_range_m] = (float(lo[0]), float(lo[1]), _RAY_TRAVERSAL_CELL_M, shape[0], shape[1], cell_start, cell_segments, *columns)
        return grid

    def _segments(self) -> "_SegmentTables":
        """Centerline segment geometry as contiguous columns, and project(local=True)'s windows, built once."""
        cached = self.__dict__.get("_segment_tables")
        if cached is None:
            n = self.num_waypoints
            ids = np.arange(n)
            columns = (ids, self.center_m[:, 0], self.center_m[:, 1], self._seg_vec[:, 0], self._seg_vec[:, 1], self._seg_len2)
            columns = tuple(np.ascontiguousarray(c) for c in columns)
            window_ids = (ids[:, None] + _LOCAL_OFFSETS) % n  # (N, W)
            tables = [c[window_ids] for c in columns]
            cached = _SegmentTables(
                start_x=columns[1],
                start_y=columns[2],
                unit_x=np.ascontiguousarray(self._unit[:, 0]),
                unit_y=np.ascontiguousarray(self._unit[:, 1]),
                waypoint_pairs=np.stack([ids, (ids + 1) % n], axis=1),
                every=columns,
                windows=[tuple(table[i] for table in tables) for i in range(n)],
            )
            self._segment_tables = cached
        return cached

    def on_track(self, points: np.ndarray) -> np.ndarray:
        """Whether each point (M,2) lies between the borders."""
        proj = self.project(points)
        return proj.distance_from_center_m <= proj.half_width_m

    def point_at(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Centerline position (M,2) and heading (M,) at distances `s_m` along the lap."""
        s = np.mod(np.atleast_1d(np.asarray(s_m, dtype=np.float64)), self.length_m)
        seg = np.clip(np.searchsorted(self.cumulative_s_m, s, side="right") - 1, 0, self.num_waypoints - 1)
        t = (s - self.cumulative_s_m[seg]) / self._seg_len_safe[seg]
        return self.center_m[seg] + t[:, None] * self._seg_vec[seg], self.segment_heading_rad[seg]

    def start_poses(self, s_m: np.ndarray, lateral: np.ndarray, heading_noise: np.ndarray, lateral_noise_m: float,
                    heading_noise_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, yaw) of cars starting at lap distances s_m, lateral * lateral_noise_m left of the centerline and
        turned heading_noise * heading_noise_deg from the track heading (draws in [-1, 1]); one compiled call."""
        from control.track.kernels import start_poses

        tables = self.__dict__.get("_start_pose_tables")
        if tables is None:
            columns = (self.cumulative_s_m, self._seg_len_safe, self.center_m[:, 0], self.center_m[:, 1], self._seg_vec[:, 0],
                       self._seg_vec[:, 1], self.segment_heading_rad)
            tables = self._start_pose_tables = tuple(np.ascontiguousarray(c, dtype=np.float64) for c in columns)
        k = len(s_m)
        x, y, yaw = np.empty(k), np.empty(k), np.empty(k)
        start_poses(s_m, lateral, heading_noise, float(lateral_noise_m), float(heading_noise_deg), *tables, self.length_m, x, y, yaw)
        return x, y, yaw

    def _ray_grid(self, max_range_m: float) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Per grid cell, the border segments that a ray of max_range_m from inside the cell can hit."""
        key = round(float(max_range_m), 6)
        cache = self.__dict__.setdefault("_ray_grids", {})
        if key not in cache:
            lo = np.minimum(self.inner_m.min(axis=0), self.outer_m.min(axis=0)) - max_range_m
            hi = np.maximum(self.inner_m.max(axis=0), self.outer_m.max(axis=0)) + max_range_m
            shape = np.ceil((hi - lo) / _RAY_GRID_CELL_M).astype(int)
            gx, gy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
            centers = lo + (np.c_[gx.ravel(), gy.ravel()] + 0.5) * _RAY_GRID_CELL_M
            reach = max_range_m + _RAY_GRID_CELL_M * 0.7072 + self._border_half_len  # cell half-diagonal
            cells: list[np.ndarray] = []
            for chunk in np.array_split(np.arange(len(centers)), max(1, len(centers) // 512)):
                dist = np.hypot(*(centers[chunk, None, :] - self._border_mid[None]).transpose(2, 0, 1))
                cells.extend(np.flatnonzero(row) for row in dist <= reach)
            cache[key] = (lo, shape, cells)
        return cache[key]

    def _ray_cells(self, max_range_m: float) -> "_RayCells":
        """The ray caster's per-cell segment packs for rays of max_range_m (one per range, kept)."""
        grids = self.__dict__.setdefault("_ray_cells_by_range", {})
        grid = grids.get(max_range_m)
        if grid is None:
            lo, shape, cells = self._ray_grid(max_range_m)
            real = np.hypot(*self._border_vec.T) > _EPS  # a zero-length border segment is never hit
            grid = grids[max_range_m] = _RayCells(
                float(lo[0]), float(lo[1]), int(shape[0]), int(shape[1]), cells, self._border_start, self._border_vec, real
            )
        return grid

    def ray_distances(self, origin: np.ndarray, angles_rad: np.ndarray, max_range_m: float) -> np.ndarray:
        """Distance (K,) from `origin` along world-frame `angles_rad` to the nearest border, capped at max_range_m."""
        x, y = float(origin[0]), float(origin[1])
        angles = np.asarray(angles_rad, dtype=np.float64).reshape(-1)
        lines, offsets = self._ray_cells(max_range_m).near(x, y)
        # Ray o + t·d meets segment s + u·e where t = (s-o)×e / d×e and u = (s-o)×d / d×e.
        # One matmul gives d×e and (s-o)×d for every (ray, segment) pair, laid out (K, S).
        d = np.empty((len(angles), 3))
        np.cos(angles, out=d[:, 0])
        np.sin(angles, out=d[:, 1])
        np.subtract(x * d[:, 1], y * d[:, 0], out=d[:, 2])  # o×d
        crosses = d @ lines
        n = offsets.shape[1]
        denom = crosses[:, :n]
        with np.errstate(divide="ignore", invalid="ignore"):  # parallel ray and segment: no hit
            t = ((1.0, x, y) @ offsets) / denom
            u = crosses[:, n:] / denom
        hit = (t >= 0) & (u >= 0) & (u <= 1)
        return np.where(hit, t, max_range_m).min(axis=1, initial=max_range_m)

    def curvature_per_m(self) -> np.ndarray:
        """Signed curvature (1/m, positive = left turn in index order) at each waypoint (Menger curvature)."""
        n = self.num_waypoints
        real = self.segment_length_m > _EPS
        uniq_idx = np.flatnonzero(real)  # waypoints that start a real segment: unique points
        pts = self.center_m[uniq_idx]
        a, b, c = np.roll(pts, 1, axis=0), pts, np.roll(pts, -1, axis=0)
        ab, bc, ca = np.hypot(*(b - a).T), np.hypot(*(c - b).T), np.hypot(*(a - c).T)
        area2 = _cross(b - a, c - a)
        kappa_unique = 2 * area2 / np.maximum(ab * bc * ca, _EPS)
        # Duplicated waypoints take the value of the unique point they repeat.
        # A zero-length segment i means waypoint i repeats waypoint i+1: use the next unique point.
        owner = np.minimum.accumulate(np.where(real, np.arange(n), n)[::-1])[::-1]
        owner = np.where(owner >= n, uniq_idx[0], owner)
        pos = np.searchsorted(uniq_idx, owner)
        return kappa_unique[pos]

    def __repr__(self) -> str:
        return f"Track(name={self.name!r}, length_m={self.length_m:.2f}, mean_width_m={self.mean_width_m:.2f}, waypoints={self.num_waypoints})"


def bundled_track_names() -> list[str]:
    """Names of the tracks shipped in resources/tracks/."""
    return sorted(p.stem for p in BUNDLED_TRACKS_DIR.glob("*.npy"))
