"""Objects on the track: DeepRacer's static boxes (object avoidance) and bot cars (head-to-bot).

Every env of a batch has its own M objects, so the state is a few (N, M) arrays: lap distance,
signed lateral offset (left of the centerline in waypoint-index order is positive), speed and
footprint. One `step` advances every bot of every env; collisions (separating axis theorem),
ray hits (slab method) and DeepRacer's object params are computed for N cars x M objects at
once, without a Python loop per object. Placement happens at reset, from each env's own
numpy Generator, so the batch size never changes an env's episode.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numba
import numpy as np
from pydantic import Field, StrictFloat, field_validator

from control.config_schema import Expect, Flag, Invalid, NonNegativeNumber, NonNegativeWhole, PositiveNumber, Section, Text, one_of
from control.errors import ConfigError
from control.sim.camera import footprint_in_view, frustum_constants
from control.track.track import Track

RACE_TYPES = ("time_trial", "object_avoidance", "head_to_bot")
KIND_BOX, KIND_BOT = 0, 1
# A lane's line lies halfway between the centerline and a border (DeepRacer's two lanes of a two-lane track).
LANE_OFFSET_OF_HALF_WIDTH = 0.5
_MAX_LANE_CHANGES = 256  # lane-change times drawn per bot at reset: enough for 256 x lane_change_s[0] seconds
_EPS = 1e-12
_CULL_MARGIN_M = 1e-9  # rays culled by the bounding circle only beyond it by this much: a grazing hit is still tested
_RAY_WINDOW_SLACK_RAD = 1e-7  # the sensor kernel's bearing window is this much wider than the circle subtends (rounding: ~1e-15)

LowHigh = Annotated[list[StrictFloat], Expect("[min, max] seconds with 0 < min <= max")]


class RaceConfig(Section):
    """env_config.race: the race type and its objects."""

    type: Annotated[Text, one_of(*RACE_TYPES)] = Field("time_trial", description="time_trial, object_avoidance or head_to_bot")
    num_obstacles: NonNegativeWhole = Field(6, description="object_avoidance: boxes placed at random (ignored when positions are given)")
    box_length_m: PositiveNumber = Field(0.3, description="box footprint along the track, m")
    box_width_m: PositiveNumber = Field(0.3, description="box footprint across the track, m")
    positions: list[list[StrictFloat | int]] | None = Field(
        None, description="object_avoidance: [[progress_fraction 0..1, lane +1 inside / -1 outside], ...] (DeepRacer's OBJECT_POSITIONS)")
    min_distance_m: NonNegativeNumber = Field(2.0, description="random placement: least distance along the track between objects and from the start, m")
    randomize_each_episode: Flag = Field(True, description="random placement: new places every episode (else the first episode's are kept)")
    num_bots: NonNegativeWhole = Field(3, description="head_to_bot: bot cars")
    bot_speed_mps: NonNegativeNumber = Field(1.0, description="head_to_bot: bot speed along its lane, m/s")
    lane_changes: Flag = Field(True, description="head_to_bot: bots change lanes")
    lane_change_s: LowHigh = Field([3.0, 6.0], description="head_to_bot: time between a bot's lane changes, drawn uniformly from [min, max], s")
    lane_change_lateral_mps: PositiveNumber = Field(0.5, description="head_to_bot: sideways speed of a lane change, m/s")
    bot_length_m: PositiveNumber = Field(0.4, description="bot car footprint length, m (a 1/18 car)")
    bot_width_m: PositiveNumber = Field(0.25, description="bot car footprint width, m")
    box_height_m: PositiveNumber = Field(0.3, description="box height as the camera sees it, m (DeepRacer's box: about 0.3)")
    bot_height_m: PositiveNumber = Field(0.2, description="bot car height as the camera sees it, m (a 1/18 car: about 0.2)")

    @field_validator("positions")
    @classmethod
    def _check_positions(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        for i, item in enumerate(value or []):
            if len(item) != 2 or not 0.0 <= float(item[0]) < 1.0 or item[1] not in (1, -1):
                raise Invalid(f"positions[{i}] is {item!r}; expected [progress_fraction in [0, 1), lane 1 or -1]")
        return value

    @field_validator("lane_change_s")
    @classmethod
    def _check_interval(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0.0 < value[0] <= value[1]:
            raise ValueError("[min, max] seconds with 0 < min <= max")
        return value


@dataclass
class ObjectState:
    """The objects of N envs: every field is (N, M); lateral_m > 0 is left of the centerline (index order)."""

    s_m: np.ndarray  # lap distance of the object's centre from the start line
    lateral_m: np.ndarray  # signed offset of its centre from the centerline
    start_lane: np.ndarray  # +1 inside, -1 outside: the lane at placement (a bot flips it at each lane-change time)
    speed_mps: np.ndarray
    half_length_m: np.ndarray
    half_width_m: np.ndarray
    kind: np.ndarray  # KIND_BOX or KIND_BOT
    lane_change_at_s: np.ndarray  # (N, M, K) sim times of the lane changes; inf when none
    lane_changes_done: np.ndarray  # (N, M) int: lane-change times passed so far (odd: in the other lane)
    x_m: np.ndarray  # the pose of the centre, kept in step with s_m and lateral_m (refresh_poses after changing those)
    y_m: np.ndarray
    yaw_rad: np.ndarray


def inside_sign(track: Track) -> float:
    """+1 when the inner border lies left of the centerline (index order), else -1: lane +1 is on that side."""
    heading = track.segment_heading_rad
    left = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
    side = np.einsum("ij,ij->i", track.inner_m - track.center_m, left)
    return 1.0 if side.mean() >= 0 else -1.0


def _segment_at(track: Track, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment index and fraction along it for lap distances s_m (any shape)."""
    s = np.mod(s_m, track.length_m)
    seg = np.clip(np.searchsorted(track.cumulative_s_m, s, side="right") - 1, 0, track.num_waypoints - 1)
    t = (s - track.cumulative_s_m[seg]) / np.maximum(track.segment_length_m[seg], _EPS)
    return seg, t


