"""Hosts after a reboot (the model directory reaches containers started before the NAS mount), the
minimum driver setting that node-ready gets, and the cap on the log lines a failure shows (node-ready's
driver check and "only this run's lines" run in the sandbox: tests/steps/test_node_ready.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import cloudinit
from components.remote import SCRIPTS_DIR
from stacks.settings import SettingsError, parse_settings
from tests.harness import ROOT, TEST_CIDR, run_stack, step_env

ALL_SCRIPTS = sorted([*SCRIPTS_DIR.glob("*.sh"), *cloudinit.SCRIPTS_DIR.glob("*.sh")])


def test_every_container_that_binds_the_model_root_follows_later_mounts():
    binds = []
    for script in ALL_SCRIPTS:
        for line in script.read_text().splitlines():
            if "docker run" in line or re.search(r'-v "\$MODEL_ROOT', line):
                binds += [(script.name, m) for m in re.findall(r'-v "(\$MODEL_ROOT:[^"]*)"', line)]
    # ray_start (head and workers), vllm_start, benchmark, and the Azure prefetch's download container
    assert {name for name, _ in binds} == {"ray_start.sh", "vllm_start.sh", "benchmark.sh", "prefetch.sh"}
    for name, bind in binds:
        assert bind.split(":")[2].split(",")[-1] == "rslave", (name, bind)
    assert not [s.name for s in ALL_SCRIPTS if "--mount" in s.read_text()]  # no bind that escapes the check


# ---------------------------------------------------------------------------- driver version


def raw_config(stack: str) -> dict:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("qwen:")}
    raw["access"] = {"allowedCidrs": [TEST_CIDR]}
    return raw


def test_min_driver_version_setting():
    assert parse_settings("uksouth", raw_config("uksouth")).serving.min_driver_version == "570"
    raw = raw_config("uksouth")
    raw["serving"]["minDriverVersion"] = "575.51"
    assert parse_settings("uksouth", raw).serving.min_driver_version == "575.51"
    raw["serving"]["minDriverVersion"] = "r570"
    with pytest.raises(SettingsError) as err:
        parse_settings("uksouth", raw)
    assert err.value.problems == [
        "qwen:serving.minDriverVersion: 'r570' is not an NVIDIA driver version such as 570 or 570.172.08"]


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_node_ready_steps_get_the_minimum_driver(stack, monkeypatch):
    run = run_stack(stack, monkeypatch, serving={**raw_config(stack)["serving"], "minDriverVersion": "575.51"})
    steps = [c for name, c in run.commands().items() if name.endswith("-node-ready")]
    assert len(steps) == (1 if stack == "uksouth" else 2)
    for step in steps:
        assert step_env(step.inputs["create"])["MIN_DRIVER_VERSION"] == "575.51"


# ---------------------------------------------------------------------------- this run's log lines


def failing_step(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    common = (SCRIPTS_DIR / "common.sh").read_text().replace("/var/log/qwen", str(tmp_path))
    return subprocess.run(["bash", "-c", common + "\n" + body], capture_output=True, text=True,
                          env={**os.environ, "QWEN_STEP": "ray-head", "QWEN_HOST": "gpu-0"})


def test_the_shown_lines_are_capped(tmp_path):
    ran = failing_step(tmp_path, 'for i in $(seq 1 100); do echo "line $i"; done\nfail "broke"\n')
    shown = [line for line in ran.stderr.splitlines() if line.startswith("line ")]
    assert shown == [f"line {i}" for i in range(62, 101)]  # 40 lines: 39 of them and the ERROR line
    assert ran.stderr.rstrip().splitlines()[-1] == "ERROR: broke"


def test_a_first_run_without_a_log_shows_its_lines(tmp_path):
    ran = failing_step(tmp_path, 'echo "first"\nfail "broke"\n')
    assert "first" in ran.stderr and "step 'ray-head' failed on host 'gpu-0' (exit 1)" in ran.stderr
