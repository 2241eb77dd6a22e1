"""The private Ray instance of a training run, out of reach of a SIGTERM sent to our process group.

`timeout`, systemd, Slurm and Kubernetes stop a job by signalling its whole process group. Ray
starts its GCS and raylet (and the raylet its workers) in the driver's group, so that signal
killed them before the driver could save its final checkpoint. Here Ray's processes get a group
of their own; they still die with the driver, through the kernel's parent-death signal that Ray
sets on Linux (which is why this is done only where Ray reports that fate-sharing works). Ray on
Windows does the same thing for the same reason (CREATE_NEW_PROCESS_GROUP in ConsolePopen).
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_processes_in_their_own_group() -> Iterator[bool]:
    """While active, processes Ray starts for a local node run in a new process group; yields whether it applies."""
    try:
        import ray._private.services as services
        import ray._private.utils as ray_utils

        applies = sys.platform.startswith("linux") and ray_utils.detect_fate_sharing_support()
        original = services.ConsolePopen
    except (ImportError, AttributeError) as exc:  # a Ray without these internals: keep its default
        logger.warning("Ray's process start-up changed (%s): a SIGTERM to the process group also stops Ray", exc)
        yield False
        return
    if not applies:
        yield False
        return

    class OwnGroupPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("process_group", 0)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnGroupPopen
    try:
        yield True
    finally:
        services.ConsolePopen = original


def start_private_ray(*, log_to_driver: bool, **init_kwargs: Any) -> None:
    """ray.init() of a local instance for this run, its processes in their own process group."""
    import ray

    with ray_processes_in_their_own_group():
        # address="local": a new instance even when another cluster runs on this machine (ray.init() would join it).
        ray.init(address="local", include_dashboard=False, log_to_driver=log_to_driver, **init_kwargs)