def lane_offset_m(track: Track, s_m: np.ndarray) -> np.ndarray:
    """Distance of a lane's line from the centerline at lap distances s_m: half the half-width, m."""
    seg, t = _segment_at(track, s_m)
    nxt = (seg + 1) % track.num_waypoints
    width = track.width_m[seg] * (1 - t) + track.width_m[nxt] * t
    return LANE_OFFSET_OF_HALF_WIDTH * 0.5 * width


def poses(track: Track, s_m: np.ndarray, lateral_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World (x, y, yaw_rad) of objects at lap distances s_m, lateral_m left of the centerline; the track's heading."""
    seg, t = _segment_at(track, s_m)
    center = track.center_m[seg] + t[..., None] * track._seg_vec[seg]
    heading = track.segment_heading_rad[seg]
    x = center[..., 0] - np.sin(heading) * lateral_m
    y = center[..., 1] + np.cos(heading) * lateral_m
    return x, y, heading


def _free_length_m(count: int, length_m: float, min_distance_m: float) -> float:
    """The lap length left to draw in once `count` objects and the start keep min_distance_m each, m; ConfigError when none is."""
    free_m = length_m - (count + 1) * min_distance_m
    if free_m < 0:
        raise ConfigError(f"env_config.race: {count} objects {min_distance_m:g} m apart do not fit on a {length_m:.1f} m track; "
                          f"use fewer objects or a smaller min_distance_m")
    return free_m


def spaced_distances_m(rng: np.random.Generator, count: int, length_m: float, start_s_m: float, min_distance_m: float) -> np.ndarray:
    """`count` random lap distances at least min_distance_m apart along the lap and from start_s_m (uniform spacing draw)."""
    free_m = _free_length_m(count, length_m, min_distance_m)
    # Sorted uniform draws on the free length, then one min_distance_m per object before it: every gap is >= min_distance_m.
    u = np.sort(rng.uniform(0.0, free_m, size=count))
    return np.mod(start_s_m + min_distance_m + u + np.arange(count) * min_distance_m, length_m)


class RaceObjects:
    """The obstacles or bots of N envs of one race config on one track, advanced and queried together."""

    def __init__(self, config: RaceConfig | Mapping[str, Any] | None, track: Track, num_envs: int) -> None:
        self.config = config if isinstance(config, RaceConfig) else RaceConfig.model_validate(dict(config or {}))
        self.track, self.num_envs = track, int(num_envs)
        cfg = self.config
        if cfg.type == "object_avoidance":
            self.num_objects = len(cfg.positions) if cfg.positions is not None else cfg.num_obstacles
        elif cfg.type == "head_to_bot":
            self.num_objects = cfg.num_bots
        else:
            self.num_objects = 0
        self._inside = inside_sign(track)
        self._curvature = track.curvature_per_m()
        self._placed = np.zeros(self.num_envs, dtype=bool)
        n, m = self.num_envs, self.num_objects
        is_bot = cfg.type == "head_to_bot"
        length_m, width_m = (cfg.bot_length_m, cfg.bot_width_m) if is_bot else (cfg.box_length_m, cfg.box_width_m)
        self.state = ObjectState(
            s_m=np.zeros((n, m)), lateral_m=np.zeros((n, m)), start_lane=np.ones((n, m)), speed_mps=np.zeros((n, m)),
            half_length_m=np.full((n, m), 0.5 * length_m), half_width_m=np.full((n, m), 0.5 * width_m),
            kind=np.full((n, m), KIND_BOT if is_bot else KIND_BOX), lane_change_at_s=np.full((n, m, 0), np.inf),
            lane_changes_done=np.zeros((n, m), dtype=np.int64), x_m=np.zeros((n, m)), y_m=np.zeros((n, m)), yaw_rad=np.zeros((n, m)),
        )
        columns = (track.cumulative_s_m, track.segment_length_m, track.width_m, track.center_m[:, 0], track.center_m[:, 1],
                   track._seg_vec[:, 0], track._seg_vec[:, 1], track.segment_heading_rad, self._curvature)
        self._track_columns = tuple(np.ascontiguousarray(c, dtype=np.float64) for c in columns)
        if is_bot:
            self.state.lane_change_at_s = np.full((n, m, _MAX_LANE_CHANGES), np.inf)
        self._frustum_cache: tuple[Any, np.ndarray] | None = None  # (camera or fov, its frustum constants): see frustum()
        self._flag_columns: list[np.ndarray | None] = [None, None]  # same_for_all's False and True columns
        # reset's constants: the draws each env's generator gives a placement, the placement's settings (_place_objects'
        # order) and the configured places (fractions of the lap and lanes; empty when they are drawn).
        lane_changes = is_bot and cfg.lane_changes
        self._draws_per_env = (2 * m if cfg.positions is None else 0) + (m * _MAX_LANE_CHANGES if lane_changes else 0)
        low_s, high_s = (float(v) for v in cfg.lane_change_s)
        self._placement = np.array([cfg.positions is None, is_bot, lane_changes, cfg.min_distance_m, track.length_m, low_s,
                                    high_s - low_s, cfg.bot_speed_mps, self._inside], dtype=np.float64)
        fixed = np.array(cfg.positions if cfg.positions is not None else np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2)
        self._fixed_places = (np.ascontiguousarray(fixed[:, 0] * track.length_m), np.ascontiguousarray(fixed[:, 1]))
        # The bots' step: each bot's segment last step (a hint, checked before use) and the segments' heading cos and sin.
        self._segment_hint = np.zeros((n, m), dtype=np.int64)
        self._heading_cos, self._heading_sin = _cos_sin(np.ascontiguousarray(track.segment_heading_rad, dtype=np.float64))
        # object_params' headings in degrees, kept with the yaw they were computed from (recomputed where a yaw changed).
        self._heading_yaw = np.full((n, m), np.nan)
        self._heading_deg = np.zeros((n, m))

    def reset(self, rows: Sequence[int] | np.ndarray, rngs: Sequence[np.random.Generator], start_s_m: np.ndarray) -> None:
        """Place the objects of envs `rows` (one generator each) for an episode whose car starts at start_s_m (reset path)."""
        cfg, st, length = self.config, self.state, self.track.length_m
        m = self.num_objects
        if m == 0:
            return
        rows = np.asarray(rows, dtype=np.intp).reshape(-1)
        starts = np.asarray(start_s_m, dtype=np.float64).reshape(-1)
        rngs = list(rngs)
        if not len(rows) == len(rngs) == len(starts):
            raise ValueError(f"RaceObjects.reset: {len(rows)} rows, {len(rngs)} generators and {len(starts)} start distances; expected one each")
        if cfg.type == "object_avoidance" and not cfg.randomize_each_episode:  # placed once: the first episode's places are kept
            fresh = ~self._placed[rows]
            rows, starts, rngs = rows[fresh], starts[fresh], [g for g, keep in zip(rngs, fresh.tolist(), strict=True) if keep]
        if not len(rows):
            return
        spaced = cfg.positions is None
        free_m = _free_length_m(m, length, cfg.min_distance_m) if spaced else 0.0
        # Each env's draws in one call on its generator, in the order the placement reads them (spacing, lanes, lane-change
        # intervals): Generator.uniform(lo, hi) is lo + (hi - lo) * random(), so the kernel turns them into the same values.
        draws = np.empty((len(rows), self._draws_per_env))
        if self._draws_per_env:
            for k, rng in enumerate(rngs):
                rng.random(out=draws[k])
        # Everything else of every placed env in one compiled call: places, lanes, speeds, lane-change times, poses.
        _place_objects(rows, draws, starts, self._placement, free_m, *self._fixed_places, st.s_m, st.start_lane, st.speed_mps,
                       st.lane_change_at_s, st.lane_changes_done, self._placed, *self._track_columns, st.lateral_m, st.x_m, st.y_m,
                       st.yaw_rad)

    def step(self, time_s: np.ndarray, dt_s: float) -> None:
        """Advance every bot of every env by dt_s: along its lane's line at its speed, and sideways towards its lane.

        time_s (N,) is each env's episode time after the step: a bot's lane flips at each of its drawn change times.
        """
        st = self.state
        if self.num_objects == 0 or self.config.type != "head_to_bot":
            return  # boxes never move
        _advance_bots(st.s_m, st.lateral_m, st.start_lane, st.speed_mps, st.lane_change_at_s, st.lane_changes_done,
                      np.asarray(time_s, dtype=np.float64), float(dt_s), self._inside, self.config.lane_change_lateral_mps * dt_s,
                      *self._track_columns, self.track.length_m, self._segment_hint, self._heading_cos, self._heading_sin,
                      st.x_m, st.y_m, st.yaw_rad)

    def current_lane(self, time_s: np.ndarray) -> np.ndarray:
        """(N, M) lane each object is in or moving to at episode times time_s (N,): +1 inside, -1 outside."""
        st = self.state
        changes = (st.lane_change_at_s <= np.asarray(time_s, dtype=np.float64)[:, None, None]).sum(axis=2)
        return st.start_lane * np.where(changes % 2 == 1, -1.0, 1.0)

    def refresh_poses(self) -> None:
        """Recompute every object's (x, y, yaw) from its lap distance and lateral offset (after placing or moving objects)."""
        st = self.state
        st.x_m, st.y_m, st.yaw_rad = poses(self.track, st.s_m, st.lateral_m)

    def poses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, yaw_rad) of every object, each (N, M)."""
        return self.state.x_m, self.state.y_m, self.state.yaw_rad

    def rectangles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Footprints (x, y, yaw_rad, half_length_m, half_width_m), each (N, M)."""
        st = self.state
        return st.x_m, st.y_m, st.yaw_rad, st.half_length_m, st.half_width_m

    def same_for_all(self, flag: bool) -> np.ndarray:
        """A read-only (N,) bool column of `flag`, kept: the per-step path asks for the same one every step."""
        column = self._flag_columns[bool(flag)]
        if column is None:
            column = np.full(self.num_envs, bool(flag))
            column.flags.writeable = False
            self._flag_columns[bool(flag)] = column
        return column

    def frustum(self, camera: Any = None, camera_fov_deg: float = 120.0) -> np.ndarray:
        """frustum_constants of `camera` (a CameraSpec; None: DeepRacer's with camera_fov_deg), kept for the next call.

        object_params asks every step with the same camera: an identity check instead of hashing the spec each time.
        """
        key = camera if camera is not None else float(camera_fov_deg)
        cached = self._frustum_cache
        if cached is not None and (cached[0] is key or (camera is None and cached[0] == key)):
            return cached[1]
        from control.sim.base import CameraSpec

        constants = frustum_constants(camera if camera is not None else CameraSpec(fov_deg=float(camera_fov_deg)))
        self._frustum_cache = (key, constants)
        return constants


