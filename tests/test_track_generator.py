"""Generator coverage: the 'deepracer' profile reaches what real DeepRacer tracks hold; 'classic' is unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from control.bench.track_bench import format_tracks, generator_distribution, real_track_paths, reference_rows, track_shape
from control.errors import ConfigError
from control.sim.base import DEEPRACER_LIMITS
from control.sim.raceline import racing_line
from control.track.generate import CAR_TURNING_RADIUS_M, generate_track, polylines_intersect, validate_track
from control.track.track import Track

SEEDS = range(20)


@pytest.fixture(scope="module")
def deepracer_tracks() -> list[Track]:
    return [generate_track(seed, profile="deepracer") for seed in SEEDS]


def test_turning_radius_constant_is_the_builtin_cars():
    assert CAR_TURNING_RADIUS_M == pytest.approx(1.0 / DEEPRACER_LIMITS.max_curvature_per_m, abs=1e-3)


def test_classic_profile_is_the_default_and_keeps_one_width_per_track():
    for seed in range(3):
        default, classic = generate_track(seed), generate_track(seed, profile="classic")
        np.testing.assert_array_equal(default.center_m, classic.center_m)
        assert np.ptp(classic.width_m) == 0.0 and 0.76 <= classic.width_m[0] <= 1.07
        assert 1.0 / np.abs(classic.curvature_per_m()).max() >= 0.5


def test_deepracer_profile_reaches_real_track_corners_and_widths(deepracer_tracks):
    shapes = [track_shape(t) for t in deepracer_tracks]
    radii = np.array([s.tightest_radius_m for s in shapes])
    min_w, max_w = np.array([s.min_width_m for s in shapes]), np.array([s.max_width_m for s in shapes])
    # Real tracks have centerline radii as small as about 0.3-0.6 m and widths of about 0.6-2.0 m.
    assert radii.min() <= 0.45 and np.mean(radii < 0.6) >= 0.2
    assert radii.min() >= CAR_TURNING_RADIUS_M  # never tighter than the car can turn
    assert min_w.min() <= 0.65 and max_w.max() >= 1.8
    assert np.median(max_w / min_w) >= 1.15  # width changes along the lap on most tracks
    for path in real_track_paths():  # and covers the real tracks at hand
        real = track_shape(Track.load(str(path)))
        assert radii.min() <= real.tightest_radius_m
        assert min_w.min() <= real.min_width_m and max_w.max() >= real.max_width_m


def test_deepracer_tracks_are_valid_and_the_same_per_seed(deepracer_tracks):
    for track in deepracer_tracks:
        assert validate_track(track, CAR_TURNING_RADIUS_M, 0.9) is None
        assert not polylines_intersect(track.inner_m, track.outer_m)
        assert np.all(track.width_m >= 0.6 - 1e-9) and np.all(track.width_m <= 2.0 + 1e-9)
    np.testing.assert_array_equal(generate_track(3, profile="deepracer").width_m, deepracer_tracks[3].width_m)


def test_racing_line_fits_a_deepracer_track(deepracer_tracks, tmp_path):
    track = min(deepracer_tracks, key=lambda t: track_shape(t).tightest_radius_m)
    line = racing_line(track, DEEPRACER_LIMITS, cache_dir=tmp_path)
    proj = track.project(line.xy_m)
    assert np.all(proj.distance_from_center_m <= proj.half_width_m - 0.5 * DEEPRACER_LIMITS.axle_track_m - line.margin_m + 5e-3)
    assert line.lap_time_s < line.centerline.lap_time_s


def test_unknown_profile_is_a_one_line_error():
    with pytest.raises(ConfigError, match="did you mean 'deepracer'"):
        generate_track(0, profile="deepracr")


def test_tracks_benchmark_prints_real_tracks_next_to_the_generator():
    rows = reference_rows(with_optimal=False)
    table = format_tracks(rows, [generator_distribution("deepracer", 3)])
    assert "generator profile 'deepracer' over 3 seeds" in table and "tightest_radius_m" in table
    for path in real_track_paths():
        assert path.stem in table


@pytest.mark.parametrize("seed", [0, 1])
def test_tracked_lap_on_a_technical_generated_track_is_within_3_percent(seed, tmp_path):
    from control.sim.line_tracking import drive_line

    track = generate_track(seed, profile="deepracer")
    line = racing_line(track, DEEPRACER_LIMITS, cache_dir=tmp_path)
    tracked = drive_line(line, track)
    assert tracked.lap_time_s == pytest.approx(line.lap_time_s, rel=0.03)
    assert tracked.max_line_error_m < 0.15  # it stays on the line, even where the line uses all the grip
