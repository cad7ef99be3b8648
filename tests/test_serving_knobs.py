"""The serving knobs: typed, off by default, refused where the GPU or vLLM v0.11.0 cannot run them (one line
naming the key and the fix), and passed to `vllm serve` after the flags the serve step sets."""

import json

import pytest

from stacks.catalog import ACCELERATORS, GPU_SIZES, GpuSize
from stacks.settings import parse_settings
from tests.harness import run_stack, step_env
from tests.test_settings import one_problem, raw_settings

SPECULATIVE = {"method": "ngram", "numSpeculativeTokens": 6, "promptLookupMax": 8, "promptLookupMin": 1}


def serving(**values):
    def mutate(raw):
        raw["serving"].update(values)
    return mutate


def settings_with(stack, **values):
    raw = raw_settings(stack)
    serving(**values)(raw)
    return parse_settings(stack, raw)


def test_off_by_default():
    for stack in ("uksouth", "aliyun-l20"):
        s = settings_with(stack)
        assert s.serving.knob_args == () and s.serving.vllm_args == ()
        assert s.layout.weight_dtype == "bf16" and s.layout.kv_cache_dtype == "auto"


def test_every_knob_becomes_its_flag_before_extra_args():
    s = settings_with("aliyun-l20", quantization="fp8", kvCacheDtype="fp8", speculativeDecoding=SPECULATIVE,
                      maxNumSeqs=128, maxNumBatchedTokens=8192, enablePrefixCaching=False, extraArgs=["--block-size", "32"])
    assert s.serving.vllm_args == (
        "--quantization", "fp8", "--kv-cache-dtype", "fp8",
        "--speculative-config", '{"method":"ngram","num_speculative_tokens":6,"prompt_lookup_max":8,"prompt_lookup_min":1}',
        "--max-num-seqs", "128", "--max-num-batched-tokens", "8192", "--no-enable-prefix-caching", "--block-size", "32")
    assert settings_with("uksouth", enablePrefixCaching=True).serving.vllm_args == ("--enable-prefix-caching",)


def test_flags_reach_vllm_serve_one_word_per_line(monkeypatch):
    run = run_stack("aliyun-l20-fp8", monkeypatch, serving={
        "image": "vllm/vllm-openai:v0.11.0", "tensorParallelSize": 2, "gpuMemoryUtilization": 0.95,
        "quantization": "fp8", "kvCacheDtype": "fp8", "speculativeDecoding": SPECULATIVE, "maxNumSeqs": 64})
    lines = step_env(run.commands()["vllm-serve"].inputs["create"])["EXTRA_ARGS"].splitlines()
    assert lines[:4] == ["--quantization", "fp8", "--kv-cache-dtype", "fp8"]
    assert json.loads(lines[lines.index("--speculative-config") + 1]) == {
        "method": "ngram", "num_speculative_tokens": 6, "prompt_lookup_max": 8, "prompt_lookup_min": 1}
    assert lines[-2:] == ["--max-num-seqs", "64"]
    # the fp8 KV cache counts in the limit: 72B fp8 TP 2 on 2x L20 reads half the context bytes per step
    assert run.outputs["rooflineTokensPerSecond"] == 21.11


@pytest.mark.parametrize("arg, key", [
    ("--quantization=fp8", "serving.quantization"), ("-q", "serving.quantization"),
    ("--kv-cache-dtype", "serving.kvCacheDtype"), ("--speculative-config", "serving.speculativeDecoding"),
    ("--max-num-seqs", "serving.maxNumSeqs"), ("--max_num_batched_tokens=4096", "serving.maxNumBatchedTokens"),
    ("--enable-prefix-caching", "serving.enablePrefixCaching"), ("--no-enable-prefix-caching", "serving.enablePrefixCaching"),
])
def test_extra_args_cannot_set_a_knob_twice(arg, key):
    one_problem("uksouth", serving(extraArgs=[arg]), "qwen:serving.extraArgs[0]", f"from qwen:{key}; set that instead")


def test_fp8_weights_on_a100_are_weight_only_and_fit():
    s = settings_with("uksouth", quantization="fp8")
    assert s.serving.vllm_args == ("--quantization", "fp8") and s.layout.weight_dtype == "fp8"


def test_fp8_weights_refused_where_the_accelerator_has_none(monkeypatch):
    monkeypatch.setitem(GPU_SIZES, "test-atlas-300i-duo", GpuSize(2, ACCELERATORS["Ascend 310P3"]))
    def mutate(raw):
        raw["azure"]["vmSize"] = "test-atlas-300i-duo"
        raw["serving"]["quantization"] = "fp8"
    one_problem("uksouth", mutate, "qwen:serving.quantization", "cannot run on Ascend 310P3",
                "qwen:azure.vmSize test-atlas-300i-duo", "unset it")


def test_fp8_kv_cache_refused_on_a100():
    one_problem("uksouth", serving(kvCacheDtype="fp8"), "qwen:serving.kvCacheDtype", "A100 80GB PCIe",
                "Triton attention", "sm_89", "unset it")
    assert settings_with("aliyun-l20", kvCacheDtype="fp8").layout.kv_cache_dtype == "fp8"