@numba.njit(cache=True)
def _place_from_draws(rows, draws, starts, spaced, lane_changes, free_m, min_distance_m, length_m, low_s, range_s, s_m, start_lane,
                      change_at_s):  # pragma: no cover - compiled
    """RaceObjects.reset's values from env k's draws (k, count) in (0, 1): the same arithmetic as the one-by-one draws.

    spaced: s_m as spaced_distances_m (sorted uniform(0, free_m), one min_distance_m per object) and lanes as
    where(random < 0.5, -1, 1); lane_changes: cumulative sums of uniform(low_s, low_s + range_s) per bot.
    """
    m = s_m.shape[1]
    num_changes = change_at_s.shape[2]
    for k in range(rows.shape[0]):
        i = rows[k]
        at = 0
        if spaced:
            u = np.empty(m)
            for j in range(m):
                u[j] = 0.0 + free_m * draws[k, j]
            u = np.sort(u)
            for j in range(m):
                s_m[i, j] = (starts[k] + min_distance_m + u[j] + j * min_distance_m) % length_m
                start_lane[i, j] = -1.0 if draws[k, m + j] < 0.5 else 1.0
            at = 2 * m
        if lane_changes:
            for j in range(m):
                total_s = 0.0
                for c in range(num_changes):
                    total_s += low_s + range_s * draws[k, at + j * num_changes + c]
                    change_at_s[i, j, c] = total_s


