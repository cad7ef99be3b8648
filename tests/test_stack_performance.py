"""The benchmark's explanation outputs of stacks uksouth and aliyun-l20 under mocks, with realistic vLLM v0.11.0
results for every scenario (tests/fixtures/bench/<stack>/), against figures computed by hand; the layout advice
the program logs before any resource."""

import json

import pulumi
import pytest

from stacks.performance import SUMMARY_METRICS
from tests.harness import PreviewMocks, fixture, run_stack

SWEEP = [f"sweep-256-in-256-out-c{c}" for c in (1, 8, 32, 64, 128, 192)]


@pytest.fixture(scope="module")
def uksouth():
    mp = pytest.MonkeyPatch()
    try:
        yield run_stack("uksouth", mp, cost={"hourlyUsd": 2.20})
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def aliyun():
    mp = pytest.MonkeyPatch()
    try:
        yield run_stack("aliyun-l20", mp, cost={"hourlyUsd": 7.50})
    finally:
        mp.undo()


def test_uksouth_by_hand(uksouth):
    o = uksouth.outputs
    # 800 tokens in 12.4129 s = 64.4492 tok/s; the 14B bf16 TP 2 roofline on 2x A100: 800 / (0.50 + 6.20 s) = 119.37
    assert o["tokensPerSecond"] == 64.44921871 and o["rooflineTokensPerSecond"] == 119.37
    assert o["efficiency"] == 0.54  # 64.4492 / 119.37 = 0.53991
    assert o["costPerMillionTokens"] == 9.48  # 2.20e6 / (64.4492 x 3,600) = 9.4821


def test_aliyun_by_hand(aliyun):
    o = aliyun.outputs
    # 800 tokens in 97.3983 s (7.89 s prefill + 799 x 112.02 ms) = 8.2137 tok/s; 72B bf16 TP 2 x PP 2 on 4x L20: 10.80
    assert o["tokensPerSecond"] == 8.21369224 and o["rooflineTokensPerSecond"] == 10.8
    assert o["efficiency"] == 0.761  # 8.21369 / 10.80 = 0.76053
    assert o["costPerMillionTokens"] == 253.64  # 7.50e6 / (8.21369 x 3,600) = 253.6415


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_every_scenario_in_run_order_with_its_own_numbers(stack, request):
    run = request.getfixturevalue("uksouth" if stack == "uksouth" else "aliyun")
    benchmark = run.outputs["benchmark"]
    assert list(benchmark) == ["seed-10k-in-800-out-c1", *SWEEP]
    for name, entry in benchmark.items():
        saved = json.loads(fixture(f"bench/{stack}/{name}.json"))
        assert set(SUMMARY_METRICS) <= set(entry), name
        assert {k: entry[k] for k in SUMMARY_METRICS} == {k: saved[k] for k in SUMMARY_METRICS}, name
        # output and total tokens/s are the token totals over the run's duration
        assert entry["output_throughput"] == pytest.approx(saved["total_output_tokens"] / entry["duration"], rel=1e-6)
        assert entry["total_token_throughput"] == pytest.approx(
            (saved["total_input_tokens"] + saved["total_output_tokens"]) / entry["duration"], rel=1e-6)
        assert entry["completed"] == saved["num_prompts"], name


def test_the_sweep_by_hand(uksouth, aliyun):
    uk, ali = uksouth.outputs["benchmark"], aliyun.outputs["benchmark"]
    # uksouth at c192: 768 x 256 output tokens in 43.8187 s = 4,486.69 tok/s; 768 x 512 tokens: 8,973.37 tok/s
    c192 = uk["sweep-256-in-256-out-c192"]
    assert round(c192["output_throughput"], 2) == 4486.69 and round(c192["total_token_throughput"], 2) == 8973.37
    assert (c192["mean_ttft_ms"], c192["p99_ttft_ms"], c192["p99_itl_ms"]) == (655.1394, 1934.6601, 221.7715)
    # aliyun-l20 at c192: 192 x 512 tokens overflow the 59,143-token KV cache; 196,608 tokens in 284.1173 s = 692.0
    c192 = ali["sweep-256-in-256-out-c192"]
    assert round(c192["output_throughput"], 1) == 692.0 and c192["completed"] == 768
    assert c192["p99_ttft_ms"] > 10 * ali["sweep-256-in-256-out-c128"]["p99_ttft_ms"] / 4  # the queue shows in TTFT


def test_cost_output_absent_without_a_price(monkeypatch):
    outputs = run_stack("uksouth", monkeypatch).outputs
    assert "costPerMillionTokens" not in outputs and outputs["efficiency"] == 0.54


@pytest.mark.parametrize("stack, line", [
    ("uksouth", "  bf16, TP 2 x PP 1: 1 machine(s), 2 GPUs, 14.8 GB weights per GPU, 561,828 KV tokens, roofline "
                "119.4 tokens/s  <- this stack"),
    ("aliyun-l20", "  bf16, TP 2 x PP 2: 2 machine(s), 4 GPUs, 36.4 GB weights per GPU, 59,143 KV tokens, roofline "
                   "10.8 tokens/s  <- this stack"),
    ("aliyun-l20-fp8", "  fp8, TP 2 x PP 1: 1 machine(s), 2 GPUs, 37.6 GB weights per GPU, 36,616 KV tokens, roofline "
                       "20.7 tokens/s  <- this stack"),
])
def test_preview_logs_the_layouts_that_fit(stack, line, monkeypatch):
    logged = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: logged.append(message))
    run_stack(stack, monkeypatch, mocks=PreviewMocks(), preview=True)
    advice = next(m for m in logged if m.startswith("layouts of "))
    assert line in advice.splitlines()
    if stack == "aliyun-l20":  # the one-node fp8 layout is offered beside the stack's own
        assert ("  fp8, TP 2 x PP 1: 1 machine(s), 2 GPUs, 37.6 GB weights per GPU, 21,968 KV tokens, roofline "
                "20.7 tokens/s") in advice.splitlines()
