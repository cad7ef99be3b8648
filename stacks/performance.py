"""Pure helpers for the stack outputs that explain a benchmark: the seed scenario's roofline,
efficiency, cost per million tokens and the per-scenario summary (stacks/outputs.py exports them),
and the layout advice the program prints before any resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stacks.catalog import MODELS, Accelerator, GpuSize
from stacks.sizing import SEED_REQUEST, Layout, advise_layouts, roofline

SEED_SCENARIO = "seed-10k-in-800-out-c1"  # 10,000 in / 800 out, one request: seed 000's measurement
SWEEP_CONCURRENCIES = (1, 8, 32, 64, 128, 192)  # seed 001's 256 in / 256 out shape, rising load
SWEEP_INPUT_TOKENS = SWEEP_OUTPUT_TOKENS = 256


def sweep_scenario_name(concurrency: int) -> str:
    return f"sweep-{SWEEP_INPUT_TOKENS}-in-{SWEEP_OUTPUT_TOKENS}-out-c{concurrency}"


SWEEP_SCENARIOS = tuple(sweep_scenario_name(c) for c in SWEEP_CONCURRENCIES)

# What each scenario's entry in `benchmark` keeps: `vllm bench serve` result keys (v0.11.0).
SUMMARY_METRICS = (
    "completed", "max_concurrency", "output_throughput", "total_token_throughput",
    "mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms",
)
_REQUIRED_METRICS = ("completed", "output_throughput", "total_token_throughput")


def weight_dtype(quantization: str | None, accelerator: Accelerator) -> str:
    """The weight format vLLM serves: fp8 when `quantization: fp8` is set, else the model's bf16, or
    fp16 on accelerators without bf16 (Ascend 310P)."""
    if quantization == "fp8":
        return "fp8"
    if quantization is not None:
        raise ValueError(f"no sizing for quantization {quantization!r}; known: fp8")
    return "bf16" if "bf16" in accelerator.weight_dtypes else "fp16"


def seed_roofline_tokens_per_second(model_id: str, machine: GpuSize, tensor_parallel_size: int,
                                    pipeline_parallel_size: int, quantization: str | None = None,
                                    kv_cache_dtype: str = "auto") -> float:
    """`rooflineTokensPerSecond`: the batch-1 limit of the seed scenario for this deployment, tokens/s
    rounded to 0.01 (stacks/sizing.py explains the formula)."""
    layout = Layout(weight_dtype(quantization, machine.accelerator), tensor_parallel_size,
                    pipeline_parallel_size, kv_cache_dtype)
    return round(roofline(MODELS[model_id], layout, machine.accelerator, SEED_REQUEST).tokens_per_second, 2)


def efficiency(tokens_per_second: float, roofline_tokens_per_second: float) -> float:
    """`efficiency`: measured seed tokens/s over its roofline, a fraction rounded to 0.001."""
    if roofline_tokens_per_second <= 0:
        raise ValueError(f"roofline must be positive, got {roofline_tokens_per_second}")
    return round(tokens_per_second / roofline_tokens_per_second, 3)


def cost_per_million_tokens(hourly_usd: float | None, tokens_per_second: float) -> float | None:
    """`costPerMillionTokens`: USD per million output tokens at `tokens_per_second`, rounded to 0.01;
    None (the output is omitted) when the user set no hourly price.

    The stack passes `tokensPerSecond` (the seed scenario: one request at a time), so the figure is
    the cost of a deployment that serves one long request at a time: the most a million tokens cost
    on it. Under load the same hourly price buys more tokens; the report shows the cost per sweep point.
    """
    if hourly_usd is None:
        return None
    if tokens_per_second <= 0:
        raise ValueError(f"tokens/s must be positive to price a token, got {tokens_per_second}")
    return round(hourly_usd / (tokens_per_second * 3600) * 1e6, 2)


def scenario_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One scenario's entry in `benchmark`: output and total tokens/s, TTFT / TPOT / ITL mean and p99
    in ms, completed requests and the concurrency, from a `vllm bench serve` result."""
    missing = [key for key in _REQUIRED_METRICS if key not in metrics]
    if missing:
        raise ValueError(f"benchmark result lacks {', '.join(missing)}")
    return {key: metrics[key] for key in SUMMARY_METRICS if key in metrics}


def performance_outputs(tokens_per_second: float, roofline_tokens_per_second: float,
                        hourly_usd: float | None) -> dict[str, float]:
    """The new stack outputs, by contract name; `costPerMillionTokens` only when a price is set."""
    outputs = {
        "rooflineTokensPerSecond": roofline_tokens_per_second,
        "efficiency": efficiency(tokens_per_second, roofline_tokens_per_second),
    }
    cost = cost_per_million_tokens(hourly_usd, tokens_per_second)
    if cost is not None:
        outputs["costPerMillionTokens"] = cost
    return outputs


def layout_advice_message(model_id: str, machine: GpuSize, node_counts: Sequence[int], memory_utilization: float,
                          current: Layout, current_nodes: int) -> str:
    """What the preview and `up` print before any resource: the layouts of the model on `node_counts` machines of
    one size that hold the seed scenario's 10,800 tokens, with their GPU counts and rooflines, the stack's own
    layout (`current` on `current_nodes` machines) marked. stacks/sizing.py does the arithmetic."""
    kv_dtypes = ("auto", "fp8") if current.kv_cache_dtype == "fp8" else ("auto",)
    advice = advise_layouts(MODELS[model_id], machine, node_counts, memory_utilization, kv_cache_dtypes=kv_dtypes)
    lines = [f"layouts of {model_id} that hold the seed scenario on {machine.gpus}x {machine.gpu_model} "
             f"({machine.gpu_memory_gb:g} GB) per machine at gpuMemoryUtilization {memory_utilization} "
             "(`python -m tools.layouts` for more):"]
    for a in (a for a in advice if a.fits or (a.layout == current and a.nodes == current_nodes)):
        layout = a.layout
        kv = "" if layout.kv_cache_dtype == "auto" else f", {layout.kv_cache_dtype} KV cache"
        kv += " (the published -AWQ checkpoint)" if layout.weight_dtype == "awq-int4" else ""
        mark = "  <- this stack" if layout == current and a.nodes == current_nodes else ""
        lines.append(f"  {layout.weight_dtype}{kv}, TP {layout.tensor_parallel_size} x PP "
                     f"{layout.pipeline_parallel_size}: {a.nodes} machine(s), {a.gpus} GPUs, "
                     f"{a.weight_gb_per_device:.1f} GB weights per GPU, {a.kv_tokens:,} KV tokens, roofline "
                     f"{a.roofline_tokens_per_second:.1f} tokens/s{mark}")
    return "\n".join(lines)
