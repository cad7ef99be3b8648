"""Parsers for the tool output that bootstrap steps print: nvidia-smi, ray status, vllm bench serve.

They run in `pulumi up` on a Command's stdout; they are pure functions tested on fixtures that
match the real formats.
"""

from __future__ import annotations

import json
import re

# The metrics a benchmark scenario reports in the `benchmark` stack output.
BENCHMARK_METRICS = (
    "duration", "completed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "output_throughput", "total_token_throughput",
    "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "p99_itl_ms",
    "mean_e2el_ms", "median_e2el_ms", "p99_e2el_ms",
    "max_concurrency",
)


def parse_nvidia_smi_csv(text: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader`."""
    gpus = []
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        index, name, memory, driver = fields
        match = re.fullmatch(r"(\d+)\s*MiB", memory)
        if not match:
            raise ValueError(f"unexpected nvidia-smi memory field: {memory!r}")
        gpus.append({"index": int(index), "name": name, "memoryMiB": int(match.group(1)), "driver": driver})
    return gpus


def parse_ray_status(text: str) -> dict[str, float]:
    """Totals of the usage section of `ray status`, e.g. {"CPU": 96.0, "GPU": 4.0}.

    Lines look like ` 0.0/4.0 GPU` or ` 0.0/4.0 GPU (0.0 used of 4.0 reserved in placement groups)`;
    memory lines (`0B/372.53GiB memory`) are skipped.
    """
    totals: dict[str, float] = {}
    in_usage = False
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^(Total )?Usage:$", stripped):
            in_usage = True
            continue
        if in_usage and re.match(r"^(Total )?(Demands|Constraints|Pending Demands):", stripped):
            break
        match = re.match(r"^([\d.]+)/([\d.]+)\s+([A-Za-z_][\w:.-]*)\b", stripped)
        if in_usage and match:
            totals[match.group(3)] = float(match.group(2))
    if not totals:
        raise ValueError("no resource usage found in ray status output")
    return totals


def parse_benchmark_result(text: str) -> dict:
    """The metrics of one `vllm bench serve --save-result` JSON (the whole Command stdout)."""
    try:
        result = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"benchmark output is not the result JSON: {err}: {text[:200]!r}") from err
    missing = [key for key in BENCHMARK_METRICS if key not in result]
    if missing:
        raise ValueError(f"benchmark result has no {', '.join(missing)}")
    return {key: result[key] for key in BENCHMARK_METRICS}
