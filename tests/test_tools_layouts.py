"""`python -m tools.layouts`: the printed table lists the layouts that fit, with their numbers."""

from __future__ import annotations

from tools.layouts import main


def _rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| weights |")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_72b_on_l20_lists_one_node_fp8_and_two_node_bf16(capsys):
    assert main(["--model", "Qwen/Qwen2.5-72B-Instruct", "--machine", "ecs.gn8is-2x.8xlarge"]) == 0
    out = capsys.readouterr().out
    rows = {(r[0], r[2], r[3]): r for r in _rows(out)}
    fp8 = rows[("fp8", "2 x 1", "1")]
    assert fp8[4] == "2" and fp8[5] == "37.6" and fp8[7] == "20.7"
    assert fp8[8] == "`--tensor-parallel-size 2 --quantization fp8`"
    bf16 = rows[("bf16", "2 x 2", "2")]
    assert bf16[4] == "4" and bf16[5] == "36.4" and bf16[7] == "10.8"
    assert bf16[8] == "`--tensor-parallel-size 2 --pipeline-parallel-size 2`"
    # bf16 on one node does not fit and is not listed without --all.
    assert ("bf16", "2 x 1", "1") not in rows


def test_all_lists_misfits_marked(capsys):
    assert main(["--model", "Qwen/Qwen2.5-72B-Instruct", "--machine", "ecs.gn8is-2x.8xlarge", "--nodes", "1", "--all"]) == 0
    rows = {(r[0], r[2]): r for r in _rows(capsys.readouterr().out)}
    assert rows[("bf16", "2 x 1")][6] == "0 (too few)"


def test_14b_on_a100_and_nothing_fits(capsys):
    assert main(["--model", "Qwen/Qwen2.5-14B-Instruct", "--machine", "Standard_NC48ads_A100_v4", "--nodes", "1"]) == 0
    rows = {(r[0], r[2]): r for r in _rows(capsys.readouterr().out)}
    assert rows[("bf16", "2 x 1")][7] == "119.4"
    assert "weight-only" in rows[("fp8", "2 x 1")][9]
    # 72B on one workstation with 2x 24 GB: not even AWQ (20.7 GB per GPU) leaves room: exit status 1.
    assert main(["--model", "Qwen/Qwen2.5-72B-Instruct", "--machine", "workstation-2x-rtx4090", "--nodes", "1"]) == 1
    assert "No layout fits" in capsys.readouterr().out
