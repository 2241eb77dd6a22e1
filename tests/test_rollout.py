"""Rollouts of a really trained checkpoint: video, metrics, plots, other tracks, continuous evaluation, bad input."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from control.env.racing_env import RacingEnv
from control.rollout import analyze
from control.rollout.cli import main
from control.rollout.episodes import run_episodes
from control.rollout.metrics import build_report
from control.track.track import Track

REPO = Path(__file__).resolve().parents[1]
VLIDAR = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
TINY = ["--set", "train_batch_size=128", "--set", "minibatch_size=64", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1",  # one env per runner: step counts are exact
        "--set", "env_config.max_episode_steps=50", "--stop_iteration", "1", "--state_log", "-v", "0"]
EPISODE_FIELDS = {"episode", "track", "status", "steps", "completion_pct", "lap_completed", "lap_time_s",
                  "off_track_count", "crash_count", "reset_count", "mean_speed_mps", "max_speed_mps", "total_reward"}
AGGREGATE_FIELDS = {"episodes", "laps_completed", "best_lap_time_s", "mean_lap_time_s", "reference_lap_time_s"}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory):
    """(results_dir, run name): one tiny training iteration on the oval, with the state log."""
    from control.training.cli import main as train_main

    results_dir = tmp_path_factory.mktemp("results")
    assert train_main([VLIDAR, "-n", "tiny", "--results_dir", str(results_dir), *TINY]) == 0
    return results_dir, "tiny"


def rollout(trained, *args: str) -> int:
    results_dir, name = trained
    return main(["-n", name, "--results_dir", str(results_dir), "--no_progress", *args])


def one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err
    return err


# ------------------------------------------------------------------------------ a real checkpoint
def test_two_episodes_write_decodable_video_consistent_metrics_and_plots(trained, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "out"
    assert rollout(trained, "--episodes", "2", "--max_episode_steps", "40", "--seed", "3", "--out", str(out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["episodes"]) == 2 and report["track"] == "oval" and report["deterministic"]
    for episode in report["episodes"]:
        assert EPISODE_FIELDS <= set(episode)
        assert 0.0 <= episode["completion_pct"] <= 100.0
        assert (episode["lap_time_s"] is not None) == episode["lap_completed"] == (episode["status"] == "lap_complete")
        assert 1 <= episode["steps"] <= 40
        assert episode["max_speed_mps"] >= episode["mean_speed_mps"] >= 0.0
        assert episode["off_track_count"] == (episode["status"] == "off_track")
        # The video: one frame at reset and one per step, at the env's 15 Hz, 800x480.
        video = out / f"episode_{episode['episode']:03d}.mp4"
        frames = iio.imread(video)
        assert frames.shape == (episode["steps"] + 1, 480, 800, 3)
        assert frames.std() > 10  # a picture, not a blank frame
    aggregate = report["aggregate"]
    assert AGGREGATE_FIELDS <= set(aggregate)
    assert aggregate["episodes"] == 2
    assert aggregate["laps_completed"] == sum(e["lap_completed"] for e in report["episodes"])
    assert aggregate["reference_lap_time_s"] > 0
    for name in ("trajectories.png", "reward_heatmap.png", "speed_steering.png"):
        from PIL import Image

        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300


def test_rollout_on_a_track_file_it_was_not_trained_on(trained, tmp_path):
    track_file = Track.load("hairpins").to_npy(tmp_path / "my_track.npy")
    out = tmp_path / "out"
    assert rollout(trained, "--track", str(track_file), "--episodes", "1", "--max_episode_steps", "30",
                   "--no_video", "--out", str(out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["track"] == "my_track" and report["episodes"][0]["track"] == "my_track"
    assert report["videos"] == [] and not list(out.glob("*.mp4"))
    # The reference lap time is the new track's, not the training track's.
    from control.sim.lap_time import reference_for_env_config

    expected = reference_for_env_config(Track.load("hairpins")).lap_time_s
    assert report["aggregate"]["reference_lap_time_s"] == pytest.approx(expected)
    assert expected > reference_for_env_config(Track.load("oval")).lap_time_s


def test_same_seed_gives_the_same_deterministic_rollout(trained, tmp_path):
    reports = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        assert rollout(trained, "--episodes", "1", "--max_episode_steps", "30", "--seed", "7", "--no_video",
                       "--out", str(out)) == 0
        reports.append(json.loads((out / "metrics.json").read_text())["episodes"])
    assert reports[0] == reports[1]


def test_a_run_folder_as_checkpoint_uses_its_latest_and_writes_inside_the_run(trained, capsys):
    results_dir, name = trained
    assert main(["--checkpoint", str(results_dir / name), "--episodes", "1", "--max_episode_steps", "10",
                 "--no_video", "--no_progress"]) == 0
    (written,) = (results_dir / name / "rollouts").glob("*_oval/metrics.json")
    report = json.loads(written.read_text())
    assert report["run"] == name and "/checkpoint_" in report["checkpoint"]
    assert report["aggregate"]["episodes"] == 1
    assert "laps completed" in capsys.readouterr().out


# ------------------------------------------------------------------------------ bad input
def test_missing_checkpoint_is_a_one_line_error(capsys, tmp_path):
    assert main(["--checkpoint", str(tmp_path / "nope"), "--no_progress"]) == 2
    one_line_error(capsys, "does not exist", "checkpoint")


def test_folder_that_is_not_a_checkpoint_is_a_one_line_error(capsys, tmp_path):
    assert main(["--checkpoint", str(tmp_path), "--no_progress"]) == 2
    one_line_error(capsys, "is not a checkpoint", "algorithm_state")


def test_unknown_run_name_is_a_one_line_error(trained, capsys):
    results_dir, _ = trained
    assert main(["-n", "tinny", "--results_dir", str(results_dir), "--no_progress"]) == 2
    one_line_error(capsys, "no run named 'tinny'", "did you mean 'tiny'")


def test_unknown_track_is_a_one_line_error(trained, capsys):
    assert rollout(trained, "--track", "ovall") == 2
    one_line_error(capsys, "unknown track 'ovall'", "did you mean 'oval'")


def test_checkpoint_whose_spaces_do_not_fit_the_env_is_a_one_line_error(trained, capsys, tmp_path):
    results_dir, name = trained
    copy = tmp_path / "results"
    shutil.copytree(results_dir / name, copy / "other")
    config_path = copy / "other" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["env_config"]["observation"]["num_rays"] = 16  # the policy was trained on 32 rays
    config_path.write_text(yaml.safe_dump(config))
    assert main(["-n", "other", "--results_dir", str(copy), "--no_progress"]) == 2
    one_line_error(capsys, "expects observation space Box(34,)", "has Box(18,)")


def test_entry_point_runs_as_a_script(trained, tmp_path):
    results_dir, name = trained
    proc = subprocess.run(
        [sys.executable, str(REPO / "ppo_inference_ray.py"), "-n", name, "--results_dir", str(results_dir),
         "--episodes", "1", "--max_episode_steps", "10", "--no_video", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "o" / "metrics.json").is_file() and "laps completed" in proc.stdout
    bad = subprocess.run([sys.executable, str(REPO / "ppo_inference_ray.py"), "--checkpoint", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ analyze the state log
def test_analyze_turns_the_state_log_into_iteration_curves_heatmap_and_actions(trained, tmp_path):
    results_dir, name = trained
    out = tmp_path / "analysis"
    assert analyze.main(["-n", name, "--results_dir", str(results_dir), "--out", str(out)]) == 0
    for f in ("training_progress.png", "reward_heatmap.png", "action_distribution.png"):
        assert (out / f).stat().st_size > 1000
    import pandas as pd

    iterations = pd.read_csv(out / "iterations.csv")
    episodes = pd.read_csv(out / "episodes.csv")
    assert list(iterations["iteration"]) == [1]
    assert iterations["episodes"].iloc[0] == len(episodes) > 0
    assert episodes["progress"].between(0, 100).all()
    assert (episodes["lap_time_s"].notna() == (episodes["status"] == "lap_complete")).all()


def test_analyze_without_a_state_log_says_how_to_get_one(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    assert analyze.main(["-n", "run", "--results_dir", str(tmp_path)]) == 2
    one_line_error(capsys, "--state_log")


# ------------------------------------------------------------------------------ scripted drivers
class CenterlineDriver:
    """Steers onto the centerline (proportional on heading and offset); first straight for `straight_steps` or until put back."""

    def __init__(self, env: RacingEnv, speed_mps: float = 1.5, straight_steps: int = 0) -> None:
        self.env, self.speed_mps, self.straight_steps, self.calls = env, speed_mps, straight_steps, 0
        self.has_left_track = False

    def compute_action(self, obs) -> np.ndarray:
        self.calls += 1
        env, v = self.env, self.env.vehicle
        # At rest after the first call only when continuous evaluation just put the car back.
        self.has_left_track = self.has_left_track or (self.calls > 1 and v.speed_mps == 0.0)
        straight = self.calls <= self.straight_steps and not self.has_left_track
        proj = env.driving_track.project(np.array([[v.x_m, v.y_m]]))
        heading_error = math.remainder(float(proj.heading_rad[0]) - v.yaw_rad, math.tau)
        offset = float(proj.distance_from_center_m[0]) * (-1 if proj.is_left_of_center[0] else 1)
        steer_deg = 0.0 if straight else math.degrees(1.5 * heading_error + 1.0 * offset)
        lo, hi = env.action_type.config["speed_mps"]
        return np.array([np.clip(steer_deg / 30.0, -1, 1), 2 * (self.speed_mps - lo) / (hi - lo) - 1], np.float32)


def test_a_completed_lap_has_a_lap_time_and_the_reference_ratio():
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}, "max_episode_steps": 600})
    records = run_episodes(env, CenterlineDriver(env), 1, seed=0, progress_bar=False)
    report = build_report(records, 7.5, {})
    (episode,) = report["episodes"]
    assert episode["status"] == "lap_complete" and episode["completion_pct"] == 100.0
    assert episode["lap_time_s"] == pytest.approx(episode["steps"] / 15.0, abs=1e-6)
    assert episode["lap_time_vs_reference"] == pytest.approx(episode["lap_time_s"] / 7.5)
    assert report["aggregate"]["best_lap_time_s"] == report["aggregate"]["mean_lap_time_s"] == episode["lap_time_s"]


def test_continuous_evaluation_puts_the_car_back_and_adds_the_penalty():
    config = {"track": "oval", "start": {"mode": "fixed", "waypoint": 0}, "max_episode_steps": 900}
    # Straight for 8 s (12 m) from the start: the car leaves the oval in the first corner.
    env = RacingEnv(config)
    ended = run_episodes(env, CenterlineDriver(env, straight_steps=120), 1, seed=0, progress_bar=False)[0]
    assert ended.status == "off_track" and ended.off_track_count == 1 and not ended.lap_times_s
    env = RacingEnv(config)
    (record,) = run_episodes(env, CenterlineDriver(env, straight_steps=120), 1, seed=0, continuous=True,
                             reset_penalty_s=2.0, progress_bar=False)
    assert record.status == "lap_complete"
    assert record.reset_count == record.off_track_count == 1
    lap_steps = record.num_steps
    # The lap time is the driving time (the clock does not restart at the reset) plus one 2 s penalty.
    assert record.lap_times_s[0] == pytest.approx(lap_steps / 15.0 + 2.0, abs=1e-6)
    # The reset is the one big jump in position; right after it the car is on the track, at low speed.
    jumps_m = np.hypot(np.diff(record.steps["x_m"]), np.diff(record.steps["y_m"]))
    after = int(np.argmax(jumps_m)) + 1
    assert jumps_m.max() > 0.3 and record.steps["all_wheels_on_track"][after] == 1.0
    assert record.steps["speed_mps"][after] < 0.5


# ------------------------------------------------------------------------------ MLflow
def test_mlflow_uri_logs_video_metrics_and_plots_into_the_training_run(trained, tmp_path):
    from mlflow import MlflowClient

    from control.integration.mlflow_uri import prepare_local_store, resolve_tracking_uri

    results_dir, name = trained
    copy = tmp_path / "results"
    shutil.copytree(results_dir / name, copy / "run")
    store = tmp_path / "mlruns"
    target = resolve_tracking_uri(str(store))
    prepare_local_store(target)
    client = MlflowClient(tracking_uri=target.tracking_uri)
    experiment_id = client.create_experiment("train", artifact_location=target.artifact_location)
    run_id = client.create_run(experiment_id).info.run_id
    (copy / "run" / "mlflow_run_id").write_text(run_id + "\n")  # as the training callback leaves it
    out = tmp_path / "ro"
    assert main(["-n", "run", "--results_dir", str(copy), "--episodes", "1", "--max_episode_steps", "10",
                 "--out", str(out), "--mlflow_uri", str(store), "--no_progress"]) == 0
    logged = {a.path for a in client.list_artifacts(run_id, "rollouts/ro")}
    assert {"rollouts/ro/metrics.json", "rollouts/ro/episode_000.mp4", "rollouts/ro/trajectories.png"} <= logged
    assert "rollout/laps_completed" in client.get_run(run_id).data.metrics


def test_mean_std_filter_statistics_from_a_checkpoint_are_applied_without_updating(tmp_path):
    import pickle

    import gymnasium as gym
    from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter

    from control.rollout.inference import FILTER_STATE_FILE, ObservationFilter

    space = gym.spaces.Box(-100.0, 100.0, (3,), np.float32)
    connector = MeanStdFilter()
    connector.input_observation_space = space  # as the pipeline sets it (its constructor cannot take it here)
    seen = np.random.default_rng(0).normal([1.0, -2.0, 5.0], [0.5, 2.0, 3.0], size=(500, 3)).astype(np.float32)
    connector.get_state()  # builds the per-agent filters
    for obs in seen:
        connector._filters[None](obs, update=True)
    path = tmp_path / FILTER_STATE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(connector.get_state()))  # as RLlib saves the connector: its own state.pkl
    filt = ObservationFilter.from_checkpoint(tmp_path)
    obs = np.array([1.0, -2.0, 5.0], np.float32)
    expected = (obs - seen.mean(axis=0)) / seen.std(axis=0)
    np.testing.assert_allclose(filt(obs), expected, atol=0.02)
    np.testing.assert_allclose(filt(obs), expected, atol=0.02)  # applying does not move the statistics
    assert ObservationFilter.from_checkpoint(tmp_path / "none") is None
