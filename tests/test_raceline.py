"""Minimum-time racing line: analytic circle, stadium apexes, inside the margin everywhere, drivable in the simulator."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from control.errors import ConfigError
from control.sim.base import DEEPRACER_LIMITS
from control.sim.line_tracking import drive_line
from control.sim.raceline import racing_line
from control.track.track import Track, bundled_track_names

SHARED_TRACKS = Path(__file__).resolve().parents[2] / "shared" / "tracks"
CAR = DEEPRACER_LIMITS
KEEP_M = 0.5 * CAR.axle_track_m  # the car's half-width; the margin comes on top


def circle_track(radius_m: float, width_m: float, n: int = 300) -> Track:
    """A counter-clockwise circle of constant width."""
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return Track(np.c_[radius_m * np.cos(a), radius_m * np.sin(a)], width_m=width_m, name="circle")


def stadium_track(straight_m: float, radius_m: float, width_m: float, spacing_m: float = 0.05) -> Track:
    """Two straights joined by two half circles, counter-clockwise."""
    n_s, n_a = int(round(straight_m / spacing_m)), int(round(np.pi * radius_m / spacing_m))
    xs = np.linspace(0.0, straight_m, n_s, endpoint=False)
    a = np.linspace(-np.pi / 2, np.pi / 2, n_a, endpoint=False)
    parts = [np.c_[xs, np.full(n_s, -radius_m)], np.c_[straight_m + radius_m * np.cos(a), radius_m * np.sin(a)],
             np.c_[straight_m - xs, np.full(n_s, radius_m)], np.c_[-radius_m * np.cos(a), -radius_m * np.sin(a)]]
    return Track(np.vstack(parts), width_m=width_m, name="stadium")


def real_tracks() -> list[Path]:
    return sorted(SHARED_TRACKS.glob("*.npy")) if SHARED_TRACKS.is_dir() else []


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("raceline_cache")


@pytest.mark.parametrize("margin_m", [0.0, 0.05])
def test_circle_line_is_the_inner_border_less_the_margin_at_the_analytic_lap_time(margin_m, cache_dir):
    track = circle_track(radius_m=1.5, width_m=1.0)
    line = racing_line(track, CAR, margin_m=margin_m, cache_dir=cache_dir)
    r_m = 1.5 - 0.5 + KEEP_M + margin_m  # the inner border, less the car's half-width and the margin
    np.testing.assert_allclose(np.hypot(*line.xy_m.T), r_m, atol=2e-3)
    v_mps = min(CAR.max_speed_mps, math.sqrt(CAR.friction_mu * CAR.gravity_mps2 * r_m))
    assert line.lap_time_s == pytest.approx(2 * math.pi * r_m / v_mps, rel=2e-3)
    assert line.lap_time_s < line.centerline.lap_time_s


def test_stadium_line_swings_wide_with_apexes_at_the_inner_border(cache_dir):
    track = stadium_track(straight_m=6.0, radius_m=1.2, width_m=1.0)
    line = racing_line(track, CAR, cache_dir=cache_dir)
    keep = KEEP_M + line.margin_m
    # The corner centres are (0, 0) and (6, 0); the inner border is 0.7 m from them.
    for corner, centre_x in ((line.xy_m[:, 0] < 0.0, 0.0), (line.xy_m[:, 0] > 6.0, 6.0)):
        r = np.hypot(line.xy_m[corner, 0] - centre_x, line.xy_m[corner, 1])
        assert r.min() == pytest.approx(0.7 + keep, abs=0.01)  # apex at the inner border less the margin
    # Between the apexes the line runs on the outer half (counter-clockwise: the right, fraction < 0.5):
    # a wider corner. In this grip-limited model a 180-degree turn is quickest on a radius between the
    # borders (its time grows as sqrt(radius)), so the line does not go all the way out.
    on_straights = (line.xy_m[:, 0] > 1.0) & (line.xy_m[:, 0] < 5.0)
    assert np.all(line.lateral_fraction[on_straights] < 0.45)
    usable = 1.0 - 2 * keep / 1.0
    assert np.ptp(line.lateral_fraction) > 0.5 * usable
    assert line.lap_time_s < 0.9 * line.centerline.lap_time_s


def _assert_inside_margin(track: Track, line) -> None:
    keep = KEEP_M + line.margin_m
    points = np.vstack([line.xy_m, 0.5 * (line.xy_m + np.roll(line.xy_m, -1, axis=0))])  # points and segment midpoints
    proj = track.project(points)
    slack_m = proj.half_width_m - proj.distance_from_center_m - keep
    assert slack_m.min() > -5e-3, f"{track.name}: the line comes {-slack_m.min():.3f} m inside the margin"


@pytest.mark.parametrize("name", bundled_track_names())
def test_bundled_track_line_stays_inside_the_margin_and_is_drivable(name, cache_dir):
    track = Track.load(name)
    line = racing_line(track, CAR, cache_dir=cache_dir)
    _assert_inside_margin(track, line)
    assert line.lap_time_s < line.centerline.lap_time_s
    assert line.standing_start_lap_time_s > line.lap_time_s
    flying = drive_line(line, track)
    assert flying.lap_time_s == pytest.approx(line.lap_time_s, rel=0.03)
    assert flying.wheels_off_track_steps == 0
    standing = drive_line(line, track, standing_start=True)
    assert standing.lap_time_s == pytest.approx(line.standing_start_lap_time_s, rel=0.03)


@pytest.mark.skipif(not real_tracks(), reason="../shared/tracks is absent")
@pytest.mark.parametrize("path", real_tracks(), ids=lambda p: p.stem)
def test_real_deepracer_track_line_stays_inside_the_margin(path, cache_dir):
    track = Track.load(str(path))
    line = racing_line(track, CAR, cache_dir=cache_dir)
    _assert_inside_margin(track, line)
    assert drive_line(line, track).lap_time_s == pytest.approx(line.lap_time_s, rel=0.03)


def test_line_is_cached_per_track_and_limits(tmp_path):
    track = circle_track(radius_m=1.5, width_m=1.0)
    first = racing_line(track, CAR, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = racing_line(track, CAR, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.xy_m, again.xy_m)
    racing_line(track, dataclasses.replace(CAR, friction_mu=0.9), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # other limits: another line


def test_too_narrow_track_is_a_one_line_error(tmp_path):
    track = circle_track(radius_m=1.5, width_m=0.2)
    with pytest.raises(ConfigError, match="too narrow"):
        racing_line(track, CAR, cache_dir=tmp_path)


def test_cli_prints_the_three_laps_and_writes_the_community_format(tmp_path, capsys, monkeypatch):
    from control.sim.raceline_cli import main

    monkeypatch.setenv("RACELINE_CACHE_DIR", str(tmp_path / "cache"))
    track_file = circle_track(radius_m=1.5, width_m=1.0).to_npy(tmp_path / "circle.npy")
    assert main([str(track_file), "--out", str(tmp_path / "line.npy"), "--plot", str(tmp_path / "line.png")]) == 0
    out = capsys.readouterr().out
    for row in ("centerline", "optimal line", "tracked"):
        assert row in out
    xy, speed = np.load(tmp_path / "line.npy"), np.load(tmp_path / "line_speed.npy")
    assert xy.shape[1] == 2 and len(speed) == len(xy)
    np.testing.assert_array_equal(xy[0], xy[-1])  # closed like DeepRacer files
    assert Track.load(str(track_file)).on_track(xy).all()
    assert (tmp_path / "line.png").stat().st_size > 10_000
    assert main([str(track_file), "--out", str(tmp_path / "line3.npy"), "--with-speed"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "line3.npy"), np.c_[xy, speed])


def test_cli_unknown_track_is_one_line_exit_2(capsys):
    from control.sim.raceline_cli import main

    assert main(["no_such_track"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
