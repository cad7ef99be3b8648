"""Tool output parsers on fixtures in the tools' real formats."""

import json

import pytest

from components.parsers import BENCHMARK_METRICS, parse_benchmark_result, parse_nvidia_smi_csv, parse_ray_status
from tests.harness import fixture


def test_nvidia_smi_csv():
    gpus = parse_nvidia_smi_csv(fixture("nvidia_smi_a100.csv"))
    assert [g["name"] for g in gpus] == ["NVIDIA A100 80GB PCIe"] * 2
    assert gpus[1] == {"index": 1, "name": "NVIDIA A100 80GB PCIe", "memoryMiB": 81920, "driver": "570.172.08"}


def test_nvidia_smi_rejects_other_output():
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi_csv("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


def test_ray_status_single_node_new_format():
    assert parse_ray_status(fixture("ray_status_1node.txt")) == {"CPU": 96.0, "GPU": 2.0}


def test_ray_status_two_nodes_with_placement_groups():
    totals = parse_ray_status(fixture("ray_status_2nodes.txt"))
    assert totals["GPU"] == 4.0 and totals["CPU"] == 64.0


def test_ray_status_without_usage():
    with pytest.raises(ValueError, match="no resource usage found"):
        parse_ray_status("ConnectionError: Could not find any running Ray instance.")


def test_benchmark_result():
    raw = json.loads(fixture("vllm_bench_seed.json"))
    metrics = parse_benchmark_result(fixture("vllm_bench_seed.json"))
    assert metrics["output_throughput"] == raw["output_throughput"]
    assert metrics["total_output_tokens"] == 800 and metrics["completed"] == 1
    assert set(metrics) <= set(BENCHMARK_METRICS)
    assert "date" not in metrics


def test_benchmark_result_rejects_logs():
    with pytest.raises(ValueError, match="not the result JSON"):
        parse_benchmark_result("INFO 11-21 21:48:11 [__init__.py:216] Automatically detected platform cuda.")
