"""Hosts after a reboot (the model directory reaches containers started before the NAS mount), the
driver check of node-ready, and failure messages that show only this run's log lines."""

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


def run_node_ready(tmp_path: Path, driver: str, minimum: str) -> subprocess.CompletedProcess:
    """node_ready.sh with stand-ins: cloud-init done, two GPUs with `driver`, docker with the nvidia
    runtime and the image present."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        "cloud-init": "exit 0",
        "nvidia-smi": ('case "$*" in *driver_version*) printf "%s\\n%s\\n" "{d}" "{d}" ;; '
                       '-L) printf "GPU 0: L20\\nGPU 1: L20\\n" ;; *) printf "NVIDIA L20\\nNVIDIA L20\\n" ;; esac').format(d=driver),
        "docker": ('case "$1" in info) echo \'{"nvidia":{},"runc":{}}\' ;; run) printf "GPU 0: L20\\nGPU 1: L20\\n" ;; '
                   'esac; exit 0'),
        "systemctl": "exit 1",  # is-failed: no
    }
    for tool, body in tools.items():
        (bin_dir / tool).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "bootstrap-done").write_text("")
    script = ((SCRIPTS_DIR / "common.sh").read_text() + (SCRIPTS_DIR / "node_ready.sh").read_text()
              ).replace("/var/log/qwen", str(tmp_path / "log")).replace("/var/lib/qwen/bootstrap-done",
                                                                         str(tmp_path / "bootstrap-done"))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "node-ready", "QWEN_HOST": "gpu-0",
        "EXPECTED_GPUS": "2", "IMAGE": "vllm/vllm-openai:v0.11.0", "MIN_DRIVER_VERSION": minimum,
        "CLOUD_INIT_TIMEOUT": "5", "GPU_TIMEOUT": "5", "IMAGE_PULL_TIMEOUT": "5"})


@pytest.mark.parametrize("driver, minimum", [("570.172.08", "570"), ("575.51.03", "570"), ("570.172.08", "570.172.08"),
                                             ("1000.1", "999")])
def test_node_ready_accepts_a_driver_at_least_the_minimum(tmp_path, driver, minimum):
    ran = run_node_ready(tmp_path, driver, minimum)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count(driver) == 2


@pytest.mark.parametrize("driver, minimum", [("535.230.02", "570"), ("570.124.06", "570.172"), ("99.1", "570")])
def test_node_ready_names_the_found_and_the_needed_driver(tmp_path, driver, minimum):
    ran = run_node_ready(tmp_path, driver, minimum)
    assert ran.returncode == 1
    assert (f"the NVIDIA driver is {driver}, but vllm/vllm-openai:v0.11.0 needs {minimum} or newer "
            "(qwen:serving.minDriverVersion)") in ran.stderr
    assert ran.stdout == ""


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
    assert err.value.problems == ["qwen:serving.minDriverVersion: 'r570' is not an NVIDIA driver version such as 570 or 570.172.08"]


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


def test_a_failure_shows_only_this_runs_log_lines(tmp_path):
    (tmp_path / "ray-head.log").write_text("=== an earlier run\nERROR: an old failure, fixed since\n")
    ran = failing_step(tmp_path, 'echo "starting ray"\nfail "the head did not answer"\n')
    assert ran.returncode == 1
    assert "ERROR: the head did not answer" in ran.stderr and "starting ray" in ran.stderr
    assert "an old failure" not in ran.stderr and "an earlier run" not in ran.stderr
    assert "an old failure" in (tmp_path / "ray-head.log").read_text()  # the log itself keeps every run


def test_the_shown_lines_are_capped(tmp_path):
    ran = failing_step(tmp_path, 'for i in $(seq 1 100); do echo "line $i"; done\nfail "broke"\n')
    shown = [line for line in ran.stderr.splitlines() if line.startswith("line ")]
    assert shown == [f"line {i}" for i in range(62, 101)]  # 40 lines: 39 of them and the ERROR line
    assert ran.stderr.rstrip().splitlines()[-1] == "ERROR: broke"


def test_a_first_run_without_a_log_shows_its_lines(tmp_path):
    ran = failing_step(tmp_path, 'echo "first"\nfail "broke"\n')
    assert "first" in ran.stderr and "step 'ray-head' failed on host 'gpu-0' (exit 1)" in ran.stderr