@numba.njit(cache=True)
def _place_objects(rows, draws, starts, settings, free_m, fixed_s_m, fixed_lane, s_m, start_lane, speed_mps, change_at_s, changes_done,
                   placed, cum_s, seg_len, width, center_x, center_y, vec_x, vec_y, heading, curvature, out_lateral, out_x, out_y,
                   out_yaw):  # pragma: no cover - compiled
    """RaceObjects.reset of envs `rows` from their draws: places (drawn or fixed_s_m / fixed_lane), bot speeds and lane-change
    times, no lane change done, placed, and every object on its lane's line with its pose.

    settings: spaced, bots, lane_changes (0 or 1), min_distance_m, length_m, lane-change low_s and range_s, bot speed, inside.
    """
    spaced, bots, lane_changes = settings[0] > 0, settings[1] > 0, settings[2] > 0
    min_distance_m, length_m, low_s, range_s, bot_speed, inside = settings[3], settings[4], settings[5], settings[6], settings[7], settings[8]
    _place_from_draws(rows, draws, starts, spaced, lane_changes, free_m, min_distance_m, length_m, low_s, range_s, s_m, start_lane,
                      change_at_s)
    for k in range(rows.shape[0]):
        i = rows[k]
        for j in range(s_m.shape[1]):
            if not spaced:
                s_m[i, j], start_lane[i, j] = fixed_s_m[j], fixed_lane[j]
            if bots:
                speed_mps[i, j] = bot_speed
                if not lane_changes:
                    change_at_s[i, j, :] = np.inf
            changes_done[i, j] = 0
        placed[i] = True
    _place_in_lanes(rows, s_m, start_lane, inside, cum_s, seg_len, width, center_x, center_y, vec_x, vec_y, heading, curvature,
                    out_lateral, out_x, out_y, out_yaw)


@numba.njit(cache=True)
def _place_in_lanes(rows, s_m, lane, inside, cum_s, seg_len, width, center_x, center_y, vec_x, vec_y, heading, curvature,
                    out_lateral, out_x, out_y, out_yaw):  # pragma: no cover - compiled
    """Objects of envs `rows` on their lane's line at s_m (lateral offset, as lane_offset_m) and their poses (as poses())."""
    n_wp = cum_s.shape[0] - 1
    for r in range(rows.shape[0]):
        i = rows[r]
        for j in range(s_m.shape[1]):
            seg = min(max(np.searchsorted(cum_s, s_m[i, j], side="right") - 1, 0), n_wp - 1)
            t = (s_m[i, j] - cum_s[seg]) / max(seg_len[seg], _EPS)
            nxt = seg + 1 if seg + 1 < n_wp else 0
            lateral = lane[i, j] * inside * LANE_OFFSET_OF_HALF_WIDTH * 0.5 * (width[seg] * (1 - t) + width[nxt] * t)
            h = heading[seg]
            out_lateral[i, j] = lateral
            out_x[i, j] = center_x[seg] + t * vec_x[seg] - math.sin(h) * lateral
            out_y[i, j] = center_y[seg] + t * vec_y[seg] + math.cos(h) * lateral
            out_yaw[i, j] = h


@numba.njit(cache=True)
def _cos_sin(angles_rad):  # pragma: no cover - compiled
    """cos and sin of each angle, by the same math functions the kernels call (so a table lookup equals the call, bit for bit)."""
    cos, sin = np.empty(angles_rad.shape[0]), np.empty(angles_rad.shape[0])
    for k in range(angles_rad.shape[0]):
        cos[k], sin[k] = math.cos(angles_rad[k]), math.sin(angles_rad[k])
    return cos, sin


@numba.njit(cache=True, inline="always")
def _segment_of(cum_s, s, hint, n_wp):  # pragma: no cover - compiled
    """The segment under lap distance s: searchsorted(cum_s, s, 'right') - 1 clipped to [0, n_wp - 1], checked at hint and
    the segment after it first (a bot moves a few cm a step), searched only when neither is it."""
    for seg in (hint, hint + 1):
        if 0 <= seg < n_wp and cum_s[seg] <= s and (seg == n_wp - 1 or s < cum_s[seg + 1]):
            return seg
    return min(max(np.searchsorted(cum_s, s, side="right") - 1, 0), n_wp - 1)


