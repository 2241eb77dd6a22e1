"""The viewer's channel through Ray: a named actor holding a ViewerStore, found by name from any node.

Why a named Ray actor (and not files or the state log): env runners of a cluster run on other
nodes with no shared disk; a Ray actor is reachable from all of them, holds a bounded queue, and
a remote call is a fire-and-forget message for the caller. The actor takes no CPU slot, so it never
competes with env runners for Ray's scheduling.
"""
from __future__ import annotations

import os
import uuid
from typing import Any

NAMESPACE = "racing_viewer"


def channel_name(run_name: str) -> str:
    """A Ray actor name unique to this run and driver process (two trainings on one cluster never share one)."""
    return f"viewer_{run_name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def start_channel(name: str, max_snapshots: int | None = None) -> Any:
    """Create the named channel actor (on this node, no CPU slot); returns its handle."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from control.viewer.store import MAX_SNAPSHOTS, ViewerStore

    actor_cls = ray.remote(ViewerStore)
    # On the driver's node: the driver serves the page and reads the channel there.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return actor_cls.options(name=name, namespace=NAMESPACE, num_cpus=0, max_restarts=0,
                             scheduling_strategy=here).remote(max_snapshots or MAX_SNAPSHOTS)


def find_channel(name: str) -> Any | None:
    """The channel actor's handle, or None when it is not (or no longer) there."""
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None
