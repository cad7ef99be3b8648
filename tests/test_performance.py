"""The new outputs' helpers against hand-computed numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.catalog import ACCELERATORS, GPU_SIZES, MACHINES
from stacks.performance import (
    SUMMARY_METRICS,
    SWEEP_SCENARIOS,
    cost_per_million_tokens,
    efficiency,
    performance_outputs,
    scenario_summary,
    seed_roofline_tokens_per_second,
    weight_dtype,
)

SEED_RESULT = json.loads((Path(__file__).parent / "fixtures" / "vllm_bench_seed.json").read_text())


def test_seed_rooflines_of_the_stacks():
    assert seed_roofline_tokens_per_second("Qwen/Qwen2.5-14B-Instruct", GPU_SIZES["Standard_NC48ads_A100_v4"], 2, 1) == 119.37
    assert seed_roofline_tokens_per_second("Qwen/Qwen2.5-72B-Instruct", GPU_SIZES["ecs.gn8is-2x.8xlarge"], 2, 2) == 10.80
    assert seed_roofline_tokens_per_second("Qwen/Qwen2.5-72B-Instruct", GPU_SIZES["ecs.gn8is-2x.8xlarge"], 2, 1, "fp8") == 20.68
    # Ascend serves float16: same bytes as bf16.
    assert seed_roofline_tokens_per_second("Qwen/Qwen2.5-14B-Instruct", MACHINES["atlas-300i-duo-x2"], 4, 1) == 26.21


def test_weight_dtype():
    assert weight_dtype(None, ACCELERATORS["A100 80GB PCIe"]) == "bf16"
    assert weight_dtype("fp8", ACCELERATORS["L20"]) == "fp8"
    assert weight_dtype(None, ACCELERATORS["Ascend 310P3"]) == "fp16"
    with pytest.raises(ValueError, match="gptq"):
        weight_dtype("gptq", ACCELERATORS["L20"])


def test_efficiency_and_cost_by_hand():
    # 64.45 / 119.37 = 0.53992
    assert efficiency(64.45, 119.37) == 0.54
    assert efficiency(10.0, 10.8) == 0.926
    # 3.60 USD/h / (64.45 tok/s x 3,600 s/h) x 1e6 = 15.516 USD per million tokens
    assert cost_per_million_tokens(3.60, 64.45) == 15.52
    # 1 USD/h at 1,000 tok/s: 3.6 M tokens an hour -> 0.28 USD per million
    assert cost_per_million_tokens(1.0, 1000.0) == 0.28
    assert cost_per_million_tokens(None, 64.45) is None
    with pytest.raises(ValueError, match="tokens/s must be positive"):
        cost_per_million_tokens(3.6, 0)
    with pytest.raises(ValueError, match="roofline must be positive"):
        efficiency(64.45, 0)


def test_performance_outputs_omit_cost_without_price():
    assert performance_outputs(64.45, 119.37, None) == {"rooflineTokensPerSecond": 119.37, "efficiency": 0.54}
    assert performance_outputs(64.45, 119.37, 3.60)["costPerMillionTokens"] == 15.52


def test_scenario_summary_keeps_the_named_metrics():
    summary = scenario_summary(SEED_RESULT)
    assert list(summary) == list(SUMMARY_METRICS)
    assert summary["output_throughput"] == 64.44921871 and summary["total_token_throughput"] == 870.06445262
    assert summary["p99_itl_ms"] == 17.81462 and summary["completed"] == 1 and summary["max_concurrency"] == 1
    assert "median_ttft_ms" not in summary and "duration" not in summary
    with pytest.raises(ValueError, match="output_throughput"):
        scenario_summary({"completed": 1, "total_token_throughput": 1.0})


def test_sweep_names():
    assert SWEEP_SCENARIOS == tuple(f"sweep-256-in-256-out-c{c}" for c in (1, 8, 32, 64, 128, 192))
