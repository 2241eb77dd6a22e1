"""The race-type benchmarks: the env bench's race rows and cost lines (no timing asserted), and `train --race`."""
import pytest

from control.bench import cli, env_bench, lap_quality
from control.bench.env_bench import VectorBenchResult
from control.bench.lap_quality import TrackRollout
from control.bench.training_runs import VLIDAR_CONFIG
from control.env.vector_env import RacingVectorEnv


def _row(name: str, n: int, steps_per_s: float) -> VectorBenchResult:
    """A fabricated vector-env row of `steps_per_s` (wall and CPU alike)."""
    return VectorBenchResult(name, n, int(steps_per_s), 1.0, 1.0)


def test_race_rows_are_the_time_trial_env_with_the_race_objects_and_the_builtin_reward():
    configs = env_bench.race_vector_configs("speedway")
    time_trial = env_bench.vector_env_configs("speedway")["vlidar 32 rays"]
    assert list(configs) == ["vlidar 32 rays, 6 obstacles", "vlidar 32 rays, 3 bots"]
    for race, config in configs.values():
        assert {k: v for k, v in config.items() if k != "race"} == time_trial  # same track, observation, reward
        assert config["race"]["type"] == race and "reward" not in config
    env = RacingVectorEnv(configs["vlidar 32 rays, 6 obstacles"][1], num_envs=2)
    bots = RacingVectorEnv(configs["vlidar 32 rays, 3 bots"][1], num_envs=2)
    try:
        env.reset(seed=0)
        bots.reset(seed=0)
        assert env.race.race_objects.num_objects == 6 and bots.race.race_objects.num_objects == 3
        assert bots.race.race_objects.config.lane_changes and bots.race.race_objects.config.bot_speed_mps == 1.0
    finally:
        env.close()
        bots.close()


def test_race_cost_lines_compare_each_race_with_the_time_trial_of_the_same_n():
    time_trial = [_row("vlidar 32 rays", 16, 40_000), _row("vlidar 32 rays", 64, 100_000)]
    races = {"object_avoidance": [_row("boxes", 16, 32_000), _row("boxes", 64, 75_000)],
             "head_to_bot": [_row("bots", 16, 20_000), _row("bots", 64, 90_000)]}
    costs = env_bench.race_costs(time_trial, races)
    assert [(c.race, c.num_envs) for c in costs] == [("object_avoidance", 16), ("object_avoidance", 64), ("head_to_bot", 16),
                                                      ("head_to_bot", 64)]
    assert [c.cost_fraction for c in costs] == pytest.approx([0.20, 0.25, 0.50, 0.10])
    lines = env_bench.format_race_costs(costs).splitlines()
    assert lines == [
        "object_avoidance (6 obstacles): objects cost 20 % at N=16 (cpu 20 %), 25 % at N=64 (cpu 25 %) of time-trial throughput "
        "(limit 30 %): met",
        # One N over the limit is enough for NOT met.
        "head_to_bot (3 bots): objects cost 50 % at N=16 (cpu 50 %), 10 % at N=64 (cpu 10 %) of time-trial throughput "
        "(limit 30 %): NOT met",
    ]
    assert costs[0].as_dict()["met"] and not costs[2].as_dict()["met"]
    assert lines[0] in env_bench.format_vector_table(time_trial + races["object_avoidance"], None, costs)


# --------------------------------------------------------------------------- train --race
def _rollout(race: str, episodes: int, laps: int, crash_free: int, best_lap_s: float | None, overtaking: int | None = None) -> dict:
    """A fabricated TrackRollout.as_dict() of `episodes` one-lap episodes."""
    lap_times = [] if best_lap_s is None else [best_lap_s + 0.5 * k for k in range(laps)]
    return TrackRollout("speedway", episodes, laps, lap_times, 19.4, 80.0, race_type=race, crash_free_laps=crash_free,
                        overtaking_laps=overtaking).as_dict()


