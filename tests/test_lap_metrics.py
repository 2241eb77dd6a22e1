"""Rollout lap metrics against both references, like with like: standing-start laps vs standing-start references."""
from __future__ import annotations

import numpy as np
import pytest

from control.rollout.episodes import STEP_COLUMNS, EpisodeRecord
from control.rollout.metrics import build_report, format_table, lap_references
from control.sim.base import DEEPRACER_LIMITS
from control.sim.lap_time import lap_time_reference
from control.sim.raceline import racing_line
from control.track.track import Track


@pytest.fixture(scope="module")
def oval(tmp_path_factory):
    import os

    os.environ.setdefault("RACELINE_CACHE_DIR", str(tmp_path_factory.mktemp("raceline_cache")))
    track = Track.load("oval")
    return track, lap_references(track, DEEPRACER_LIMITS)


def _record(track: Track, lap_times_s: list[float], start_waypoint: int = 0) -> EpisodeRecord:
    n = 5
    steps = {c: np.zeros(n) for c in STEP_COLUMNS}
    steps["time_s"] = np.linspace(0.1, sum(lap_times_s), n)
    steps["speed_mps"] = np.full(n, 3.0)
    return EpisodeRecord(index=0, track_name=track.name, control_hz=15.0, steps=steps, status="lap_complete",
                         lap_times_s=lap_times_s, start_xy_m=tuple(track.center_m[start_waypoint]), track=track)


def test_first_lap_is_rated_against_standing_start_references_and_later_laps_against_flying(oval):
    track, refs = oval
    centerline = lap_time_reference(track, DEEPRACER_LIMITS)
    line = racing_line(track, DEEPRACER_LIMITS)
    report = build_report([_record(track, [8.6, 7.9])], refs, {})
    first, second = report["episodes"][0]["laps"]
    assert first["start"] == "standing" and second["start"] == "flying"
    assert first["centerline_s"] == pytest.approx(centerline.standing_start_lap_time_s, rel=1e-6)
    assert first["vs_centerline"] == pytest.approx(8.6 / centerline.standing_start_lap_time_s, rel=1e-6)
    assert second["vs_centerline"] == pytest.approx(7.9 / centerline.lap_time_s, rel=1e-6)
    # The optimal line starts at the line point nearest the start: its standing lap is the line's own, within a point.
    assert first["optimal_s"] == pytest.approx(line.standing_start_lap_time_s, rel=0.01)
    assert second["vs_optimal"] == pytest.approx(7.9 / line.lap_time_s, rel=1e-6)
    assert second["vs_optimal"] > second["vs_centerline"]  # the line is faster than the centerline
    aggregate = report["aggregate"]
    assert aggregate["best_vs_centerline"] == pytest.approx(min(first["vs_centerline"], second["vs_centerline"]))
    assert aggregate["best_standing_lap_s"] == 8.6 and aggregate["best_flying_lap_s"] == 7.9
    assert aggregate["reference_flying_lap_s"]["optimal"] == pytest.approx(line.lap_time_s)


def test_standing_start_reference_follows_the_episode_start_point(oval):
    track, refs = oval
    k = 60
    rolled = Track(np.roll(track.center_m, -k, axis=0), width_m=track.width_m[0])
    expected = lap_time_reference(rolled, DEEPRACER_LIMITS).standing_start_lap_time_s
    lap = build_report([_record(track, [9.0], start_waypoint=k)], refs, {})["episodes"][0]["laps"][0]
    assert lap["centerline_s"] == pytest.approx(expected, rel=1e-6)
    assert lap["centerline_s"] != pytest.approx(lap_time_reference(track, DEEPRACER_LIMITS).standing_start_lap_time_s, rel=1e-3)


def test_table_prints_the_standing_lap_against_the_standing_references(oval):
    track, refs = oval
    report = build_report([_record(track, [8.6])], refs, {})
    table = format_table(report)
    header, _, row = table.splitlines()[:3]
    assert "vs center" in header and "vs optimal" in header
    e = report["episodes"][0]
    assert f"{e['vs_centerline']:.3f}" in row and f"{e['vs_optimal']:.3f}" in row
    assert f"{8.6 / lap_time_reference(track, DEEPRACER_LIMITS).lap_time_s:.3f}" not in row  # not the flying reference
    assert "flying-lap references" in table


def test_a_bare_reference_number_still_works_for_older_callers(oval):
    track, _ = oval
    report = build_report([_record(track, [8.0])], 7.5, {})
    episode = report["episodes"][0]
    assert episode["lap_time_vs_reference"] == pytest.approx(8.0 / 7.5)
    assert report["aggregate"]["reference_lap_time_s"] == 7.5