def test_memory_check_uses_fp8_sizes():
    def fp8_one_node(raw, **serving_values):
        raw["aliyun"]["gpuNodeCount"] = 1
        raw["serving"].update(pipelineParallelSize=1, quantization="fp8", **serving_values)
    # 37.6 GB fp8 weights + 32,768 x 163,840 B = 5.4 GB KV + 2 GB runtime = 45.0 GB > 48 x 0.9 = 43.2 GB
    one_problem("aliyun-l20", fp8_one_node, "qwen:model.maxModelLen", "needs 45.0 GB per GPU (37.6 fp8 weights + 5.4 KV",
                "= 43.2 GB", "python -m tools.layouts")
    for fits in ({"kvCacheDtype": "fp8"}, {"gpuMemoryUtilization": 0.95}):  # 37.6 + 2.7 + 2 = 42.3; 45.0 <= 45.6
        raw = raw_settings("aliyun-l20")
        fp8_one_node(raw, **fits)
        assert parse_settings("aliyun-l20", raw).layout.weight_dtype == "fp8"


def test_bf16_weights_per_gpu_come_from_the_sizing_model():
    # 72B bf16 TP 2 on 2x A100: 70.22e9 layer weights x 2 B / 2 + 2 x 1.246e9 16-bit embedding and head / 2 = 72.7 GB
    def mutate(raw):
        raw["model"].update(id="Qwen/Qwen2.5-72B-Instruct", servedName="q")
    one_problem("uksouth", mutate, "qwen:model.maxModelLen", "(72.7 bf16 weights + ")


@pytest.mark.parametrize("speculative, key, fragment", [
    ({**SPECULATIVE, "method": "draft_model"}, "qwen:serving.speculativeDecoding.method",
     "NotImplementedError in vLLM v0.11.0; use ngram"),
    ({**SPECULATIVE, "method": "eagle"}, "qwen:serving.speculativeDecoding.method", "use ngram"),
    ({**SPECULATIVE, "promptLookupMin": 9}, "qwen:serving.speculativeDecoding.promptLookupMin", "above promptLookupMax 8"),
    ({"method": "ngram", "promptLookupMax": 8}, "qwen:serving.speculativeDecoding.numSpeculativeTokens", "is required"),
    ({**SPECULATIVE, "numSpeculativeTokens": 0}, "qwen:serving.speculativeDecoding.numSpeculativeTokens", "at least 1"),
])
def test_speculative_decoding_rules(speculative, key, fragment):
    one_problem("uksouth", serving(speculativeDecoding=speculative), key, fragment)


def test_speculative_decoding_refuses_async_scheduling():
    one_problem("uksouth", serving(speculativeDecoding=SPECULATIVE, extraArgs=["--async-scheduling"]),
                "qwen:serving.extraArgs", "remove one of them")


def test_batch_limits_follow_vllm():
    one_problem("uksouth", serving(maxNumSeqs=512, maxNumBatchedTokens=256), "qwen:serving.maxNumBatchedTokens",
                "below maxNumSeqs 512", "at least 512")
    # vLLM v0.11.0 defaults --max-num-batched-tokens to 2048 on A100 and L20: more sequences need it raised
    one_problem("uksouth", serving(maxNumSeqs=4096), "qwen:serving.maxNumSeqs", "default --max-num-batched-tokens 2048",
                "qwen:serving.maxNumBatchedTokens to at least 4096")
    assert settings_with("uksouth", maxNumSeqs=4096, maxNumBatchedTokens=8192).serving.max_num_seqs == 4096
    assert settings_with("uksouth", maxNumSeqs=1024).serving.vllm_args == ("--max-num-seqs", "1024")


def test_hourly_price_must_be_positive():
    one_problem("uksouth", lambda raw: raw.update(cost={"hourlyUsd": 0}), "qwen:cost.hourlyUsd", "more than 0")
    raw = raw_settings("uksouth")
    raw["cost"] = {"hourlyUsd": 2.2}
    assert parse_settings("uksouth", raw).cost.hourly_usd == 2.2


def test_layout_advice_says_where_an_fp8_kv_cache_cannot_run():
    from stacks.catalog import MODELS
    from stacks.sizing import advise_layouts

    def notes(machine):
        return {a.note for a in advise_layouts(MODELS["Qwen/Qwen2.5-14B-Instruct"], GPU_SIZES[machine], [1],
                                                kv_cache_dtypes=("fp8",)) if a.layout.weight_dtype == "bf16"}
    assert notes("Standard_NC48ads_A100_v4") == {"vLLM v0.11.0 cannot run an fp8 KV cache here (Triton compiles fp8 "
                                                 "e4m3 for sm_89+ only)"}
    assert notes("ecs.gn8is-2x.8xlarge") == {"--kv-cache-dtype fp8 switches sm89 to the Triton attention backend"}


def test_an_azure_candidate_that_cannot_run_a_knob_is_skipped(monkeypatch):
    import pulumi

    from tests.test_preflight import NoAzure, candidate_overrides

    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: logged.append(message))
    overrides = candidate_overrides([{"location": "uksouth", "vmSize": "Standard_NC48ads_A100_v4"},
                                     {"location": "uksouth", "vmSize": "Standard_NC80adis_H100_v5"}])
    overrides["serving"]["kvCacheDtype"] = "fp8"
    run = run_stack("uksouth", monkeypatch, azure_client=NoAzure(), preflight={"enabled": False}, **overrides)
    placement = run.outputs["placement"]
    assert placement["vmSize"] == "Standard_NC80adis_H100_v5"
    assert "qwen:serving.kvCacheDtype" in json.dumps(placement["skipped"])  # the A100 pair cannot hold an fp8 KV cache
    advice = next(m for m in logged if m.startswith("layouts of "))
    assert "on 2x H100 NVL (94 GB)" in advice and "fp8 KV cache, TP 2 x PP 1" in advice
    # 14B bf16 TP 2 on 2x H100 NVL (3,900 GB/s each): 245.14 tok/s with a 16-bit KV cache, 253.27 with fp8
    assert run.outputs["rooflineTokensPerSecond"] == 253.27
