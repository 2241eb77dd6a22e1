"""Which CARLA server (host and ports) an env runner uses, so parallel runners never collide."""
from __future__ import annotations

from dataclasses import dataclass

from control.carla.config import WHERE, parse_endpoint
from control.errors import ConfigError


@dataclass(frozen=True)
class ServerEndpoint:
    """The address of one CARLA server: RPC port, streaming port and Traffic Manager port."""

    host: str
    rpc_port: int
    streaming_port: int
    tm_port: int
    slot: int  # index of the port block this server owns (-1 for an explicit attach endpoint)

    @property
    def ports(self) -> tuple[int, int, int]:
        """(rpc, streaming, traffic manager) TCP ports."""
        return self.rpc_port, self.streaming_port, self.tm_port


def runner_slot(cfg: dict, runner_index: int, is_evaluation: bool, vector_index: int = 0) -> int:
    """Port-block index: training runner k -> k, evaluation runner k -> offset + k (times envs per runner)."""
    if runner_index < 0:
        raise ConfigError(f"{WHERE}: env runner index must be >= 0, got {runner_index}")
    per_runner = cfg["envs_per_runner"]
    if not 0 <= vector_index < per_runner:
        raise ConfigError(
            f"{WHERE}.envs_per_runner is {per_runner} but sub-env {vector_index} asked for a server; "
            f"set envs_per_runner to num_envs_per_env_runner")
    if is_evaluation and runner_index >= cfg["evaluation_slot_offset"]:
        raise ConfigError(f"{WHERE}.evaluation_slot_offset ({cfg['evaluation_slot_offset']}) must exceed "
                          f"the evaluation runner index {runner_index}")
    if not is_evaluation and runner_index >= cfg["evaluation_slot_offset"]:
        raise ConfigError(f"{WHERE}.evaluation_slot_offset ({cfg['evaluation_slot_offset']}) must exceed "
                          f"the number of training env runners ({runner_index}+)")
    base = runner_index + (cfg["evaluation_slot_offset"] if is_evaluation else 0)
    return base * per_runner + vector_index


def derived_endpoint(cfg: dict, slot: int) -> ServerEndpoint:
    """Ports of port block `slot`: RPC = port + slot * port_stride, streaming = RPC + 1, TM = RPC + 2."""
    rpc = cfg["port"] + slot * cfg["port_stride"]
    if rpc + 2 > 65535:
        raise ConfigError(f"{WHERE}: slot {slot} needs ports {rpc}..{rpc + 2}, beyond 65535; "
                          f"lower port, port_stride or evaluation_slot_offset")
    return ServerEndpoint(cfg["host"], rpc, rpc + 1, rpc + 2, slot)


def endpoint_for_runner(cfg: dict, runner_index: int, is_evaluation: bool, vector_index: int = 0) -> ServerEndpoint:
    """The server an env runner uses: an explicit attach endpoint when listed, else derived ports on `host`."""
    slot = runner_slot(cfg, runner_index, is_evaluation, vector_index)
    key = "evaluation_endpoints" if is_evaluation else "endpoints"
    listed = cfg[key]
    if cfg["avoid_server_init"] and listed:
        index = runner_index * cfg["envs_per_runner"] + vector_index
        if index >= len(listed):
            kind = "evaluation" if is_evaluation else "training"
            raise ConfigError(f"{WHERE}.{key} lists {len(listed)} servers but {kind} env runner {runner_index} "
                              f"(sub-env {vector_index}) needs entry {index}; list one 'host:port' per runner "
                              f"(index 0 is the local runner)")
        host, rpc = parse_endpoint(listed[index], f"{WHERE}.{key}[{index}]")
        # Streaming is RPC+1 as the server defaults it; the Traffic Manager takes RPC+2 on the client side.
        return ServerEndpoint(host, rpc, rpc + 1, rpc + 2, -1)
    return derived_endpoint(cfg, slot)
