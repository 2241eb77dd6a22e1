"""`bench train --generalisation --camera [--appearance]`: the flags, the unseen looks, the unseen tracks, one tiny real run."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import control  # noqa: F401  (registers the env ids)
from control.bench import cli
from control.bench.lap_quality import (
    CAMERA_PROCEDURAL_CONFIG,
    evaluate_generalisation,
    format_generalisation,
    generalisation_tracks,
    unseen_observation,
)
from control.bench.training_runs import PROCEDURAL_CONFIG, train_config
from control.env.racing_env import RacingEnv
from control.errors import UserError
from control.sim.appearance import UNSEEN_MARGIN, AppearanceRandomization, CameraAppearance, unseen_appearance
from control.track.track import BUNDLED_TRACKS_DIR, bundled_track_names
from control.training.config_loader import load_config_file

TRAINING_LOOKS = load_config_file(CAMERA_PROCEDURAL_CONFIG)["env_config"]["observation"]["randomize"]
CARS = 400


def _draw(settings: dict, channels: int, seed: int = 0) -> CameraAppearance:
    """Looks of CARS cars drawn from `settings`, each car from its own seeded generator."""
    looks = CameraAppearance(settings, channels)
    looks.redraw(np.arange(CARS), [np.random.default_rng([seed, i]) for i in range(CARS)], CARS)
    return looks


# --------------------------------------------------------------------------- the flags
def test_generalisation_camera_and_appearance_flags_parse():
    args = cli.build_parser().parse_args(["train", "--generalisation", "--camera", "--appearance", "--minutes", "20"])
    assert (args.generalisation, args.camera, args.appearance, args.minutes) == (True, True, True, 20.0)
    plain = cli.build_parser().parse_args(["train"])
    assert (plain.generalisation, plain.camera, plain.appearance) == (False, False, False)


def test_appearance_of_a_policy_without_a_camera_is_refused_before_any_training(capsys):
    """--appearance implies --generalisation; on the vlidar config it is a one-line error, not minutes of training first."""
    assert cli.main(["train", "--appearance", "--config", str(PROCEDURAL_CONFIG), "--minutes", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--appearance needs a camera policy" in err and "'vlidar'" in err


# --------------------------------------------------------------------------- the unseen looks
@pytest.mark.parametrize("channels", [1, 3])
def test_unseen_looks_lie_outside_the_training_ranges(channels):
    training = AppearanceRandomization.model_validate(TRAINING_LOOKS).model_dump()
    unseen = _draw(unseen_appearance(TRAINING_LOOKS), channels)
    seen = _draw(training, channels)
    base = unseen.base_palette[None]
    jitter = 255.0 * training["color_jitter"]
    # Every class colour, every channel, beyond the largest shift training draws, and within the margin band.
    assert (np.abs(unseen.palettes - base) >= jitter).all()
    assert (np.abs(unseen.palettes - base) <= 255.0 * (training["color_jitter"] + UNSEEN_MARGIN) + 1e-3).all()
    assert (np.abs(seen.palettes - base) <= jitter + 1e-3).all()  # what training sees, for contrast
    assert ((unseen.palettes >= 0) & (unseen.palettes <= 255)).all()
    assert (np.abs(unseen.brightness) >= training["brightness"]).all()
    for key in ("contrast", "gamma"):
        factors, spread = getattr(unseen, key), training[key]
        assert ((factors <= 1 - spread) | (factors >= 1 + spread)).all() and (factors > 0).all()
        assert (factors < 1).any() and (factors > 1).any()  # both sides of training's range
    # Sensor noise and blur stay within training's ranges: the preset is about colours and lighting.
    assert unseen.noise_std.max() <= training["noise_std"] and unseen.blur.max() <= training["blur"]


def test_unseen_looks_are_seeded():
    a, b = _draw(unseen_appearance(TRAINING_LOOKS), 1, seed=5), _draw(unseen_appearance(TRAINING_LOOKS), 1, seed=5)
    np.testing.assert_array_equal(a.palettes, b.palettes)
    np.testing.assert_array_equal(a.contrast, b.contrast)
    assert not np.array_equal(a.palettes, _draw(unseen_appearance(TRAINING_LOOKS), 1, seed=6).palettes)


def test_a_training_without_randomisation_saw_only_the_rendered_looks():
    settings = unseen_appearance({"enabled": False})
    assert settings["enabled"] and settings["unseen"] and settings["color_jitter"] == 0.0
    looks = _draw(settings, 1)
    assert (np.abs(looks.palettes - looks.base_palette[None]) > 0).all()
    with pytest.raises(ValueError, match="color_jitter 0.49 leaves no unseen colours"):
        unseen_appearance({"enabled": True, "color_jitter": 0.49})


def test_unseen_observation_replaces_only_the_looks_and_refuses_a_lidar_policy():
    observation = {"type": "camera", "width_px": 32, "height_px": 24, "randomize": TRAINING_LOOKS}
    looks = unseen_observation(observation)
    assert {k: v for k, v in looks.items() if k != "randomize"} == {k: v for k, v in observation.items() if k != "randomize"}
    assert looks["randomize"]["unseen"] is True
    env = RacingEnv({"track": "oval", "observation": looks})  # the env takes the preset; rays and params untouched
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()
    with pytest.raises(UserError, match="needs a camera policy"):
        unseen_observation({"type": "vlidar"})


# --------------------------------------------------------------------------- the unseen tracks and the table
def test_generalisation_tracks_are_the_bundled_ones_and_the_shared_files(tmp_path):
    assert generalisation_tracks(tmp_path / "absent") == list(bundled_track_names())
    shutil.copy(BUNDLED_TRACKS_DIR / "oval.npy", tmp_path / "b_real.npy")
    shutil.copy(BUNDLED_TRACKS_DIR / "hairpins.npy", tmp_path / "a_real.npy")
    (tmp_path / "notes.txt").write_text("not a track")
    assert generalisation_tracks(tmp_path) == [*bundled_track_names(), str(tmp_path / "a_real.npy"), str(tmp_path / "b_real.npy")]


def test_generalisation_table_prints_the_90_percent_target_for_tracks_and_looks():
    def row(track: str, laps: int) -> dict:
        return {"track": track, "episodes": 10, "laps_completed": laps, "mean_completion_pct": 50.0, "best_lap_s": None,
                "reference_lap_s": 8.0}

    out = {"machine": "m", "config": "c", "training_min": 30.0, "iterations": 5, "env_steps": 100, "episodes": 10,
           "goal_rate": 0.9, "tracks": [row("oval", 10), row("hairpins", 9)], "lap_rate": 0.95,
           "unseen_tracks": [row("oval", 7), row("hairpins", 6)], "unseen_lap_rate": 0.65}
    lines = format_generalisation(out).splitlines()
    assert lines[4].split()[-1] == "7/10" and lines[5].split()[-1] == "6/10"  # unseen-looks column per track
    assert lines[-2] == "unseen tracks: 95 % of episodes lap; target >= 90 % -> met"
    assert lines[-1].endswith("65 % of episodes lap; target >= 90 % -> missed")


# --------------------------------------------------------------------------- one tiny real run
TINY = ["train_batch_size=128", "minibatch_size=64", "num_epochs=1", "num_envs_per_env_runner=2",
        "env_config.max_episode_steps=40", "env_config.procedural.pool_size=2"]


@pytest.mark.ray
@pytest.mark.slow  # a real (tiny) CNN training: ~20 s of CPU, longer on a busy machine
@pytest.mark.timeout(300)
def test_a_tiny_camera_policy_is_evaluated_on_unseen_tracks_and_under_unseen_looks(ray_session, tmp_path):
    run = train_config(CAMERA_PROCEDURAL_CONFIG, tmp_path, "generalisation", progress_pct=None, cap_s=120.0,
                       max_iterations=1, overrides=TINY, seed=0)
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(BUNDLED_TRACKS_DIR / "oval.npy", shared / "real_oval.npy")
    tracks = ["hairpins", *generalisation_tracks(shared)[len(bundled_track_names()):]]
    out = evaluate_generalisation(Path(run.checkpoint), 1, appearance=True, tracks=tracks)
    assert [r["track"] for r in out["tracks"]] == [r["track"] for r in out["unseen_tracks"]] == ["hairpins", "real_oval"]
    assert all(r["episodes"] == 1 and 0.0 <= r["mean_completion_pct"] <= 100.0 for r in out["tracks"] + out["unseen_tracks"])
    assert out["lap_rate"] == sum(r["laps_completed"] for r in out["tracks"]) / 2
    assert out["unseen_looks"]["randomize"]["unseen"] is True
