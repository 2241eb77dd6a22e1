"""The one-line-per-iteration console output of ppo_train.py."""
from control.integration.callbacks.progress_line import format_iteration_line


def test_line_shows_the_racing_metrics():
    result = {
        "training_iteration": 5, "time_total_s": 31.4, "num_env_steps_sampled_lifetime": 20013.0,
        "env_runners": {"episode_return_mean": 61.23, "lap_progress_mean": 27.0, "lap_progress_max": 100.0,
                        "laps_completed": 1, "lap_time_s_mean": 19.0, "offtrack_rate": 0.72},
        "evaluation": {"env_runners": {"lap_progress_mean": 100.0}},
    }
    line = format_iteration_line(result)
    for part in ("iter    5", "31 s", "20,013 steps", "return 61.2", "progress 27.0% (max 100%)", "laps 1",
                 "lap 19.00 s", "off-track 72%", "eval progress 100.0%"):
        assert part in line


def test_missing_metrics_show_a_dash():
    line = format_iteration_line({"training_iteration": 1, "env_runners": {}})
    assert "progress -" in line and "lap -" in line and "eval" not in line
