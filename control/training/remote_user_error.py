"""A project error raised in an env runner process ends the run with that error's one line.

RLlib restarts a failed env runner (`restart_failed_env_runners`, on by default: right for a
lost node) and ignores its errors meanwhile, so a reward function that raises would be retried
forever, one minute per restart. A UserError is deterministic: retrying cannot fix it. The env
runner publishes its message in the cluster's key-value store (reachable from every node), and a
Tune callback on the driver raises it, which ends `Tuner.fit()`; the CLI prints it and exits 2.
"""
from __future__ import annotations

import time
from typing import Any

from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.tune import Callback

from control.errors import UserError
from control.training.error_cause import find_user_error, parse_user_error

KV_NAMESPACE = "racer"
_POLL_INTERVAL_S = 0.5  # how often the driver looks (one small GCS call)


def _kv_key() -> str:
    """One key per Ray job: the driver and every worker of this training share the job id."""
    import ray

    return f"user_error:{ray.get_runtime_context().get_job_id()}"


def publish_user_error(error: UserError) -> None:
    """Record the first project error of this job where the driver can read it."""
    from ray.experimental import internal_kv

    text = f"{type(error).__module__}.{type(error).__name__}: {error}"
    internal_kv._internal_kv_put(_kv_key(), text.encode(), overwrite=False, namespace=KV_NAMESPACE)


def published_user_error() -> UserError | None:
    """The project error an env runner of this job published, if any."""
    from ray.experimental import internal_kv

    value = internal_kv._internal_kv_get(_kv_key(), namespace=KV_NAMESPACE)
    if not value:
        return None
    text = value.decode(errors="replace")
    return parse_user_error(text) or UserError(text)


def clear_published_user_error() -> None:
    """Forget an error an earlier training of this job published (one driver may train several times)."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(_kv_key(), namespace=KV_NAMESPACE)


class UserErrorEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner that publishes a UserError before RLlib's restart handling."""

    def apply(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run `func` on this runner; a project error in it is published for the driver first."""
        try:
            return func(self, *args, **kwargs)
        except Exception as exc:
            found = find_user_error(exc)
            if found is not None:
                try:
                    publish_user_error(found)
                except Exception:  # the driver still gets RLlib's own handling below
                    pass
            # RLlib's own handling (log, wait, exit for a restart) with the same exception.
            return super().apply(_raise, exc)


def _raise(_runner: Any, exc: BaseException) -> None:
    raise exc


class UserErrorWatch(Callback):
    """Tune callback on the driver: ends the run with the project error an env runner published."""

    def __init__(self) -> None:
        self._next_check_s = 0.0

    def setup(self, **info: Any) -> None:
        """Start of Tune's run: only errors of this training count."""
        clear_published_user_error()

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Raise the published error (throttled: Tune calls this many times a second)."""
        now = time.monotonic()
        if now < self._next_check_s:
            return
        self._next_check_s = now + _POLL_INTERVAL_S
        found = published_user_error()
        if found is not None:
            raise found
