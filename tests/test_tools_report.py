"""`python -m tools.report`: chart series and table rows from a saved stack output, and a PNG that opens."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from tools.report import build_figure, main, markdown, read_report, write_report

FIXTURE = Path(__file__).parent / "fixtures" / "stack_output_uksouth.json"
SWEEP = [1, 8, 32, 64, 128, 192]


@pytest.fixture
def outputs() -> dict:
    document: dict = json.loads(FIXTURE.read_text())
    return document


def _lines(ax) -> dict:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_figure_holds_the_sweep_and_the_seed_against_its_roofline(outputs):
    throughput_ax, ttft_ax, seed_ax = build_figure(read_report(outputs)).axes
    bench = outputs["benchmark"]
    lines = _lines(throughput_ax)
    assert lines["output tokens/s"] == (SWEEP, [bench[f"sweep-256-in-256-out-c{c}"]["output_throughput"] for c in SWEEP])
    assert lines["total tokens/s"][1] == [bench[f"sweep-256-in-256-out-c{c}"]["total_token_throughput"] for c in SWEEP]
    lines = _lines(ttft_ax)
    assert lines["p99 TTFT"] == (SWEEP, [24.9, 97.3, 388.6, 792.4, 1631.9, 2874.5])
    assert lines["mean TTFT"][1][-1] == 931.6
    bars = [bar for bar in seed_ax.patches if isinstance(bar, Rectangle)]
    assert len(bars) == len(seed_ax.patches)
    heights = [bar.get_height() for bar in bars]
    assert heights == [64.45, 119.37]
    assert [t.get_text() for t in seed_ax.get_xticklabels()] == ["measured", "roofline"]
    assert seed_ax.get_xlabel() == "efficiency 54% of the roofline"


def test_write_report_png_and_table(outputs, tmp_path):
    png, md = write_report(outputs, tmp_path / "report")
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (1500, 480)  # 15 x 4.8 inches at 100 dpi
        colors = image.convert("L").getcolors(maxcolors=256)
        assert colors is not None and len(colors) > 10  # drawn, not blank
    text = md.read_text()
    assert "- efficiency: 54.0%" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["seed-10k-in-800-out-c1"] + [f"sweep-256-in-256-out-c{c}" for c in SWEEP]
    # Seed row: the price per million output tokens at the seed's own tokens/s is the output itself.
    assert rows[0].endswith("| 15.52 |")
    # c192: 15.52 x 64.45 / 4,476.43 = 0.2234 USD per million output tokens.
    assert rows[-1] == ("| `sweep-256-in-256-out-c192` | 192 | 768 | 4,476.4 | 8,952.9 | 931.6 / 2,874.5 "
                        "| 39.0 / 47.4 | 39.0 / 259.8 | 0.22 |")


def test_without_price_or_sweep(outputs):
    del outputs["costPerMillionTokens"]
    outputs["benchmark"] = {"seed-10k-in-800-out-c1": outputs["benchmark"]["seed-10k-in-800-out-c1"]}
    report = read_report(outputs)
    text = markdown(report)
    assert "USD" not in text
    throughput_ax, ttft_ax, _ = build_figure(report).axes
    assert throughput_ax.get_lines() == [] and throughput_ax.texts[0].get_text() == "no sweep scenarios"


def test_command_reads_stdin_and_refuses_an_output_without_benchmark(outputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(outputs)))
    assert main(["-", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000
    saved = tmp_path / "empty.json"
    saved.write_text(json.dumps({"endpoint": "http://x:8000/v1"}))
    assert main([str(saved), "--out", str(tmp_path / "none")]) == 1
    assert "no `benchmark` map" in capsys.readouterr().err


def test_concurrency_from_the_name_when_the_metric_is_absent(outputs):
    for metrics in outputs["benchmark"].values():
        del metrics["max_concurrency"]
        del metrics["total_token_throughput"]
    report = read_report(outputs)
    assert [c for c, _ in report.sweep] == SWEEP
    assert "| `sweep-256-in-256-out-c64` | 64 | 256 | 2,702.6 | - |" in markdown(report)