@numba.njit(cache=True)
def _advance_bots(s_m, lateral_m, start_lane, speed_mps, change_at_s, changes_done, time_s, dt_s, inside, max_move_m, cum_s, seg_len,
                  width, center_x, center_y, vec_x, vec_y, heading, curvature, length_m, segment_hint, heading_cos, heading_sin,
                  out_x, out_y, out_yaw):  # pragma: no cover - compiled
    """RaceObjects.step for every bot (N, M) in one pass: along the lane, lane flips at the drawn times, sideways, new pose.

    segment_hint (N, M): each bot's segment last step, updated; heading_cos, heading_sin: the segments' heading trig.
    """
    n_wp = cum_s.shape[0] - 1
    num_changes = change_at_s.shape[2]
    for i in range(s_m.shape[0]):
        for j in range(s_m.shape[1]):
            seg = _segment_of(cum_s, s_m[i, j], segment_hint[i, j], n_wp)
            # A line `lateral` left of the centerline is shorter (left turn) or longer (right turn) by 1 - kappa * lateral per m.
            stretch = max(1.0 - curvature[seg] * lateral_m[i, j], 0.05)
            s = (s_m[i, j] + speed_mps[i, j] * dt_s / stretch) % length_m
            done = changes_done[i, j]
            while done < num_changes and change_at_s[i, j, done] <= time_s[i]:
                done += 1
            changes_done[i, j] = done
            lane = -start_lane[i, j] if done % 2 == 1 else start_lane[i, j]
            seg = _segment_of(cum_s, s, seg, n_wp)
            segment_hint[i, j] = seg
            t = (s - cum_s[seg]) / max(seg_len[seg], _EPS)
            nxt = seg + 1 if seg + 1 < n_wp else 0
            lane_offset = LANE_OFFSET_OF_HALF_WIDTH * 0.5 * (width[seg] * (1 - t) + width[nxt] * t)
            lateral = lateral_m[i, j] + min(max(lane * inside * lane_offset - lateral_m[i, j], -max_move_m), max_move_m)
            s_m[i, j], lateral_m[i, j] = s, lateral
            out_x[i, j] = center_x[seg] + t * vec_x[seg] - heading_sin[seg] * lateral
            out_y[i, j] = center_y[seg] + t * vec_y[seg] + heading_cos[seg] * lateral
            out_yaw[i, j] = heading[seg]


@numba.njit(cache=True, inline="always")
def _pair_overlaps(car_x, car_y, ca, sa, car_r, car_hl, car_hw, obj_x, obj_y, obj_yaw, obj_hl, obj_hw):  # pragma: no cover - compiled
    """Whether a car rectangle (centre, heading cos/sin, bounding radius, half sizes) overlaps one object's: circle reject, then SAT."""
    dx, dy = obj_x - car_x, obj_y - car_y
    reach = car_r + math.hypot(obj_hl, obj_hw)
    if dx * dx + dy * dy > reach * reach:
        return False
    cb, sb = math.cos(obj_yaw), math.sin(obj_yaw)
    for k in range(4):  # the rectangles' own axes: each one's length and width directions
        ax, ay = (ca, sa) if k == 0 else (-sa, ca) if k == 1 else (cb, sb) if k == 2 else (-sb, cb)
        ra = car_hl * abs(ax * ca + ay * sa) + car_hw * abs(-ax * sa + ay * ca)
        rb = obj_hl * abs(ax * cb + ay * sb) + obj_hw * abs(-ax * sb + ay * cb)
        if abs(ax * dx + ay * dy) > ra + rb:
            return False
    return True


@numba.njit(cache=True)
def _overlap(car_x, car_y, car_yaw, car_hl, car_hw, obj_x, obj_y, obj_yaw, obj_hl, obj_hw, out):  # pragma: no cover - compiled
    """rectangles_overlap's test per (car, object)."""
    car_r = math.hypot(car_hl, car_hw)
    for i in range(obj_x.shape[0]):
        ca, sa = math.cos(car_yaw[i]), math.sin(car_yaw[i])
        for j in range(obj_x.shape[1]):
            out[i, j] = _pair_overlaps(car_x[i], car_y[i], ca, sa, car_r, car_hl, car_hw, obj_x[i, j], obj_y[i, j], obj_yaw[i, j],
                                       obj_hl[i, j], obj_hw[i, j])


@numba.njit(cache=True)
def _mark_overlaps(car_x, car_y, car_yaw, car_hl, car_hw, obj_x, obj_y, obj_yaw, obj_hl, obj_hw, crashed):  # pragma: no cover - compiled
    """crashed[i] |= car i overlaps any object of env i (mark_collisions' pass; the car's trig only when one is in reach)."""
    car_r = math.hypot(car_hl, car_hw)
    for i in range(obj_x.shape[0]):
        trig_ready = False
        ca, sa = 0.0, 0.0
        for j in range(obj_x.shape[1]):
            dx, dy = obj_x[i, j] - car_x[i], obj_y[i, j] - car_y[i]
            reach = car_r + math.hypot(obj_hl[i, j], obj_hw[i, j])
            if dx * dx + dy * dy > reach * reach:
                continue
            if not trig_ready:
                ca, sa = math.cos(car_yaw[i]), math.sin(car_yaw[i])
                trig_ready = True
            if _pair_overlaps(car_x[i], car_y[i], ca, sa, car_r, car_hl, car_hw, obj_x[i, j], obj_y[i, j], obj_yaw[i, j],
                              obj_hl[i, j], obj_hw[i, j]):
                crashed[i] = True
                break


