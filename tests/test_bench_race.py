"""The race-type benchmarks: the env bench's race rows and cost lines (no timing asserted)."""
import pytest

from control.bench import env_bench
from control.bench.env_bench import VectorBenchResult
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
