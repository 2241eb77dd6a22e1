"""One-step control latency (env_config.builtin.control_latency_steps: 1): the car acts on the previous step's action."""
from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from control.env.racing_env import RacingEnv
from control.env.vector_env import RacingVectorEnv
from control.errors import ConfigError
from control.sim.base import Pose
from control.sim.builtin import BuiltinBatch, BuiltinSimulator, resolve_builtin_config
from control.track.track import Track

LATENCY = {"control_latency_steps": 1}


@pytest.fixture(scope="module")
def circle() -> Track:
    """A 10 m radius circle: room to drive anywhere, the simulator does not care where the borders are."""
    t = np.linspace(0.0, 2 * np.pi, 200, endpoint=False)
    return Track(np.c_[10 * np.cos(t), 10 * np.sin(t)], width_m=1.0, name="circle")


def _commands(steps: int, seed: int = 3) -> np.ndarray:
    """(steps, 2) random (steering_rad, speed_mps) commands within the car's limits."""
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-0.5, 0.5, steps), rng.uniform(0.5, 4.0, steps)]


def _pose(state) -> tuple[float, float, float, float]:
    return (state.x_m, state.y_m, state.yaw_rad, state.speed_mps)


def test_latency_is_off_by_default():
    assert resolve_builtin_config({})["control_latency_steps"] == 0


def test_with_latency_the_car_does_at_step_t_what_it_was_told_at_step_t_minus_1(circle):
    """Exactly one step of lag: the lagged car's trajectory is the plain car's fed (0, 0) first, bit for bit."""
    commands = _commands(40)
    lagged, plain = BuiltinSimulator(circle, LATENCY), BuiltinSimulator(circle)
    start = Pose(1.0, 2.0, 0.3)
    lagged.reset(start, speed_mps=1.5)
    plain.reset(start, speed_mps=1.5)
    shifted = np.vstack([[0.0, 0.0], commands[:-1]])
    for told, applied in zip(commands, shifted, strict=True):
        assert _pose(lagged.step(*told)) == _pose(plain.step(*applied))
        assert lagged.state.extra["steering_cmd_rad"] == plain.state.extra["steering_cmd_rad"]  # the command the car applied


def test_a_reset_clears_the_held_command(circle):
    """The first step of an episode applies the neutral command, not the last action of the episode before."""
    sim = BuiltinSimulator(circle, LATENCY)
    sim.reset(Pose(0.0, 0.0, 0.0))
    sim.step(0.4, 4.0)
    sim.step(0.4, 4.0)  # the held command is now (0.4, 4.0)
    state = sim.reset(Pose(5.0, 1.0, 1.0))
    after = sim.step(0.2, 3.0)
    assert (after.x_m, after.y_m, after.speed_mps) == (5.0, 1.0, 0.0)  # at rest, told (0, 0): it stays
    assert state.steering_rad == 0.0 and after.steering_rad == 0.0
    assert sim.step(0.2, 3.0).speed_mps > 0.0  # now the first action arrives


def test_a_batch_holds_each_cars_command_and_resets_only_its_own(circle):
    batch = BuiltinBatch(3, LATENCY)
    idx = np.arange(3)
    batch.reset_cars(idx, np.zeros(3), np.array([0.0, 2.0, 4.0]), np.zeros(3), [circle] * 3)
    batch.step(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0]))
    batch.reset_cars(np.array([1]), [0.0], [2.0], [0.0], [circle])  # car 1 starts again: its held command goes
    batch.step(np.zeros(3), np.zeros(3))
    np.testing.assert_array_equal(batch.steering_cmd_rad, [0.1, 0.0, 0.3])
    np.testing.assert_array_equal(batch.speed_cmd_mps, [1.0, 0.0, 3.0])


def test_a_non_finite_command_is_refused_before_it_is_held(circle):
    sim = BuiltinSimulator(circle, LATENCY)
    sim.reset(Pose(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="commands must be finite"):
        sim.step(math.nan, 1.0)
    assert sim.step(0.0, 1.0).speed_mps == 0.0  # the refused command was not held: (0, 0) still arrives first


def test_control_latency_steps_accepts_only_0_or_1():
    with pytest.raises(ConfigError, match="control_latency_steps must be 0 or 1"):
        resolve_builtin_config({"control_latency_steps": 2})


def test_env_params_report_this_steps_action_while_the_car_applies_the_previous_one():
    """RacingEnv with latency: steering_angle is the action taken now (as DeepRacer reports it), the motion lags."""
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}, "builtin": LATENCY})
    _, info = env.reset(seed=0)
    p0 = info["params"]
    replay = BuiltinSimulator(env.track)
    replay.reset(Pose(p0["x"], p0["y"], math.radians(p0["heading"])))
    held = (0.0, 0.0)
    actions = np.random.default_rng(1).uniform(-1, 1, (30, 2)).astype(np.float32)
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        state = replay.step(*held)
        held = (math.radians(info["steering_deg"]), info["speed_cmd_mps"])
        assert info["params"]["steering_angle"] == pytest.approx(info["steering_deg"])
        assert (info["params"]["x"], info["params"]["y"]) == pytest.approx((state.x_m, state.y_m), abs=1e-9)
        if terminated or truncated:
            break
    env.close()


def test_vector_env_with_latency_equals_n_single_envs_through_autoresets():
    """NEXT_STEP autoreset keeps working: a resetting car's held command is cleared like a single env's reset."""
    config = {"track": "hairpins", "max_episode_steps": 25, "builtin": LATENCY}
    n, seed = 3, 7
    venv = RacingVectorEnv(config, num_envs=n)
    singles = [RacingEnv(config) for _ in range(n)]
    vobs, _ = venv.reset(seed=seed)
    for i, env in enumerate(singles):
        np.testing.assert_allclose(vobs[i], env.reset(seed=seed + i)[0], atol=1e-6)
    venv.action_space.seed(seed)
    pending_reset, resets = [False] * n, 0
    for _ in range(80):
        actions = venv.action_space.sample()
        vobs, vrew, vterm, vtrunc, _ = venv.step(actions)
        for i, env in enumerate(singles):
            if pending_reset[i]:
                obs, _ = env.reset()
                reward, terminated, truncated = 0.0, False, False
                resets += 1
            else:
                obs, reward, terminated, truncated, _ = env.step(actions[i])
            np.testing.assert_allclose(vobs[i], obs, atol=1e-6)
            assert vrew[i] == pytest.approx(reward, abs=1e-12)
            assert (vterm[i], vtrunc[i]) == (terminated, truncated)
            pending_reset[i] = terminated or truncated
    assert resets >= n  # every car went through at least one autoreset
    venv.close()


def test_check_env_with_latency_on():
    check_env(RacingEnv({"track": "oval", "builtin": LATENCY}), skip_render_check=True)
