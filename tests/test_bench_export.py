"""The export benchmark: registered (not in the default run), measures both runtimes on the shipped vlidar network."""
from __future__ import annotations

import json

import pytest

from control.bench import cli
from control.bench.export_bench import LatencyResult, format_latency, run_export_benchmark


def test_export_is_registered_and_not_in_the_default_run():
    assert "export" in cli.BENCHMARKS and not cli.BENCHMARKS["export"].cheap
    assert "export" not in [b.name for b in cli.selected_benchmarks([])]
    assert [b.name for b in cli.selected_benchmarks(["export"])] == ["export"]


@pytest.mark.slow  # torch.export of a real network: ~12 s
@pytest.mark.timeout(300)
def test_the_vlidar_network_is_exported_and_timed_in_both_runtimes(capsys):
    report = run_export_benchmark(steps=30, seed=0, names=["vlidar MLP"])
    (row,) = report["results"]
    assert row["name"] == "vlidar MLP" and row["observation_shape"] == (34,) and row["steps"] == 30
    assert 0 < row["onnx_median_ms"] <= row["onnx_p90_ms"] and 0 < row["torch_median_ms"] <= row["torch_p90_ms"]
    assert row["speedup"] == pytest.approx(row["torch_median_ms"] / row["onnx_median_ms"])
    json.dumps(report)  # JSON-ready for --json
    out = capsys.readouterr().out
    assert "vlidar MLP" in out and "target: exported vlidar policy <= 0.2 ms" in out


def test_the_table_says_whether_the_vlidar_target_is_met():
    fast = LatencyResult("vlidar MLP", (34,), 10, 0.05, 0.06, 0.5, 0.6)
    slow = LatencyResult("vlidar MLP", (34,), 10, 0.35, 0.4, 0.5, 0.6)
    assert ": met (0.050 ms median)" in format_latency([fast])
    assert "NOT met" in format_latency([slow]) and "10.0x" in format_latency([fast])
