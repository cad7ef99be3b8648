"""Benchmark report: a PNG chart and a markdown table from a stack's outputs.

    pulumi stack output --json -s uksouth > uksouth.json
    python -m tools.report uksouth.json --out report/     # or: ... | python -m tools.report - --out report/

Writes report/benchmark.png (throughput and p99 TTFT against concurrency for the sweep scenarios;
the seed scenario against its roofline) and report/benchmark.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI runner or over SSH

from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)

from stacks.performance import SEED_SCENARIO  # noqa: E402

SWEEP_PREFIX = "sweep-"
PNG_NAME, MARKDOWN_NAME = "benchmark.png", "benchmark.md"


@dataclass(frozen=True)
class Report:
    """What the chart and the table show, read from `pulumi stack output --json`."""

    served_model: str
    tokens_per_second: float | None
    roofline_tokens_per_second: float | None
    efficiency: float | None
    cost_per_million_tokens: float | None
    scenarios: dict[str, Mapping[str, Any]]  # name -> metrics, seed first, then the sweep by concurrency

    @property
    def sweep(self) -> list[tuple[int, Mapping[str, Any]]]:
        """(concurrency, metrics) of the sweep scenarios, by rising concurrency."""
        points = [(concurrency(name, m), m) for name, m in self.scenarios.items() if name.startswith(SWEEP_PREFIX)]
        return sorted(points, key=lambda point: point[0])


def concurrency(name: str, metrics: Mapping[str, Any]) -> int:
    """A scenario's concurrency: its `max_concurrency`, else the `-cN` suffix of its name."""
    if metrics.get("max_concurrency") is not None:
        return int(metrics["max_concurrency"])
    match = re.search(r"-c(\d+)$", name)
    if not match:
        raise ValueError(f"scenario {name!r} has no max_concurrency and no -cN suffix")
    return int(match.group(1))


def read_report(outputs: Mapping[str, Any]) -> Report:
    benchmark = outputs.get("benchmark")
    if not isinstance(benchmark, Mapping) or not benchmark:
        raise ValueError("the stack output has no `benchmark` map: run `pulumi up` until the benchmark finishes")

    def order(name: str) -> tuple[int, int, str]:
        if name == SEED_SCENARIO:
            return (0, 0, name)
        if name.startswith(SWEEP_PREFIX):
            return (1, concurrency(name, benchmark[name]), name)
        return (2, 0, name)

    return Report(
        served_model=str(outputs.get("servedModel", "")),
        tokens_per_second=outputs.get("tokensPerSecond"),
        roofline_tokens_per_second=outputs.get("rooflineTokensPerSecond"),
        efficiency=outputs.get("efficiency"),
        cost_per_million_tokens=outputs.get("costPerMillionTokens"),
        scenarios={name: benchmark[name] for name in sorted(benchmark, key=order)},
    )


def build_figure(report: Report) -> Figure:
    """Three panels: tokens/s against concurrency, p99 and mean TTFT against concurrency, and the seed
    scenario's measured tokens/s next to its roofline."""
    figure = Figure(figsize=(15, 4.8), layout="constrained")
    throughput_ax, ttft_ax, seed_ax = figure.subplots(1, 3)
    figure.suptitle(f"{report.served_model}: vllm bench serve")
    sweep = report.sweep
    levels = [c for c, _ in sweep]
    for ax, title, ylabel, series in (
        (throughput_ax, "Throughput, 256 in / 256 out", "tokens/s",
         (("output tokens/s", "output_throughput"), ("total tokens/s", "total_token_throughput"))),
        (ttft_ax, "Time to first token, 256 in / 256 out", "ms",
         (("p99 TTFT", "p99_ttft_ms"), ("mean TTFT", "mean_ttft_ms"))),
    ):
        ax.set_title(title)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(ylabel)
        if not sweep:
            ax.text(0.5, 0.5, "no sweep scenarios", ha="center", va="center", transform=ax.transAxes)
            continue
        for label, key in series:
            ax.plot(levels, [float(m[key]) for _, m in sweep], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.grid(True, alpha=0.3)
        ax.legend()

    seed_ax.set_title("Seed scenario, 10,000 in / 800 out, 1 request")
    seed_ax.set_ylabel("output tokens/s")
    bars = [(label, value) for label, value in (("measured", report.tokens_per_second),
                                                 ("roofline", report.roofline_tokens_per_second)) if value is not None]
    if bars:
        container = seed_ax.bar([label for label, _ in bars], [float(v) for _, v in bars], color=["C0", "C7"][:len(bars)])
        seed_ax.bar_label(container, fmt="%.1f")
    if report.efficiency is not None:
        seed_ax.set_xlabel(f"efficiency {float(report.efficiency):.0%} of the roofline")
    return figure


def _ms(metrics: Mapping[str, Any], name: str) -> str:
    mean, p99 = metrics.get(f"mean_{name}_ms"), metrics.get(f"p99_{name}_ms")
    if mean is None or p99 is None:
        return "-"
    return f"{float(mean):,.1f} / {float(p99):,.1f}"


def _tokens_per_second(metrics: Mapping[str, Any], key: str) -> str:
    return "-" if metrics.get(key) is None else f"{float(metrics[key]):,.1f}"


def markdown(report: Report) -> str:
    """The headline figures, then one row per scenario."""
    lines = [f"# Benchmark: {report.served_model}", ""]
    headline = [("tokens/s (seed scenario)", report.tokens_per_second, "{:.2f}"),
                ("roofline tokens/s", report.roofline_tokens_per_second, "{:.2f}"),
                ("efficiency", report.efficiency, "{:.1%}"),
                ("USD per million output tokens (seed scenario)", report.cost_per_million_tokens, "{:.2f}")]
    lines += [f"- {label}: {fmt.format(float(value))}" for label, value, fmt in headline if value is not None]
    lines.append("")
    header = ["scenario", "concurrency", "completed", "output tok/s", "total tok/s",
              "TTFT ms mean / p99", "TPOT ms mean / p99", "ITL ms mean / p99"]
    # The hourly price is cost x seed tokens/s; a scenario's cost is that price over its own tokens/s.
    price, tokens_per_second = report.cost_per_million_tokens, report.tokens_per_second
    if price is not None and tokens_per_second:
        header.append("USD / M output tokens")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, m in report.scenarios.items():
        row = [f"`{name}`", str(concurrency(name, m)), str(m.get("completed", "-")),
               _tokens_per_second(m, "output_throughput"), _tokens_per_second(m, "total_token_throughput"),
               _ms(m, "ttft"), _ms(m, "tpot"), _ms(m, "itl")]
        if price is not None and tokens_per_second:
            cost = price * float(tokens_per_second) / float(m["output_throughput"])
            row.append(f"{cost:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"![benchmark chart]({PNG_NAME})")
    return "\n".join(lines) + "\n"


def write_report(outputs: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    report = read_report(outputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, md = out_dir / PNG_NAME, out_dir / MARKDOWN_NAME
    build_figure(report).savefig(png, dpi=100)
    md.write_text(markdown(report))
    return png, md


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.splitlines()[0])
    parser.add_argument("stack_output", help="saved `pulumi stack output --json`, or - for stdin")
    parser.add_argument("--out", required=True, type=Path, help="directory for benchmark.png and benchmark.md")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.stack_output == "-" else Path(args.stack_output).read_text()
    try:
        png, md = write_report(json.loads(text), args.out)
    except (ValueError, KeyError) as err:  # JSONDecodeError is a ValueError
        print(f"tools.report: {args.stack_output}: {err}", file=sys.stderr)
        return 1
    print(png)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