def rectangles_overlap(car_x: np.ndarray, car_y: np.ndarray, car_yaw: np.ndarray, car_half_length_m: float, car_half_width_m: float,
                       obj_x: np.ndarray, obj_y: np.ndarray, obj_yaw: np.ndarray, obj_half_length_m: np.ndarray,
                       obj_half_width_m: np.ndarray) -> np.ndarray:
    """(N, M) whether car i's rectangle (N,) overlaps object j's rectangle (N, M): separating axis theorem, 4 axes."""
    columns = [np.ascontiguousarray(a, dtype=np.float64) for a in (car_x, car_y, car_yaw, obj_x, obj_y, obj_yaw, obj_half_length_m,
                                                                   obj_half_width_m)]
    cx, cy, cyaw, ox, oy, oyaw, ohl, ohw = columns
    out = np.empty(ox.shape, dtype=np.bool_)
    _overlap(cx, cy, cyaw, float(car_half_length_m), float(car_half_width_m), ox, oy, oyaw, ohl, ohw, out)
    return out


def mark_collisions(objects: RaceObjects, car_x: np.ndarray, car_y: np.ndarray, car_yaw: np.ndarray, car_half_length_m: float,
                    car_half_width_m: float, crashed: np.ndarray) -> None:
    """Set crashed[i] (N,) where car i's rectangle overlaps one of env i's objects (rectangles_overlap's test, in place, no (N, M) array).

    The car arrays are the backend's contiguous float64 (N,) state, read as they are (the per-step path).
    """
    st = objects.state
    _mark_overlaps(car_x, car_y, car_yaw, float(car_half_length_m), float(car_half_width_m), st.x_m, st.y_m, st.yaw_rad,
                   st.half_length_m, st.half_width_m, crashed)


def ray_rectangle_distances(origins_m: np.ndarray, angles_rad: np.ndarray, obj_x: np.ndarray, obj_y: np.ndarray, obj_yaw: np.ndarray,
                            obj_half_length_m: np.ndarray, obj_half_width_m: np.ndarray, max_range_m: float,
                            rows: np.ndarray | None = None) -> np.ndarray:
    """(K, R) distance along each ray (origins (K, 2), world angles (K, R)) to the nearest object rectangle, capped.

    Ray row k meets the rectangles of env rows[k] (objects (N, M); rows defaults to 0..K-1). Slab method in
    each rectangle's frame, one compiled pass; an origin inside a rectangle reads 0.
    """
    origins = np.asarray(origins_m, dtype=np.float64)
    angles = np.ascontiguousarray(angles_rad, dtype=np.float64)
    rows = np.arange(len(origins), dtype=np.intp) if rows is None else np.asarray(rows, dtype=np.intp)
    out = np.full(angles.shape, float(max_range_m))
    columns = [np.ascontiguousarray(a, dtype=np.float64) for a in (obj_x, obj_y, obj_yaw, obj_half_length_m, obj_half_width_m)]
    _rays_to_rectangles(rows, np.ascontiguousarray(origins[:, 0]), np.ascontiguousarray(origins[:, 1]), angles, *columns, out)
    return out


@numba.njit(cache=True, inline="always")
def _slab_hit_m(px, py, dx, dy, hl, hw):  # pragma: no cover - compiled
    """Distance along the unit ray from (px, py) in direction (dx, dy), in the rectangle's frame, to the
    rectangle |x| <= hl, |y| <= hw (0 from inside); inf when the ray misses it (the slab test)."""
    # A direction parallel to a slab: a tiny component instead, so inf arithmetic decides (no 0/0).
    if abs(dx) < _EPS:
        dx = _EPS
    if abs(dy) < _EPS:
        dy = _EPS
    tx1, tx2 = (-hl - px) / dx, (hl - px) / dx
    ty1, ty2 = (-hw - py) / dy, (hw - py) / dy
    t_near = max(min(tx1, tx2), min(ty1, ty2))
    t_far = min(max(tx1, tx2), max(ty1, ty2))
    if t_near <= t_far and t_far >= 0.0:
        return max(t_near, 0.0)
    return math.inf


@numba.njit(cache=True)
def _rays_to_rectangles(rows, ox, oy, angles, obj_x, obj_y, obj_yaw, obj_hl, obj_hw, out):  # pragma: no cover - compiled
    """Lower out[k, r] to the distance along ray (k, r) to each rectangle of env rows[k] it hits (slab method).

    A rectangle whose bounding circle lies beyond every ray's current reading, behind a ray or off its line, is skipped.
    """
    num_rays = angles.shape[1]
    cw, sw = np.empty(num_rays), np.empty(num_rays)
    for k in range(rows.shape[0]):
        i = rows[k]
        longest = 0.0
        for r in range(num_rays):
            longest = max(longest, out[k, r])
        directions_ready = False
        for j in range(obj_x.shape[1]):
            hl, hw = obj_hl[i, j], obj_hw[i, j]
            rx, ry = ox[k] - obj_x[i, j], oy[k] - obj_y[i, j]
            radius = math.sqrt(hl * hl + hw * hw)
            if math.sqrt(rx * rx + ry * ry) - radius >= longest:
                continue
            if not directions_ready:  # the rays' trig only for a car with an object in reach (most have none)
                for r in range(num_rays):
                    cw[r], sw[r] = math.cos(angles[k, r]), math.sin(angles[k, r])
                directions_ready = True
            cb, sb = math.cos(obj_yaw[i, j]), math.sin(obj_yaw[i, j])
            px, py = rx * cb + ry * sb, -rx * sb + ry * cb  # the origin in the rectangle's frame
            for r in range(num_rays):
                if -(rx * cw[r] + ry * sw[r]) < -radius:  # the rectangle lies behind this ray
                    continue
                # The ray's line passes farther from the centre than the bounding circle: no hit (most rays, cheaply).
                if abs(rx * sw[r] - ry * cw[r]) > radius + _CULL_MARGIN_M:
                    continue
                t = _slab_hit_m(px, py, cw[r] * cb + sw[r] * sb, -cw[r] * sb + sw[r] * cb, hl, hw)
                if t < out[k, r]:
                    out[k, r] = t


