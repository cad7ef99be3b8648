"""benchmark.sh against a served vLLM in the docker stand-in, whose `vllm bench serve` checks its
flags against vLLM v0.11.0, reads OPENAI_API_KEY through common.sh's key entrypoint and writes
v0.11.0's result keys."""

import json

import pytest

from tests.steps.conftest import IMAGE, assert_step_failed, nvidia_docker_env
from tests.steps.test_vllm import KEY, KEY_FILE, KEY_MOUNT, MODEL_DIR, MODEL_ROOT, head, start  # noqa: F401 (fixture)

ENV = {"IMAGE": IMAGE, "MODEL_DIR": MODEL_DIR, "MODEL_ROOT": MODEL_ROOT, "SERVED_NAME": "Qwen/Qwen2.5-14B-Instruct",
       "PORT": "8000", "SCENARIO": "seed-10k-in-800-out-c1", "INPUT_LEN": "10000", "OUTPUT_LEN": "800", "NUM_PROMPTS": "1",
       "CONCURRENCY": "1", "WARMUPS": "1", "RUN_ID": "3", "BENCH_TIMEOUT": "600", **nvidia_docker_env(2)}
# vLLM v0.11.0 benchmarks/serve.py: the keys of a saved result with --percentile-metrics ttft,tpot,itl,e2el
# --metric-percentiles 50,90,99 (no "failed": completed counts the successful requests).
V0110_KEYS = {"date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts", "request_rate",
              "burstiness", "max_concurrency", "duration", "completed", "total_input_tokens", "total_output_tokens",
              "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
              "max_output_tokens_per_s", "max_concurrent_requests",
              *(f"{s}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "std", "p50", "p90", "p99"))}


@pytest.fixture
def served(head):  # noqa: F811 (the fixture imported from test_vllm)
    assert start(head).returncode == 0
    return head


def bench_runs(box):
    return [c for c in box.calls("docker") if c[:1] == ["run"] and "bench" in c]


def bench(box, **changes):
    return box.run_step("benchmark-seed", "benchmark.sh", {**ENV, **changes}, host="vm-qwen-nc48")


def test_stdout_is_the_saved_result_after_a_warm_up(served):
    result = bench(served)
    assert result.returncode == 0, result.stderr
    saved = json.loads(served.read("/var/lib/qwen/benchmarks/seed-10k-in-800-out-c1-run-3.json"))
    assert json.loads(result.stdout) == saved
    assert set(saved) == V0110_KEYS
    assert saved["completed"] == 1 and saved["total_output_tokens"] == 800 and saved["label"] == "seed-10k-in-800-out-c1"
    runs = bench_runs(served)
    assert len(runs) == 2
    warm_up, measured = runs
    assert "--save-result" not in warm_up and warm_up[warm_up.index("--seed") + 1] == "1"
    for run in runs:  # no readiness probe: it would put the measured prompt in the prefix cache
        assert run[run.index("--ready-check-timeout-sec") + 1] == "0" and "--base-url" in run
        assert run[run.index("--base-url") + 1] == "http://127.0.0.1:8000"
    assert measured[measured.index("--seed") + 1] == "0" and measured[measured.index("--num-prompts") + 1] == "1"
    assert "--ready-check-timeout-sec" in measured and measured[measured.index("--ready-check-timeout-sec") + 1] == "0"
    assert "--env-file" not in measured and "-e" not in measured and KEY not in served.all_calls_text()
    assert f"{KEY_FILE}:{KEY_MOUNT}:ro" in measured
    assert measured[measured.index("--entrypoint") + 1:measured.index("--entrypoint") + 4] == [
        "sh", IMAGE, "-c"] and 'OPENAI_API_KEY="$(cat /run/secrets/qwen-api-key)"' in measured[measured.index("-c") + 1]
    assert set(served.state()["containers"]) == {"qwen-vllm"}  # bench containers are --rm
    again = bench(served)
    assert again.returncode == 0 and set(json.loads(again.stdout)) == V0110_KEYS


def test_without_warm_up_one_run(served):
    assert bench(served, WARMUPS="0").returncode == 0
    assert len(bench_runs(served)) == 1


def test_an_incomplete_run_fails(served):
    served.set_state(**{k: v for k, v in served.state().items() if k in ("images", "containers")},
                     vllm={"load_ticks": 0, "crash": False, "bench_failed_requests": 1})
    result = bench(served, NUM_PROMPTS="4", WARMUPS="0")
    assert_step_failed(result, "benchmark-seed", "vm-qwen-nc48",
                       "ERROR: scenario seed-10k-in-800-out-c1 completed 3 of 4 requests")


def test_a_refused_key_fails_the_run(served):
    # With --ready-check-timeout-sec 0 v0.11.0 sends no probe: every request is refused, the run
    # completes with 0 successful requests and the completeness check fails the step.
    served.write(KEY_FILE, "sk-stale", 0o600)
    result = bench(served, WARMUPS="0")
    assert_step_failed(result, "benchmark-seed", "vm-qwen-nc48",
                       "ERROR: scenario seed-10k-in-800-out-c1 completed 0 of 1 requests")


def test_a_failed_warm_up_fails(served):
    served.run(f"rm -r {MODEL_DIR}")  # the tokenizer is gone: vllm bench serve exits with an error
    calls_before = len(served.calls("docker"))
    result = bench(served)
    assert_step_failed(result, "benchmark-seed", "vm-qwen-nc48", "ERROR: the warm-up run of seed-10k-in-800-out-c1 failed",
                       f"Can't load tokenizer for '{MODEL_DIR}'")
    # a failed scenario leaves vLLM alone: only its log is read, for the message
    vllm = served.container("qwen-vllm")
    assert vllm["State"]["Running"] and vllm["Id"] == served.state()["containers"]["qwen-vllm"]["Id"]
    assert [c for c in served.calls("docker")[calls_before:] if "qwen-vllm" in c and c[:1] != ["logs"]] == []


def test_a_stopped_vllm_completes_no_request_and_fails(served):
    # no ready check (--ready-check-timeout-sec 0): v0.11.0 runs, every request fails to connect
    data = served.state()
    data["containers"]["qwen-vllm"]["State"].update(Status="exited", Running=False)
    served.set_state(containers=data["containers"])
    result = bench(served)
    assert_step_failed(result, "benchmark-seed", "vm-qwen-nc48",
                       "ERROR: scenario seed-10k-in-800-out-c1 completed 0 of 1 requests")


def test_a_stale_result_of_the_same_run_id_is_never_printed(served):
    served.write("/var/lib/qwen/benchmarks/seed-10k-in-800-out-c1-run-3.json", json.dumps({"completed": 1, "stale": True}))
    served.write(KEY_FILE, "sk-stale", 0o600)
    result = bench(served, WARMUPS="0")
    assert_step_failed(result, "benchmark-seed", "vm-qwen-nc48", "completed 0 of 1 requests")
    assert "stale" not in served.read("/var/lib/qwen/benchmarks/seed-10k-in-800-out-c1-run-3.json")
