"""Stack `aliyun-l20-fp8` (Pulumi.aliyun-l20-fp8.yaml) under mocks: one 2x L20 node serving the 72B in fp8,
and its outputs against hand-computed figures."""

import json

import pytest

from tests.harness import contract_outputs, fixture, run_stack, step_env

HOURLY_USD = 3.90  # a test figure for one gn8is-2x.8xlarge, the downloader and the NAS


@pytest.fixture(scope="module")
def run():
    mp = pytest.MonkeyPatch()
    try:
        yield run_stack("aliyun-l20-fp8", mp, cost={"hourlyUsd": HOURLY_USD})
    finally:
        mp.undo()


def test_one_gpu_node_and_the_downloader(run):
    names = sorted(r.inputs["instanceName"] for r in run.of_type("alicloud:ecs/instance:Instance"))
    assert names == ["qwen-l20-fp8-downloader", "qwen-l20-fp8-gpu-0"]
    cmds = run.commands()
    assert not [n for n in cmds if n.startswith("ray-worker-")]  # no second node, no network hop per token
    # One GPU node: vLLM's mp executor on its 2 GPUs, no Ray.
    assert "ray-head" not in cmds and "ray-gpus" not in cmds
    assert step_env(cmds["ray-qwen-l20-fp8-gpu-0-node-ready"].inputs["create"])["EXPECTED_GPUS"] == "2"
    assert step_env(cmds["vllm-serve"].inputs["create"])["EXECUTOR"] == "mp"


def test_vllm_serves_fp8_with_tensor_parallel_2(run):
    env = step_env(run.commands()["vllm-serve"].inputs["create"])
    assert (env["TP"], env["PP"], env["GPU_MEMORY_UTILIZATION"], env["MAX_MODEL_LEN"]) == ("2", "1", "0.95", "32768")
    assert env["EXTRA_ARGS"].splitlines() == ["--quantization", "fp8"]


def test_outputs_by_hand(run):
    o = run.outputs
    assert list(o) == contract_outputs(ssh_key_generated=True, priced=True)  # the hourly price is set: every output
    seed = json.loads(fixture("bench/aliyun-l20-fp8/seed-10k-in-800-out-c1.json"))
    # 800 tokens in 49.4320354 s (4.30 s prefill + 799 steps of 56.48 ms) = 16.18383693 tok/s
    assert o["tokensPerSecond"] == seed["output_throughput"] == 16.18383693
    assert abs(800 / seed["duration"] - 16.18383693) < 1e-6
    # fp8 TP 2 on 2x L20 (README hand checks): prefill 3.49 s + decode 35.20 s -> 800 / 38.69 s = 20.68 tok/s
    assert o["rooflineTokensPerSecond"] == 20.68
    # 16.18383693 / 20.68 = 0.78259
    assert o["efficiency"] == 0.783
    # 3.90 USD/h / (16.18383693 tok/s x 3,600 s/h) x 1e6 = 3.9e6 / 58,261.81 = 66.939 USD per million tokens
    assert o["costPerMillionTokens"] == 66.94


def test_every_scenario_has_the_documented_metrics(run):
    benchmark = run.outputs["benchmark"]
    assert list(benchmark) == ["seed-10k-in-800-out-c1", *(f"sweep-256-in-256-out-c{c}" for c in (1, 8, 32, 64, 128, 192))]
    c64 = benchmark["sweep-256-in-256-out-c64"]
    # 256 prompts of 256 + 256 tokens in 97.7735 s: 670.28 output and 1,340.57 total tokens/s
    assert c64["completed"] == 256 and c64["max_concurrency"] == 64
    assert round(c64["output_throughput"], 2) == round(256 * 256 / c64["duration"], 2) == 670.28
    assert round(c64["total_token_throughput"], 2) == round(256 * 512 / c64["duration"], 2) == 1340.57
    assert (c64["mean_ttft_ms"], c64["p99_ttft_ms"]) == (1704.8873, 3660.0441)
    assert ((c64["mean_tpot_ms"], c64["p99_tpot_ms"], c64["mean_itl_ms"], c64["p99_itl_ms"])
            == (88.0339, 92.1106, 88.0339, 331.448))
