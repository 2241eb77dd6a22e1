"""Types and ranges of the PPO settings a config may hold, checked before Ray starts.

RLlib's own `AlgorithmConfig.validate()` lets most nonsense through (a negative learning rate,
`num_epochs: 0`, `gamma: 2`, an unknown `batch_mode`) and hangs on `rollout_fragment_length: 0`,
so these rules run first; each failure is one line naming the setting and what would be right.

The rules are the fields of two models of the project's one schema mechanism
(control/config_schema.py): `PpoSettings` (top-level settings) and `ModelSettings` (the
`model_config` fields). A Rule is a field's check: what a right value is, in words, and the test
that accepts one. Which keys exist at all is RLlib's (hundreds of AlgorithmConfig names, checked
by the loader with a did-you-mean), so only the keys a model declares are handed to it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, create_model

from control.config_schema import Expect, Section, parse_section


@dataclass(frozen=True)
class Rule:
    """What a right value is, in words, and the test that accepts one."""

    expected: str
    accepts: Callable[[Any], bool]


def is_number(value: Any) -> bool:
    """A finite int or float; a bool is not a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: Any) -> bool:
    """An int; a bool is not a whole number."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """A number in [low, high], each end open when asked."""
    def accepts(v: Any) -> bool:
        return is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    if high == math.inf:
        text = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return Rule(text, accepts)


def _whole(low: int) -> Rule:
    return Rule(f"a whole number >= {low}", lambda v: is_whole(v) and v >= low)


def _or_null(rule: Rule) -> Rule:
    return Rule(f"{rule.expected} or null", lambda v: v is None or rule.accepts(v))


def _or_value(rule: Rule, word: str) -> Rule:
    return Rule(f"{rule.expected} or '{word}'", lambda v: v == word or rule.accepts(v))


def _one_of(*choices: str) -> Rule:
    return Rule(f"one of {', '.join(choices)}", lambda v: isinstance(v, str) and v in choices)


BOOL = Rule("true or false", lambda v: isinstance(v, bool))


def _is_schedule(value: Any, point_value: Rule) -> bool:
    """[[0, v0], [t1, v1], ...]: two or more points, timesteps from 0 and increasing (RLlib's Scheduler)."""
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        return False
    if not all(isinstance(p, (list, tuple)) and len(p) == 2 and is_number(p[0]) and point_value.accepts(p[1])
               for p in value):
        return False
    steps = [p[0] for p in value]
    return steps[0] == 0 and all(b > a for a, b in zip(steps, steps[1:], strict=False))


def _value_or_schedule(value_rule: Rule) -> Rule:
    return Rule(f"{value_rule.expected} or a schedule [[0, v0], [timestep, v], ...] with increasing timesteps",
                lambda v: value_rule.accepts(v) or _is_schedule(v, value_rule))


def _is_layer_sizes(value: Any) -> bool:
    return isinstance(value, list) and all(is_whole(n) and n > 0 for n in value)


def _is_pair_or_int(value: Any) -> bool:
    """A kernel or stride: a positive int, or [width, height] of positive ints."""
    if is_whole(value):
        return value > 0
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(is_whole(n) and n > 0 for n in value)


def _is_conv_filters(value: Any) -> bool:
    """RLlib's CNN spec: [[out_channels, kernel, stride(, padding)], ...]."""
    if value is None:
        return True
    if not isinstance(value, list) or not value:
        return False
    for layer in value:
        if not isinstance(layer, (list, tuple)) or len(layer) not in (3, 4):
            return False
        if not (is_whole(layer[0]) and layer[0] > 0 and _is_pair_or_int(layer[1]) and _is_pair_or_int(layer[2])):
            return False
        if len(layer) == 4 and layer[3] not in ("same", "valid"):
            return False
    return True


def _is_activation(value: Any) -> bool:
    """A name RLlib's own lookup turns into a torch activation (relu, tanh, elu, silu, linear, ...)."""
    from ray.rllib.models.utils import get_activation_fn

    if value is not None and not isinstance(value, str):
        return False
    try:
        get_activation_fn(value, framework="torch")
    except (ValueError, AttributeError):
        return False
    return True


LAYER_SIZES = Rule("a list of positive whole numbers such as [64, 64]", _is_layer_sizes)
ACTIVATION = Rule("an activation name such as relu, tanh, elu, silu or linear", _is_activation)
POSITIVE = _number(0, low_open=True)
NON_NEGATIVE = _number(0)

# Top-level settings (current RLlib names) -> rule. Covers every setting the shipped configs use.
SETTING_RULES: dict[str, Rule] = {
    "lr": _value_or_schedule(POSITIVE),
    "entropy_coeff": _value_or_schedule(NON_NEGATIVE),
    "gamma": _number(0, 1, low_open=True),
    "lambda_": _number(0, 1),
    "train_batch_size": _whole(1),
    "train_batch_size_per_learner": _or_null(_whole(1)),
    "minibatch_size": _or_null(_whole(1)),
    "num_epochs": _whole(1),
    "clip_param": POSITIVE,
    "vf_clip_param": POSITIVE,
    "vf_loss_coeff": NON_NEGATIVE,
    "kl_coeff": NON_NEGATIVE,
    "kl_target": POSITIVE,
    "grad_clip": _or_null(POSITIVE),
    "grad_clip_by": _one_of("value", "norm", "global_norm"),
    "use_kl_loss": BOOL,
    "use_gae": BOOL,
    "use_critic": BOOL,
    "shuffle_batch_per_epoch": BOOL,
    "num_env_runners": _whole(0),
    "num_envs_per_env_runner": _whole(1),
    "rollout_fragment_length": _or_value(_whole(1), "auto"),
    "batch_mode": _one_of("truncate_episodes", "complete_episodes"),
    "num_learners": _whole(0),
    "num_cpus_per_env_runner": NON_NEGATIVE,
    "num_gpus_per_env_runner": NON_NEGATIVE,
    "num_cpus_per_learner": _or_value(NON_NEGATIVE, "auto"),
    "num_gpus_per_learner": NON_NEGATIVE,
    "num_cpus_for_main_process": NON_NEGATIVE,
    "evaluation_interval": _or_null(_whole(0)),
    "evaluation_duration": _or_value(_whole(1), "auto"),
    "evaluation_duration_unit": _one_of("episodes", "timesteps"),
    "evaluation_num_env_runners": _whole(0),
    "seed": _or_null(Rule("a whole number", is_whole)),
}

# model_config fields (RLlib's DefaultModelConfig) -> rule.
MODEL_RULES: dict[str, Rule] = {
    "fcnet_hiddens": LAYER_SIZES,
    "head_fcnet_hiddens": LAYER_SIZES,
    "fcnet_activation": ACTIVATION,
    "head_fcnet_activation": ACTIVATION,
    "conv_activation": ACTIVATION,
    "conv_filters": Rule("null or a list of [out_channels, kernel, stride] layers such as "
                         "[[16, [8, 8], 4], [32, [4, 4], 2]] (kernel and stride: an int or [w, h])", _is_conv_filters),
    "vf_share_layers": BOOL,
    "use_lstm": BOOL,
    "lstm_cell_size": _whole(1),
    "max_seq_len": _whole(1),
}


def _field(rule: Rule) -> Any:
    """A model field checked by `rule` (absent: not checked, RLlib's default stands)."""
    def check(value: Any) -> Any:
        if not rule.accepts(value):
            raise ValueError(rule.expected)
        return value

    return (Annotated[Any, AfterValidator(check), Expect(rule.expected)], None)


class _Settings(Section):
    place_format: ClassVar[str] = "{where}: {path}"
    error_format: ClassVar[str] = "{place} must be {expected} (got {value!r})"


class _ModelFields(_Settings):
    place_format: ClassVar[str] = "{where}: model.{path}"


PpoSettings = create_model("PpoSettings", __base__=_Settings, __doc__="The PPO settings checked by type and range.",
                           **{key: _field(rule) for key, rule in SETTING_RULES.items()})
ModelSettings = create_model("ModelSettings", __base__=_ModelFields, __doc__="The model_config fields checked by type and range.",
                             **{key: _field(rule) for key, rule in MODEL_RULES.items()})


def check_settings(settings: Mapping[str, Any], model_config: Mapping[str, Any], where: str) -> None:
    """Raise ConfigError (one line) for the first setting whose type or range is wrong."""
    for model, given in ((PpoSettings, settings), (ModelSettings, model_config)):
        parse_section(model, {k: v for k, v in given.items() if k in model.model_fields}, where)
