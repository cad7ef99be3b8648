"""What the benchmark measures: a cold prefix cache (no readiness probe), results in the real format
of `vllm bench serve` v0.11.0, and a failed scenario that leaves the service alone."""

from __future__ import annotations

import json
import re

import pytest

from components.parsers import BENCHMARK_METRICS, parse_benchmark_result
from components.remote import SCRIPTS_DIR
from tests.harness import FIXTURES, run_stack

# The keys of the file `vllm bench serve --save-result --label L` writes in v0.11.0, in its order, for
# the flags benchmark.sh passes (random dataset, no goodput, no ramp-up, no --metadata, no
# --save-detailed), read from vllm/benchmarks/serve.py of the v0.11.0 sdist: main_async sets date ..
# num_prompts (:1287-1293), request_rate, burstiness, max_concurrency (:1306-1309), then merges
# benchmark()'s result (:717-735; input_lens, output_lens, ttfts, itls, generated_texts and errors
# are deleted again without --save-detailed, :1318-1332) and its mean/median/std/pNN per metric
# of --percentile-metrics (:769-780). There is no `failed`.
V0_11_0_RESULT_KEYS = (
    "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
    "request_rate", "burstiness", "max_concurrency",
    "duration", "completed", "total_input_tokens", "total_output_tokens", "request_throughput",
    "request_goodput", "output_throughput", "total_token_throughput",
    "max_output_tokens_per_s", "max_concurrent_requests",
    *(f"{stat}_{metric}_ms" for metric in ("ttft", "tpot", "itl", "e2el")
      for stat in ("mean", "median", "std", "p50", "p90", "p99")),
)


@pytest.mark.parametrize("name", ["vllm_bench_seed.json", "vllm_bench_chat.json"])
def test_fixtures_have_exactly_the_keys_v0_11_0_saves(name):
    assert tuple(json.loads((FIXTURES / name).read_text())) == V0_11_0_RESULT_KEYS


def test_seed_fixture_matches_the_seed_scenarios_flags():
    result = json.loads((FIXTURES / "vllm_bench_seed.json").read_text())
    assert result["label"] == "seed-10k-in-800-out-c1" and result["request_rate"] == "inf"
    assert result["num_prompts"] == result["completed"] == result["max_concurrency"] == 1
    assert (result["total_input_tokens"], result["total_output_tokens"]) == (10000, 800)


def test_every_reported_metric_is_a_key_of_the_real_result():
    assert set(BENCHMARK_METRICS) <= set(V0_11_0_RESULT_KEYS)


def test_a_result_without_a_metric_is_refused():
    result = json.loads((FIXTURES / "vllm_bench_seed.json").read_text())
    del result["p99_itl_ms"]
    with pytest.raises(ValueError, match="has no p99_itl_ms"):
        parse_benchmark_result(json.dumps(result))


def test_the_completeness_check_reads_only_real_keys():
    text = (SCRIPTS_DIR / "benchmark.sh").read_text()
    filters = re.findall(r"jq (?:-e )?(?:--argjson \w+ \"\$\w+\" )?'([^']*)'", text)
    assert filters, "benchmark.sh checks its result with jq"
    used = {key for f in filters for key in re.findall(r"\.([a-z_]+)", f)}
    assert used and used <= set(V0_11_0_RESULT_KEYS), used - set(V0_11_0_RESULT_KEYS)


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_under_mocks_every_bench_command_skips_the_probe_and_nothing_waits_for_a_scenario(stack, monkeypatch):
    run = run_stack(stack, monkeypatch)
    bench = [c for name, c in run.commands().items() if name.startswith("bench-")]
    assert len(bench) == 7  # the seed scenario and the six sweep points
    for cmd in bench:
        assert "--ready-check-timeout-sec 0" in cmd.inputs["create"]
    # Nothing but a later scenario depends on a scenario: a failed one stops or changes nothing else.
    bench_urns = {c.urn for c in bench}
    for resource in run.resources:
        if resource.urn not in bench_urns:
            assert not bench_urns & set(resource.dependencies), resource.name