@numba.njit(cache=True)
def _lower_sensor_rays(rows, car_x, car_y, car_yaw, angles_rel, max_range_m, obj_x, obj_y, obj_yaw, obj_hl, obj_hw, distances_m,
                       obs):  # pragma: no cover - compiled
    """lower_rays_to_objects' pass: car rows[k]'s rays (yaw + angles_rel) lowered in distances_m[rows[k]], obs[k, :R] rewritten.

    _rays_to_rectangles' tests, ray by ray, on the rays that can reach an object: a ray whose bearing is farther from the
    object's than the object's bounding circle subtends (plus a slack far above rounding) passes it by, so it is skipped
    before its trig is taken; a car's rays get their cos and sin once, when first needed.
    """
    num_rays = angles_rel.shape[0]
    tau = 2.0 * math.pi
    cw, sw = np.empty(num_rays), np.empty(num_rays)
    ready = np.zeros(num_rays, dtype=np.bool_)
    for k in range(rows.shape[0]):
        i = rows[k]
        out = distances_m[i]
        x0, y0, yaw = car_x[i], car_y[i], car_yaw[i]
        longest = 0.0
        for r in range(num_rays):
            longest = max(longest, out[r])
        ready[:] = False
        lowered = False
        for j in range(obj_x.shape[1]):
            hl, hw = obj_hl[i, j], obj_hw[i, j]
            rx, ry = x0 - obj_x[i, j], y0 - obj_y[i, j]
            radius = math.sqrt(hl * hl + hw * hw)
            dist = math.sqrt(rx * rx + ry * ry)
            if dist - radius >= longest:
                continue
            reach = radius + _CULL_MARGIN_M
            windowed = dist > 2.0 * reach  # else (next to the object) every ray is tested
            half_window, bearing = 0.0, 0.0
            if windowed:  # the rays within asin(reach / dist) of the object's bearing (relative to the heading) can meet it
                half_window = math.asin(reach / dist) + _RAY_WINDOW_SLACK_RAD
                bearing = math.atan2(-ry, -rx) - yaw
            cb, sb = math.cos(obj_yaw[i, j]), math.sin(obj_yaw[i, j])
            px, py = rx * cb + ry * sb, -rx * sb + ry * cb  # the origin in the rectangle's frame
            for r in range(num_rays):
                if windowed:
                    off = angles_rel[r] - bearing
                    off -= tau * math.floor((off + math.pi) / tau)  # in [-pi, pi)
                    if abs(off) > half_window:
                        continue
                if not ready[r]:
                    angle = yaw + angles_rel[r]
                    cw[r], sw[r] = math.cos(angle), math.sin(angle)
                    ready[r] = True
                if -(rx * cw[r] + ry * sw[r]) < -radius:  # the rectangle lies behind this ray
                    continue
                if abs(rx * sw[r] - ry * cw[r]) > reach:  # the ray's line passes the bounding circle by
                    continue
                t = _slab_hit_m(px, py, cw[r] * cb + sw[r] * sb, -cw[r] * sb + sw[r] * cb, hl, hw)
                if t < out[r]:
                    out[r] = t
                    lowered = True
        if lowered:
            for r in range(num_rays):
                obs[k, r] = out[r] / max_range_m


def lower_rays_to_objects(objects: RaceObjects, rows: np.ndarray, car_x: np.ndarray, car_y: np.ndarray, car_yaw: np.ndarray,
                          angles_rad: np.ndarray, max_range_m: float, distances_m: np.ndarray, obs: np.ndarray) -> None:
    """Rays stop at objects too: lower each border distance distances_m[rows[k]] (N, R), m, to the nearest object along the ray.

    Car rows[k]'s rays leave its pose at world angles car_yaw + angles_rad (R,) and meet the rectangles of env rows[k]; where
    a car has an object in reach, obs[k, :R] (float32) is rewritten as distance / max_range_m. The same hits as
    ray_rectangle_distances (one compiled pass, in place): every array is the caller's contiguous float64 (float32 obs).
    """
    st = objects.state
    _lower_sensor_rays(rows, car_x, car_y, car_yaw, angles_rad, float(max_range_m), st.x_m, st.y_m, st.yaw_rad, st.half_length_m,
                       st.half_width_m, distances_m, obs)


@dataclass
class ObjectParams:
    """DeepRacer's object params of N cars as arrays: per-object fields (N, M), closest (N, 2), in_camera (N,)."""

    closest_objects: np.ndarray  # [index behind, index ahead] along the track
    objects_location_m: np.ndarray  # (N, M, 2)
    objects_left_of_center: np.ndarray
    objects_speed_mps: np.ndarray
    objects_heading_deg: np.ndarray
    objects_distance_m: np.ndarray  # along the centerline from the start line, [0, track_length)
    objects_distance_from_center_m: np.ndarray
    object_in_camera: np.ndarray

    def car_dict(self, i: int) -> dict[str, Any]:
        """Car i's params as DeepRacer's reward function reads them (Python lists); empty lists without objects."""
        if self.objects_distance_m.shape[1] == 0:
            return {"closest_objects": [], "objects_location": [], "objects_left_of_center": [], "objects_speed": [],
                    "objects_heading": [], "objects_distance": [], "objects_distance_from_center": [], "object_in_camera": False}
        return {
            "closest_objects": self.closest_objects[i].tolist(),
            "objects_location": [tuple(p) for p in self.objects_location_m[i].tolist()],
            "objects_left_of_center": self.objects_left_of_center[i].tolist(),
            "objects_speed": self.objects_speed_mps[i].tolist(),
            "objects_heading": self.objects_heading_deg[i].tolist(),
            "objects_distance": self.objects_distance_m[i].tolist(),
            "objects_distance_from_center": self.objects_distance_from_center_m[i].tolist(),
            "object_in_camera": bool(self.object_in_camera[i]),
        }


