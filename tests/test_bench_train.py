"""The learning-speed benchmark's logic on a tiny budget: where it stops, what it reports, the lap-time ratio."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from control.bench import cli
from control.bench.lap_quality import QUALITY_LAPS, format_quality, lap_time_ratio, roll_out
from control.bench.noop_env import NoopEnv
from control.bench.train_bench import (
    env_share,
    first_iteration_reaching,
    format_time_to_lap,
    iteration_cost,
    iteration_split,
    per_iteration_timer,
    run_time_to_lap,
    timers_match_iterations,
)
from control.bench.training_runs import VLIDAR_CONFIG, read_results
from control.env.racing_env import RacingEnv
from control.errors import UserError
from control.sim.builtin import resolve_builtin_config
from control.sim.lap_time import reference_for_env_config
from control.track.track import Track

BATCH = 128
TINY = [f"train_batch_size={BATCH}", "minibatch_size=64", "num_epochs=1", "env_config.max_episode_steps=50"]

pytestmark = pytest.mark.timeout(300)


# --------------------------------------------------------------------------- pure logic
def test_lap_time_ratio_is_best_lap_over_reference():
    assert lap_time_ratio(11.0, 10.0) == pytest.approx(1.10)
    assert lap_time_ratio(9.5, 10.0) == pytest.approx(0.95)  # a better line than the centerline
    assert lap_time_ratio(None, 10.0) is None  # no lap driven: no ratio
    with pytest.raises(ValueError):
        lap_time_ratio(10.0, 0.0)
    with pytest.raises(ValueError):
        lap_time_ratio(float("nan"), 10.0)


def test_lap_time_ratio_against_the_circle_reference():
    """On a circle the reference is L / min(v_max, sqrt(mu g R)): a lap at that pace has ratio 1."""
    radius_m = 3.0
    angles = np.linspace(0.0, 2 * np.pi, 200, endpoint=False)
    track = Track(np.c_[radius_m * np.cos(angles), radius_m * np.sin(angles)], 1.0, name="circle")
    cfg = resolve_builtin_config({})
    reference_s = reference_for_env_config(track, {"builtin": cfg}).lap_time_s
    speed_mps = min(cfg["max_speed_mps"], np.sqrt(cfg["friction_mu"] * cfg["gravity_mps2"] * radius_m))
    lap_at_limit_s = track.length_m / speed_mps
    assert lap_time_ratio(lap_at_limit_s, reference_s) == pytest.approx(1.0, rel=1e-3)
    assert lap_time_ratio(1.2 * lap_at_limit_s, reference_s) == pytest.approx(1.2, rel=1e-3)


def test_quality_table_says_whether_the_goal_is_met():
    row = {"track": "oval", "training_min": 15.0, "lap_times_s": [8.4, 8.1], "best_lap_s": 8.1,
           "reference_lap_s": 7.54, "ratio": 8.1 / 7.54}
    out = {"machine": "m", "config": "c", "episodes": 1, "laps_per_episode": QUALITY_LAPS, "goal_ratio": 1.10,
           "tracks": [row, {**row, "track": "hairpins", "best_lap_s": 9.0, "ratio": 9.0 / 7.54},
                      {**row, "track": "speedway", "lap_times_s": [], "best_lap_s": None, "ratio": None}]}
    lines = format_quality(out).splitlines()
    assert lines[-3].split()[-2:] == ["1.074", "met"]
    assert lines[-2].split()[-2:] == ["1.194", "missed"]
    assert lines[-1].split()[-4:] == ["-", "7.54", "-", "-"]  # no lap: no ratio, no verdict


def test_first_iteration_reaching_skips_missing_and_lower_progress():
    rows = [{"training_iteration": 1, "env_runners": {}},
            {"training_iteration": 2, "env_runners": {"lap_progress_mean": 40.0}},
            {"training_iteration": 3, "env_runners": {"lap_progress_mean": 100.0}},
            {"training_iteration": 4, "env_runners": {"lap_progress_mean": 100.0}}]
    assert first_iteration_reaching(rows, 100.0)["training_iteration"] == 3
    assert first_iteration_reaching(rows, 30.0)["training_iteration"] == 2
    assert first_iteration_reaching(rows[:2], 100.0) is None


def _smoothed_rows(sampling_s: list[float], learner_s: list[float], steps: list[int]) -> list[dict]:
    """Result rows as RLlib writes them: timers as moving averages with its coefficient."""
    rows, smooth = [], {}
    for sample, learn, n in zip(sampling_s, learner_s, steps, strict=False):
        exact = {"env_runner_sampling_timer": sample, "learner_update_timer": learn, "training_iteration": sample + learn}
        for key, x in exact.items():
            smooth[key] = x if key not in smooth else 0.99 * smooth[key] + 0.01 * x
        rows.append({"time_this_iter_s": sample + learn + 0.001, "timers": dict(smooth),
                     "env_runners": {"num_env_steps_sampled": n}})
    return rows


def test_per_iteration_timer_undoes_rllibs_smoothing():
    rows = _smoothed_rows([6.0, 2.0, 3.0], [1.0, 1.0, 1.0], [100, 100, 300])
    assert per_iteration_timer(rows, "env_runner_sampling_timer") == pytest.approx([6.0, 2.0, 3.0])
    assert timers_match_iterations(rows)
    rows[2]["time_this_iter_s"] = 9.0  # a timer that no longer matches the iteration: the figures are refused
    assert not timers_match_iterations(rows)


def test_iteration_cost_leaves_out_the_warm_up_iteration():
    cost = iteration_cost(_smoothed_rows([6.0, 2.0, 3.0], [1.0, 1.0, 1.0], [100, 100, 300]))
    assert (cost.iterations, cost.env_steps) == (2, 400)
    assert cost.iteration_s == pytest.approx(7.002)
    assert cost.sample_steps_per_s == pytest.approx(400 / 5.0)
    assert cost.train_steps_per_s == pytest.approx(400 / 7.002)


def test_env_share_is_the_time_the_noop_env_does_not_spend():
    real = iteration_cost(_smoothed_rows([1.0, 4.0, 4.0], [1.0, 1.0, 1.0], [100, 100, 100]))
    noop = iteration_cost(_smoothed_rows([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [100, 100, 100]))
    share = env_share(real, noop)
    assert share.of_sampling == pytest.approx(0.75)  # 3 of every 4 sampling seconds are the env's
    assert share.of_training == pytest.approx(1 - 2.001 / 5.001)


def test_iteration_split_scales_per_call_timers_by_one_runners_vector_steps():
    rows = _smoothed_rows([2.0, 2.0], [1.0, 1.5], [800, 800])
    # The first iteration's calls were slow (warm-up); RLlib's moving averages still remember them.
    per_call = [{"env_step_timer": 0.05, "rlmodule_inference_timer": 0.02, "connectors": (0.004, 0.003), "learner": 0.5},
                {"env_step_timer": 0.01, "rlmodule_inference_timer": 0.004, "connectors": (0.001, 0.002), "learner": 0.25}]
    smooth: dict[str, float] = {}
    for row, calls in zip(rows, per_call, strict=True):
        row["config"] = {"num_envs_per_env_runner": 8, "num_env_runners": 2}  # 800 steps = 2 runners x 8 cars x 50
        values = {"env_step_timer": calls["env_step_timer"], "rlmodule_inference_timer": calls["rlmodule_inference_timer"],
                  "e2m": calls["connectors"][0], "m2e": calls["connectors"][1]}
        for key, x in values.items():
            smooth[key] = x if key not in smooth else 0.99 ** 50 * smooth[key] + (1 - 0.99 ** 50) * x
        smooth["learner"] = calls["learner"] if "learner" not in smooth else 0.99 * smooth["learner"] + 0.01 * calls["learner"]
        row["env_runners"].update({"env_step_timer": smooth["env_step_timer"],
                                   "rlmodule_inference_timer": smooth["rlmodule_inference_timer"],
                                   "env_to_module_connector": {"connector_pipeline_timer": smooth["e2m"]},
                                   "module_to_env_connector": {"connector_pipeline_timer": smooth["m2e"]}})
        row["learners"] = {"__all_modules__": {"learner_connector": {"connector_pipeline_timer": smooth["learner"]}}}
    split = iteration_split(rows)
    assert split.batch_steps == 50
    assert (split.env_step_s, split.inference_s, split.connectors_s) == pytest.approx((0.5, 0.2, 0.15))
    assert split.sampling_s == pytest.approx(2.0) and split.sampling_other_s == pytest.approx(2.0 - 0.85)
    assert split.learner_s == pytest.approx(1.5) and split.sgd_s == pytest.approx(1.25)
    del rows[-1]["env_runners"]["env_step_timer"]  # an RLlib without the timer: no split rather than a wrong one
    assert iteration_split(rows) is None


def test_noop_env_has_the_racing_spaces_and_only_truncates():
    config = {"observation": {"type": "vlidar", "num_rays": 16}, "max_episode_steps": 7}
    racing = RacingEnv(config)
    noop = NoopEnv({**config, "noop_of": "RacerVLidar-v0"})
    assert noop.observation_space == racing.observation_space
    assert noop.action_space == racing.action_space
    obs, _ = noop.reset(seed=1)
    assert noop.observation_space.contains(obs)
    ends = [noop.step(noop.action_space.sample())[2:4] for _ in range(7)]
    assert ends[:-1] == [(False, False)] * 6 and ends[-1] == (False, True)
    racing.close()


def test_unknown_flag_values_are_one_line_errors(capsys):
    assert cli.main(["train", "--episodes", "0"]) == 2
    assert "--episodes >= 1" in capsys.readouterr().err
    assert cli.main(["train", "--cap", "5 minutes"]) == 2
    assert "bad duration" in capsys.readouterr().err
    assert cli.main(["train", "--config", "/nonexistent.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["train", "--reward", "racing_line"]) == 2  # it only replaces the quality runs' reward
    assert "--reward goes with --quality" in capsys.readouterr().err


def test_make_bench_runs_env_time_to_lap_and_tracks_by_default():
    assert [b.name for b in cli.selected_benchmarks([])] == ["env", "train", "tracks"]
    assert [b.name for b in cli.selected_benchmarks(["train"])] == ["train"]
    with pytest.raises(UserError):
        cli.selected_benchmarks(["trian"])


# --------------------------------------------------------------------------- real tiny training
@pytest.fixture(scope="module")
def unreached_run(ray_session, tmp_path_factory):
    """Progress 100 is out of reach in 2 tiny iterations: the run stops at its iteration cap, then the no-op env."""
    folder = tmp_path_factory.mktemp("bench")
    out = run_time_to_lap(VLIDAR_CONFIG, folder, progress_pct=100.0, cap_s=240.0, max_iterations=2,
                          noop_iterations=2, overrides=TINY, seed=0, sync_iterations=2)
    return folder, out


def test_time_to_lap_reports_the_stopping_iteration_from_result_json(unreached_run):
    folder, out = unreached_run
    rows = read_results(folder / "time_to_lap")
    ttl = out["time_to_lap"]
    assert [r["training_iteration"] for r in rows] == [1, 2]
    assert ttl["reached"] is False
    assert ttl["iterations"] == 2
    assert ttl["env_steps"] == rows[-1]["num_env_steps_sampled_lifetime"] >= 2 * BATCH
    assert ttl["training_time_s"] == pytest.approx(rows[-1]["time_total_s"])
    assert ttl["wall_time_s"] > ttl["training_time_s"]  # start-up and the final checkpoint count for a user
    assert ttl["train_steps_per_s"] == pytest.approx(ttl["env_steps"] / ttl["training_time_s"])
    assert "NOT reached" in format_time_to_lap(out)


def test_env_share_compares_with_the_noop_env_of_the_same_config(unreached_run):
    folder, out = unreached_run
    noop_rows = read_results(folder / "noop_env")
    assert [r["training_iteration"] for r in noop_rows] == [1, 2]
    (params,) = (folder / "noop_env" / "train_1").glob("*/params.json")
    config = json.loads(params.read_text())
    assert config["env"] == "BenchNoop-v0" and config["train_batch_size"] == BATCH
    assert config["env_config"]["noop_of"] == "RacerVLidar-v0"
    (real_params,) = (folder / "time_to_lap" / "train_1").glob("*/params.json")
    real_env_config = json.loads(real_params.read_text())["env_config"]
    for key in ("observation", "action", "max_episode_steps"):  # what fixes the spaces and the episode length
        assert config["env_config"][key] == real_env_config[key]
    share = out["env_share"]
    assert share["noop_sample_steps_per_s"] > 0 and share["real_sample_steps_per_s"] > 0  # the timers were read
    assert share["env_share_of_sampling"] == pytest.approx(
        1 - share["real_sample_steps_per_s"] / share["noop_sample_steps_per_s"])
    assert "env share of sampling time ≈" in format_time_to_lap(out)


def test_time_to_lap_prints_where_an_iteration_goes(unreached_run):
    _, out = unreached_run
    split = out["iteration_split"]
    # Two tiny iterations make the recovered per-call times noisy: only their sign and presence are asserted.
    assert split["sampling_s"] > 0 and split["learner_s"] > 0
    assert min(split["env_step_s"], split["inference_s"], split["connectors_s"], split["learner_connector_s"]) >= 0
    text = format_time_to_lap(out)
    assert "env step (render incl.)" in text and "SGD: forward + backward" in text


def test_default_path_is_compared_with_the_one_car_per_env_path_in_the_same_run(unreached_run):
    folder, out = unreached_run
    (params,) = (folder / "sync_vectorize" / "train_1").glob("*/params.json")
    assert "sync" in str(json.loads(params.read_text())["gym_env_vectorize_mode"]).lower()
    (default_params,) = (folder / "time_to_lap" / "train_1").glob("*/params.json")
    assert "vector_entry_point" in str(json.loads(default_params.read_text())["gym_env_vectorize_mode"]).lower()
    v = out["vectorize_comparison"]
    assert v["sync_train_steps_per_s"] > 0 and v["speedup"] == pytest.approx(
        v["default_train_steps_per_s"] / v["sync_train_steps_per_s"])
    assert "one car per env (sync)" in format_time_to_lap(out)


def test_time_to_lap_stops_at_the_first_iteration_reaching_the_threshold(ray_session, tmp_path):
    """A threshold any finished episode passes: the run stops at the first iteration with one, not later."""
    out = run_time_to_lap(VLIDAR_CONFIG, tmp_path, progress_pct=0.01, cap_s=240.0, max_iterations=6,
                          noop_iterations=0, overrides=TINY, seed=0)
    rows = read_results(tmp_path / "time_to_lap")
    ttl = out["time_to_lap"]
    assert ttl["reached"] is True
    assert ttl["iterations"] == rows[-1]["training_iteration"] == len(rows)  # stopped right there
    assert all(r["env_runners"].get("lap_progress_mean", 0.0) < 0.01 for r in rows[:-1])
    assert ttl["lap_progress_mean_pct"] == pytest.approx(rows[-1]["env_runners"]["lap_progress_mean"])
    assert ttl["env_steps"] == rows[-1]["num_env_steps_sampled_lifetime"]
    assert "env_share" not in out


def test_roll_out_reports_laps_and_the_track_reference(unreached_run):
    _, out = unreached_run
    rollout = roll_out(Path(out["checkpoint"]), 1, track="hairpins", laps=QUALITY_LAPS)
    reference_s = reference_for_env_config(Track.load("hairpins")).lap_time_s
    assert rollout.track == "hairpins" and rollout.episodes == 1
    assert rollout.reference_lap_s == pytest.approx(reference_s)
    assert rollout.best_lap_s == (min(rollout.lap_times_s) if rollout.lap_times_s else None)
    assert 0.0 <= rollout.mean_completion_pct <= 100.0
    assert rollout.ratio == lap_time_ratio(rollout.best_lap_s, reference_s)


@pytest.mark.timeout(300)
def test_quality_runs_train_with_the_reward_the_bench_names(ray_session, tmp_path, capsys):
    """`--quality --reward racing_line`: the run's env_config holds that reward, and the table says so."""
    from control.bench.lap_quality import run_quality

    out = run_quality(VLIDAR_CONFIG, tmp_path, minutes=0.01, episodes=1, seed=0,
                      overrides=[*TINY, "env_config.max_episode_steps=60"], reward="racing_line")
    (params,) = (tmp_path / "quality_default" / "train_1").glob("*/params.json")
    assert json.loads(params.read_text())["env_config"]["reward"] == "racing_line"
    assert out["config"].endswith("with reward racing_line") and len(out["tracks"]) == 1
    assert "with reward racing_line" in capsys.readouterr().out


def test_camera_baseline_is_the_camera_path_before_issue_13():
    """`--camera` trains this baseline side by side: the overrides must still load and mean what they say."""
    from control.bench.train_bench import CAMERA_BASELINE_OVERRIDES
    from control.bench.training_runs import CAMERA_CONFIG
    from control.training.config_loader import load_ppo_config

    ppo, resolved = load_ppo_config(CAMERA_CONFIG, CAMERA_BASELINE_OVERRIDES)
    assert "sync" in str(ppo.gym_env_vectorize_mode).lower()
    assert (ppo.num_envs_per_env_runner, ppo.minibatch_size, ppo.num_epochs) == (8, 500, 6)
    assert ppo.model_config["conv_filters"] == [[16, [8, 8], 4], [32, [4, 4], 2], [32, [3, 3], 2]]
    assert resolved.torch_threads == 1
