"""Layout advice: which layouts of a model fit a machine size, with their memory and batch-1 limit.

    python -m tools.layouts --model Qwen/Qwen2.5-72B-Instruct --machine ecs.gn8is-2x.8xlarge

Prints a markdown table (stacks/sizing.py does the arithmetic; nothing reaches a cloud).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stacks.catalog import BYTES_PER_KV_ELEMENT, MACHINES, MODELS
from stacks.sizing import SEED_REQUEST, LayoutAdvice, RequestShape, advise_layouts

HEADER = ("weights", "KV cache", "TP x PP", "nodes", "GPUs", "weights GB/GPU", "KV tokens",
          "roofline tok/s", "vLLM flags", "note")


def vllm_flags(advice: LayoutAdvice) -> str:
    """The `vllm serve` flags that select this layout."""
    layout = advice.layout
    flags = [f"--tensor-parallel-size {layout.tensor_parallel_size}"]
    if layout.pipeline_parallel_size > 1:
        flags.append(f"--pipeline-parallel-size {layout.pipeline_parallel_size}")
    if layout.weight_dtype == "fp8":
        flags.append("--quantization fp8")
    if layout.weight_dtype == "fp16":
        flags.append("--dtype float16")
    if layout.kv_cache_dtype != "auto":
        flags.append(f"--kv-cache-dtype {layout.kv_cache_dtype}")
    return " ".join(flags)


def table_rows(advice: Sequence[LayoutAdvice]) -> list[tuple[str, ...]]:
    return [(
        a.layout.weight_dtype,
        "16-bit" if a.layout.kv_cache_dtype == "auto" else a.layout.kv_cache_dtype,
        f"{a.layout.tensor_parallel_size} x {a.layout.pipeline_parallel_size}",
        str(a.nodes),
        str(a.gpus),
        f"{a.weight_gb_per_device:.1f}",
        f"{a.kv_tokens:,}" if a.fits else f"{a.kv_tokens:,} (too few)",
        f"{a.roofline_tokens_per_second:.1f}",
        f"`{vllm_flags(a)}`",
        a.note,
    ) for a in advice]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _csv_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.layouts", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(MODELS), help="model id from stacks/catalog.py")
    parser.add_argument("--machine", required=True, choices=sorted(MACHINES), help="machine size from stacks/catalog.py")
    parser.add_argument("--nodes", type=_csv_ints, default=[1, 2], help="node counts to consider, e.g. 1,2,4 (default 1,2)")
    parser.add_argument("--memory-utilization", type=float, default=0.9, help="vLLM --gpu-memory-utilization (default 0.9)")
    parser.add_argument("--input-tokens", type=int, default=SEED_REQUEST.input_tokens,
                        help="prompt tokens of the roofline request")
    parser.add_argument("--output-tokens", type=int, default=SEED_REQUEST.output_tokens,
                        help="generated tokens of the roofline request")
    parser.add_argument("--min-context", type=int, default=None,
                        help="KV tokens a layout must hold to fit (default: input + output tokens)")
    parser.add_argument("--kv-cache-dtype", default="auto", help="comma list of KV cache dtypes: auto,fp8 (default auto)")
    parser.add_argument("--all", action="store_true", help="also list the layouts that do not fit")
    args = parser.parse_args(argv)

    kv_dtypes = [d for d in args.kv_cache_dtype.split(",") if d]
    unknown = [d for d in kv_dtypes if d not in BYTES_PER_KV_ELEMENT]
    if unknown:
        parser.error(f"--kv-cache-dtype: unknown {', '.join(unknown)}; use {', '.join(BYTES_PER_KV_ELEMENT)}")
    request = RequestShape(args.input_tokens, args.output_tokens)
    min_context = args.min_context if args.min_context is not None else request.input_tokens + request.output_tokens
    machine = MACHINES[args.machine]
    advice = advise_layouts(MODELS[args.model], machine, args.nodes, args.memory_utilization,
                            min_context, request, kv_dtypes)
    shown = advice if args.all else [a for a in advice if a.fits]
    print(f"{args.model} on {args.machine} ({machine.gpus}x {machine.gpu_model}, {machine.gpu_memory_gb:g} GB each, per node), "
          f"gpu-memory-utilization {args.memory_utilization}; fits = KV cache holds {min_context:,} tokens; "
          f"roofline = batch-1 tokens/s for {request.input_tokens:,} in / {request.output_tokens:,} out")
    print()
    if not shown:
        print(f"No layout fits on {', '.join(map(str, args.nodes))} node(s); try more nodes (--nodes) or --all.")
        return 1
    print(markdown_table(HEADER, table_rows(shown)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