def object_params(objects: RaceObjects, car_x: np.ndarray, car_y: np.ndarray, car_yaw: np.ndarray, car_s_m: np.ndarray,
                  camera_fov_deg: float = 120.0, clockwise: np.ndarray | bool = False, camera: Any = None) -> ObjectParams:
    """DeepRacer's object params of N cars (x, y, yaw_rad, lap distance s_m (N,)) over their envs' objects.

    Behind/ahead are along the driving direction (index order, or against it where `clockwise`);
    object_in_camera: a corner or the centre of the object ahead's footprint lies in the front camera's
    frustum (DeepRacer's test; `camera` a CameraSpec, default DeepRacer's with camera_fov_deg).
    One compiled pass over the N x M pairs: it runs every step that infos carry params.
    """
    st = objects.state
    n, m = st.s_m.shape
    cars = [_car_column(a, n, np.float64) for a in (car_x, car_y, car_yaw, car_s_m)]
    # One flag for every car (the race's case: objects sit on the driving track): a kept all-False / all-True column.
    backwards = objects.same_for_all(clockwise) if isinstance(clockwise, (bool, np.bool_)) else _car_column(clockwise, n, np.bool_)
    closest = np.empty((n, 2 if m else 0), dtype=np.int64)
    location, left, speed, heading_deg = np.empty((n, m, 2)), np.empty((n, m), dtype=np.bool_), np.empty((n, m)), np.empty((n, m))
    along, off_center, in_camera = np.empty((n, m)), np.empty((n, m)), np.zeros(n, dtype=np.bool_)
    _object_params(*cars, backwards, objects.track.length_m, objects.frustum(camera, camera_fov_deg), st.s_m, st.x_m, st.y_m,
                   st.yaw_rad, st.half_length_m, st.half_width_m, st.lateral_m, st.speed_mps, objects._heading_yaw, objects._heading_deg,
                   closest, location, left, speed, heading_deg, along, off_center, in_camera)
    return ObjectParams(closest_objects=closest, objects_location_m=location, objects_left_of_center=left, objects_speed_mps=speed,
                        objects_heading_deg=heading_deg, objects_distance_m=along, objects_distance_from_center_m=off_center,
                        object_in_camera=in_camera)


def _car_column(value: Any, n: int, dtype: type) -> np.ndarray:
    """A contiguous (n,) array of `value` (one per car, or one for all); no copy when it already is one (the per-step path)."""
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:  # one value for every car (clockwise=False): np.full is the cheap way
        return np.full(n, arr.item(), dtype=dtype)
    if arr.shape != (n,) or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(np.broadcast_to(arr.reshape(-1), (n,)))
    return arr


@numba.njit(cache=True)
def _object_params(car_x, car_y, car_yaw, car_s, backwards, length_m, frustum, s_m, x, y, yaw, hl, hw, lateral, speed, heading_yaw,
                   heading_deg, out_closest, out_location, out_left, out_speed, out_heading_deg, out_along, out_off_center,
                   out_in_camera):  # pragma: no cover - compiled
    """object_params' per-pair work: behind/ahead indices, locations, sides, speeds, headings in (-180, 180], lap distances,
    distances from the centerline, and whether the ahead object is in camera.

    heading_deg (N, M) keeps each object's heading with the yaw heading_yaw it came from: boxes never turn and bots
    turn only where their segment changes, so the trig is redone only for a yaw that differs (its sign of zero included).
    """
    for i in range(s_m.shape[0]):
        behind, ahead = 0, 0
        far_m, near_m = -1.0, np.inf
        for j in range(s_m.shape[1]):
            a = (s_m[i, j] - car_s[i]) % length_m
            if backwards[i]:
                a = (-a) % length_m
            # The object ahead is the nearest one in front along the lap; the one behind is the nearest behind (the farthest ahead).
            if a > far_m:  # strict: the first of equals, as argmax
                behind, far_m = j, a
            if a < near_m:
                ahead, near_m = j, a
            out_location[i, j, 0], out_location[i, j, 1] = x[i, j], y[i, j]
            out_left[i, j], out_off_center[i, j] = lateral[i, j] > 0, abs(lateral[i, j])
            out_speed[i, j], out_along[i, j] = speed[i, j], s_m[i, j]
            turn = yaw[i, j]
            if turn != heading_yaw[i, j] or math.copysign(1.0, turn) != math.copysign(1.0, heading_yaw[i, j]):
                heading_deg[i, j] = math.atan2(math.sin(turn), math.cos(turn)) * (180.0 / math.pi)
                heading_yaw[i, j] = turn
            out_heading_deg[i, j] = heading_deg[i, j]
        if s_m.shape[1]:
            out_closest[i, 0], out_closest[i, 1] = behind, ahead
            out_in_camera[i] = footprint_in_view(frustum, car_x[i], car_y[i], math.cos(car_yaw[i]), math.sin(car_yaw[i]), x[i, ahead],
                                                 y[i, ahead], yaw[i, ahead], hl[i, ahead], hw[i, ahead])
