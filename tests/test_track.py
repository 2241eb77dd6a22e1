"""Track geometry against analytic cases, DeepRacer files and procedural generation."""
from pathlib import Path

import numpy as np
import pytest

from control.errors import TrackFileError
from control.track.generate import generate_track, polyline_self_intersects, validate_track
from control.track.track import Track, bundled_track_names

SHARED_TRACKS = Path(__file__).resolve().parents[2] / "shared" / "tracks"
R_M, WIDTH_M = 5.0, 1.0


@pytest.fixture(scope="module")
def circle() -> Track:
    theta = np.linspace(0, 2 * np.pi, 721)[:-1]
    return Track(np.c_[R_M * np.cos(theta), R_M * np.sin(theta)], WIDTH_M, name="circle")


def test_circle_length_and_borders(circle):
    assert circle.length_m == pytest.approx(2 * np.pi * R_M, rel=1e-4)
    assert circle.is_counter_clockwise
    assert np.allclose(np.hypot(*circle.inner_m.T), R_M - WIDTH_M / 2, atol=1e-3)
    assert np.allclose(np.hypot(*circle.outer_m.T), R_M + WIDTH_M / 2, atol=1e-3)
    assert np.allclose(circle.curvature_per_m(), 1 / R_M, rtol=1e-3)


def test_circle_projection(circle):
    angles = np.array([0.0, np.pi / 2, np.pi, 1.5 * np.pi])
    radii = np.array([R_M + 0.3, R_M - 0.2, R_M, R_M + 0.45])
    proj = circle.project(np.c_[radii * np.cos(angles), radii * np.sin(angles)])
    assert np.allclose(proj.s_m, angles * R_M, atol=2e-3)
    assert np.allclose(proj.distance_from_center_m, np.abs(radii - R_M), atol=1e-3)
    # Counter-clockwise: the circle's inside is on the left.
    assert list(proj.is_left_of_center[[0, 1, 3]]) == [False, True, False]
    assert np.allclose(np.cos(proj.heading_rad), np.cos(angles + np.pi / 2), atol=1e-2)
    assert list(circle.on_track(np.array([[R_M + 0.49, 0], [R_M + 0.51, 0], [0, R_M - 0.6]]))) == [True, False, False]


def test_circle_ray_distances(circle):
    # From the centerline at (R, 0): outward hits the outer border at w/2, inward the inner at w/2.
    d = circle.ray_distances(np.array([R_M, 0.0]), np.array([0.0, np.pi]), max_range_m=10.0)
    assert np.allclose(d, WIDTH_M / 2, atol=1e-3)
    # Along the tangent: chord to the outer circle, sqrt((R+w/2)^2 - R^2).
    d = circle.ray_distances(np.array([R_M, 0.0]), np.array([np.pi / 2]), max_range_m=10.0)
    assert d[0] == pytest.approx(np.sqrt((R_M + WIDTH_M / 2) ** 2 - R_M**2), abs=2e-3)
    assert circle.ray_distances(np.array([R_M, 0.0]), np.array([np.pi / 2]), max_range_m=1.0)[0] == 1.0


def test_local_projection_matches_global_for_a_car(circle):
    rng = np.random.default_rng(0)
    for name in bundled_track_names():
        track = Track.load(name)
        for i in rng.integers(track.num_waypoints, size=50):
            car = track.center_m[i] + rng.uniform(-0.3, 0.3, 2) + rng.normal(0, 0.03, (5, 2))
            a, b = track.project(car), track.project(car, local=True)
            assert np.allclose(a.distance_from_center_m, b.distance_from_center_m)


def test_npy_round_trip(tmp_path, circle):
    path = circle.to_npy(tmp_path / "c.npy")
    data = np.load(path)
    assert data.shape == (circle.num_waypoints + 1, 6) and np.allclose(data[0], data[-1])
    again = Track.from_npy(path)
    assert again.length_m == pytest.approx(circle.length_m)
    assert np.allclose(again.width_m, WIDTH_M, atol=1e-3)


@pytest.mark.parametrize(
    "content, message",
    [
        (np.zeros((10, 4)), "expected (N>=5, 6)"),
        (np.full((10, 6), np.nan), "non-finite"),
        (np.zeros((10, 6)), "coincide"),
    ],
)
def test_malformed_track_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    np.save(path, content)
    with pytest.raises(TrackFileError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        Track.from_npy(path)
    assert "\n" not in str(err.value)


def test_unreadable_and_unknown_tracks(tmp_path):
    junk = tmp_path / "junk.npy"
    junk.write_text("not numpy")
    with pytest.raises(TrackFileError, match="not a readable .npy"):
        Track.from_npy(junk)
    with pytest.raises(TrackFileError, match="did you mean 'oval'"):
        Track.load("ovall")


@pytest.mark.skipif(not SHARED_TRACKS.is_dir(), reason="../shared/tracks is absent (real DeepRacer files are not ours to ship)")
@pytest.mark.parametrize("name, length_m, width_m", [("Oval_track", 19.55, 0.71), ("reInvent2019_track", 23.12, 1.067)])
def test_real_deepracer_files(name, length_m, width_m):
    track = Track.from_npy(SHARED_TRACKS / f"{name}.npy")
    assert track.length_m == pytest.approx(length_m, abs=0.01)
    assert track.mean_width_m == pytest.approx(width_m, abs=0.01)
    # Zero-length segments (repeated points) must not produce NaNs anywhere.
    assert (track.segment_length_m == 0).any()
    assert np.all(np.isfinite(track.curvature_per_m()))
    proj = track.project(track.center_m)
    assert np.all(np.isfinite(proj.s_m)) and np.allclose(proj.distance_from_center_m, 0, atol=1e-9)


def test_bundled_tracks_are_valid_and_distinct():
    names = bundled_track_names()
    assert {"oval", "hairpins", "speedway"} <= set(names)
    tracks = {n: Track.load(n) for n in names}
    for track in tracks.values():
        assert validate_track(track) is None
    assert tracks["speedway"].length_m > tracks["hairpins"].length_m > tracks["oval"].length_m
    # The technical track turns much tighter than the oval.
    assert np.abs(tracks["hairpins"].curvature_per_m()).max() > 1.5 * np.abs(tracks["oval"].curvature_per_m()).max()


@pytest.mark.parametrize("seed", range(6))
def test_procedural_tracks_are_valid_and_reproducible(seed):
    track = generate_track(seed)
    assert validate_track(track) is None
    assert 15 <= track.length_m <= 80 and 0.6 <= track.mean_width_m <= 1.2
    assert not polyline_self_intersects(track.center_m)
    assert np.array_equal(track.center_m, generate_track(seed).center_m)
    assert not np.array_equal(track.center_m[:5], generate_track(seed + 100).center_m[:5])


def test_reversed_track_keeps_geometry(circle):
    rev = circle.reversed()
    assert rev.length_m == pytest.approx(circle.length_m)
    assert not rev.is_counter_clockwise
    point = np.array([[R_M - 0.2, 0.0]])
    assert circle.project(point).is_left_of_center[0] and not rev.project(point).is_left_of_center[0]
