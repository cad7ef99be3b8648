"""Benchmark alone, on pulumi mocks: scenarios strictly in sequence after the service, re-run on a
new run_id or service start, results parsed from stdout, the headline's throughput."""

from __future__ import annotations

import json
from itertools import pairwise

import pulumi_random
import pytest

from components.benchmark import Benchmark, BenchmarkArgs, Scenario
from components.remote import GpuHost
from tests.harness import fixture, run_pulumi, step_env
from tests.test_remote_step import required_env

COMPONENT = "qwen:serving:Benchmark"
# The mocks answer vllm_bench_seed.json for scenarios named seed-*, vllm_bench_chat.json otherwise.
SCENARIOS = [
    Scenario("chat-2k-in-128-out-c4", input_tokens=2000, output_tokens=128, num_prompts=40, concurrency=4, warmups=2),
    Scenario("seed-8k-in-512-out-c1", input_tokens=8000, output_tokens=512, num_prompts=3, concurrency=1, warmups=1),
    Scenario("batch-128-in-64-out-c96", input_tokens=128, output_tokens=64, num_prompts=500, concurrency=96, warmups=0),
]
HEADLINE = "seed-8k-in-512-out-c1"


def make_args(service_ready, service_fingerprint, **overrides) -> BenchmarkArgs:
    head = GpuHost(name="gpu-bench", public_ip="203.0.113.30", private_ip="10.50.0.4", user="ops", private_key="k",
                   gpu_count=2, instance_id="i-bench")
    values = dict(head=head, service_ready=service_ready, service_fingerprint=service_fingerprint, image="registry.example/v:2",
                  model_root="/srv/models", model_dir="/srv/models/m", served_name="org/M", port=8100,
                  scenarios=SCENARIOS, headline=HEADLINE, run_id="run-42", timeout_minutes=9)
    values.update(overrides)
    return BenchmarkArgs(**values)


@pytest.fixture(scope="module")
def run():
    def program():
        ready = pulumi_random.RandomId("service-ready", byte_length=4)
        start = pulumi_random.RandomId("service-start", byte_length=4)
        bench = Benchmark("bench", make_args(ready, start.hex))
        return {"results": bench.results, "tokens_per_second": bench.tokens_per_second,
                "start_id": start.hex, "step_urns": [s.urn for s in bench.steps]}

    return run_pulumi(program)


def steps(run):
    cmds = run.commands()
    return [cmds[f"bench-{s.name}"] for s in SCENARIOS]


def test_one_step_per_scenario_in_order(run):
    component = run.one(COMPONENT)
    assert set(run.commands()) == {f"bench-{s.name}" for s in SCENARIOS}
    ordered = steps(run)
    assert run.outputs["step_urns"] == [s.urn for s in ordered]
    for cmd in ordered:
        assert cmd.parent == component.urn


def test_scenarios_run_strictly_one_after_another(run):
    ordered = steps(run)
    ready, start = run.named("service-ready"), run.named("service-start")
    # besides the service start (its id is a trigger), each waits for exactly the one before it
    assert set(ordered[0].dependencies) == {ready.urn, start.urn}
    for earlier, later in pairwise(ordered):
        assert set(later.dependencies) == {earlier.urn, start.urn}, later.name
    assert run.depends_on(ordered[-1], ready)
    for i, cmd in enumerate(ordered):
        for after in ordered[i + 1:]:
            assert not run.depends_on(cmd, after)


def test_triggers_are_the_host_the_run_id_and_the_service_start(run):
    for cmd in steps(run):
        assert cmd.inputs["triggers"] == ["i-bench", "run-42", run.outputs["start_id"]], cmd.name


def test_scenario_env(run):
    for scenario, cmd in zip(SCENARIOS, steps(run), strict=True):
        env = step_env(cmd.inputs["create"])
        assert env["QWEN_STEP"] == f"benchmark-{scenario.name}" and env["QWEN_HOST"] == "gpu-bench"
        assert env["SCENARIO"] == scenario.name
        assert env["INPUT_LEN"] == str(scenario.input_tokens) and env["OUTPUT_LEN"] == str(scenario.output_tokens)
        assert env["NUM_PROMPTS"] == str(scenario.num_prompts) and env["CONCURRENCY"] == str(scenario.concurrency)
        assert env["WARMUPS"] == str(scenario.warmups) and env["RUN_ID"] == "run-42"
        assert env["PORT"] == "8100" and env["SERVED_NAME"] == "org/M" and env["BENCH_TIMEOUT"] == "540"
        assert env["MODEL_ROOT"] == "/srv/models" and env["MODEL_DIR"] == "/srv/models/m"
        assert env["IMAGE"] == "registry.example/v:2"
        assert required_env("benchmark.sh") <= set(env)


def test_results_are_parsed_by_scenario_name(run):
    seed = json.loads(fixture("vllm_bench_seed.json"))
    chat = json.loads(fixture("vllm_bench_chat.json"))
    assert seed["output_throughput"] != chat["output_throughput"]  # else the test below proves nothing
    results = run.outputs["results"]
    assert set(results) == {s.name for s in SCENARIOS}
    assert results[HEADLINE]["output_throughput"] == seed["output_throughput"]
    assert results[HEADLINE]["median_ttft_ms"] == seed["median_ttft_ms"]
    for name in ("chat-2k-in-128-out-c4", "batch-128-in-64-out-c96"):
        assert results[name]["output_throughput"] == chat["output_throughput"]
        assert results[name]["max_concurrency"] == chat["max_concurrency"]
    assert "label" not in results[HEADLINE] and "date" not in results[HEADLINE]  # metrics only


def test_tokens_per_second_is_the_headlines_output_throughput(run):
    seed = json.loads(fixture("vllm_bench_seed.json"))
    assert run.outputs["tokens_per_second"] == float(seed["output_throughput"])
    assert isinstance(run.outputs["tokens_per_second"], float)


def test_headline_must_be_a_scenario():
    def program():
        ready = pulumi_random.RandomId("r", byte_length=4)
        Benchmark("bench", make_args(ready, ready, headline="seed-not-there"))
        return {}

    with pytest.raises(ValueError, match="seed-not-there"):
        run_pulumi(program)