def _race_result(race: str, with_objects: dict, time_trial: dict | None = None) -> dict:
    out = {"machine": "test machine", "config": "resources/configs/x.yaml", "race": race, "minutes": 15.0, "episodes": 10,
           "training_min": 15.0, "iterations": 40, "env_steps": 160_000, "with_objects": with_objects}
    if time_trial is not None:
        out["time_trial"] = time_trial
    return out


def test_race_flag_parses_and_rejects_unknown_race_types(capsys):
    args = cli.build_parser().parse_args(["train", "--race", "head_to_bot", "--minutes", "2", "--episodes", "7"])
    assert (args.race, args.minutes, args.episodes) == ("head_to_bot", 2.0, 7)
    assert cli.build_parser().parse_args(["train"]).race is None
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--race", "drag_race"])
    assert "invalid choice: 'drag_race'" in capsys.readouterr().err


def test_race_of_a_config_without_that_race_is_a_one_line_error_before_any_training(capsys):
    assert cli.main(["train", "--race", "head_to_bot", "--config", str(VLIDAR_CONFIG), "--minutes", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--race head_to_bot" in err and "race type 'time_trial'" in err


def test_shipped_race_configs_train_their_race_type():
    for race, config in lap_quality.RACE_CONFIGS.items():
        assert lap_quality._config_race_type(config) == race


def test_object_avoidance_targets_met_and_not_met():
    met = _race_result("object_avoidance", _rollout("object_avoidance", 10, 10, 9, 16.9),
                       _rollout("time_trial", 10, 10, 10, 14.13))
    text = lap_quality.format_race(met)
    assert "crash-free laps: 9/10 = 90 % (target >= 90 %): met" in text
    assert "best lap with the boxes 16.90 s vs the same policy's time-trial lap 14.13 s = 1.196x (target <= 1.20x): met" in text
    assert "time trial (same policy)" in text
    missed = _race_result("object_avoidance", _rollout("object_avoidance", 10, 9, 8, 17.0), _rollout("time_trial", 10, 10, 10, 14.13))
    lines = lap_quality.format_race(missed).splitlines()
    assert lines[-2] == "crash-free laps: 8/10 = 80 % (target >= 90 %): NOT met"
    assert lines[-1].endswith("= 1.203x (target <= 1.20x): NOT met")
    no_lap = _race_result("object_avoidance", _rollout("object_avoidance", 10, 0, 0, None), _rollout("time_trial", 10, 10, 10, 14.13))
    assert lap_quality.format_race(no_lap).splitlines()[-1].endswith("no lap to compare: NOT met")


def test_head_to_bot_targets_count_crash_free_laps_and_laps_with_every_bot_overtaken():
    out = _race_result("head_to_bot", _rollout("head_to_bot", 10, 9, 8, 20.0, overtaking=7))
    text = lap_quality.format_race(out)
    assert "laps with no crash: 8/10 = 80 % (target >= 80 %): met" in text
    assert "laps with no crash and every bot overtaken: 7/10 = 70 % (target >= 80 %): NOT met" in text
    assert "time trial" not in text  # no time-trial comparison in head-to-bot
    assert out["with_objects"]["overtaking_lap_rate"] == pytest.approx(0.7)


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_tiny_object_avoidance_policy_is_rolled_out_with_and_without_its_boxes(ray_session, tmp_path, capsys):
    """One tiny real training (~25 s): the rollouts run through roll_out, with the boxes and as a time trial."""
    out = lap_quality.run_race("object_avoidance", lap_quality.RACE_CONFIGS["object_avoidance"], tmp_path, minutes=0.01, episodes=2,
                               seed=0, overrides=["train_batch_size=128", "minibatch_size=64", "num_epochs=1",
                                                  "env_config.max_episode_steps=100"])
    assert out["iterations"] >= 1 and out["env_steps"] >= 128
    objects, alone = out["with_objects"], out["time_trial"]
    assert (objects["race_type"], alone["race_type"]) == ("object_avoidance", "time_trial")
    assert objects["episodes"] == alone["episodes"] == 2
    assert objects["crash_free_laps"] <= objects["laps_completed"] and objects["overtaking_laps"] is None
    text = capsys.readouterr().out
    assert "crash-free laps: " in text and "(target <= 1.20x)" in text
