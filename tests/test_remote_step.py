"""render_command and remote_step alone: the rendered shell line, the secret on stdin, the triggers."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pulumi
import pytest

from components.remote import (
    DIAL_ERROR_LIMIT,
    SCRIPTS_DIR,
    GpuHost,
    read_script,
    remote_step,
    render_command,
)
from tests.harness import run_pulumi, step_env

TRICKY = "it's a \"quoted\" value with spaces; $(rm -rf /) `id` && echo $HOME\nsecond line"


# The env each helper of accelerator.sh reads, required of a step that calls it.
ACCELERATOR_HELPER_ENV = {
    "accelerator_docker_args": {"DEVICE_ARGS"},  # CONTAINER_ENV may be unset: no env
    "accelerator_count": {"ACCEL_COUNT_COMMAND"},
    "accelerator_inventory": {"ACCEL_INVENTORY_COMMAND"},
}


def required_env(script: str) -> set[str]:
    """Upper-case variables a step script (with common.sh) reads but does not assign itself, and the
    env of the accelerator.sh helpers it calls."""
    body = read_script(script)
    text = read_script("common.sh") + "\n" + body
    referenced = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", text))
    assigned = set(re.findall(r"(?m)^\s*(?:local\s+|export\s+)?([A-Z_][A-Z0-9_]*)=", text + read_script("accelerator.sh")))
    helpers = set().union(*(env for helper, env in ACCELERATOR_HELPER_ENV.items() if re.search(rf"\b{helper}\b", body)))
    return (referenced - assigned - {"SECONDS", "HOME", "PATH"}) | helpers


def split(command: str) -> tuple[list[str], dict[str, str], list[str]]:
    """(prefix words, env assignments, the words from `bash` on) of a rendered command."""
    words = shlex.split(command)
    bash_at = words.index("bash")
    env = dict(w.split("=", 1) for w in words[3:bash_at])
    return words[:3], env, words[bash_at:]


def test_env_round_trips_through_shell_quoting():
    # NUMBER is an int on purpose: callers pass Pulumi-resolved ints, which render as their text.
    env: dict[str, Any] = {"IMAGE": "vllm/vllm-openai:v0.11.0", "TRICKY": TRICKY, "EMPTY": "", "NUMBER": 8000}
    prefix, parsed, tail = split(render_command("ray-head", "gpu-host-0", "ray_start.sh", env))
    assert prefix == ["sudo", "-n", "env"]
    assert parsed == {"IMAGE": "vllm/vllm-openai:v0.11.0", "TRICKY": TRICKY, "EMPTY": "", "NUMBER": "8000",
                      "QWEN_STEP": "ray-head", "QWEN_HOST": "gpu-host-0"}
    assert step_env(render_command("ray-head", "gpu-host-0", "ray_start.sh", env)) == parsed


def test_each_assignment_is_one_shell_word():
    command = render_command("s", "h", "ray_start.sh", {"A": "x y", "B": "'z'"})
    words = shlex.split(command)
    assert "A=x y" in words and "B='z'" in words
    assert "QWEN_STEP=s" in words and "QWEN_HOST=h" in words


def test_step_and_host_are_set_and_cannot_be_overridden_by_env():
    _, parsed, _ = split(render_command("node-ready", "gpu-a", "node_ready.sh",
                                        {"QWEN_STEP": "other", "QWEN_HOST": "elsewhere"}))
    assert parsed["QWEN_STEP"] == "node-ready" and parsed["QWEN_HOST"] == "gpu-a"


def test_common_sh_is_prepended_to_the_script():
    _, _, tail = split(render_command("vllm-health", "gpu-a", "vllm_health.sh", {"PORT": "8000"}))
    assert tail[:2] == ["bash", "-c"]
    body = tail[2]
    common = (SCRIPTS_DIR / "common.sh").read_text()
    accelerator = (SCRIPTS_DIR / "accelerator.sh").read_text()
    script = (SCRIPTS_DIR / "vllm_health.sh").read_text()
    assert body == common + "\n" + accelerator + "\n" + script
    assert body.index("trap qwen_on_exit EXIT") < body.index(script)
    assert tail[3:] == ["vllm-health"]  # $0 names the step
    assert len(tail) == 4


def test_a_step_name_with_spaces_stays_one_word():
    _, parsed, tail = split(render_command("bench seed 1", "host a", "benchmark.sh", {}))
    assert parsed["QWEN_STEP"] == "bench seed 1" and parsed["QWEN_HOST"] == "host a"
    assert tail[-1] == "bench seed 1"


def test_common_sh_needs_step_and_host_and_unknown_scripts_fail():
    assert {"QWEN_STEP", "QWEN_HOST"} <= required_env("wait_cloud_init.sh")
    with pytest.raises(FileNotFoundError):
        render_command("x", "h", "no_such_script.sh", {})


def _host(**kw) -> GpuHost:
    values: dict[str, Any] = dict(name="gpu-h", public_ip="203.0.113.10", private_ip="10.0.0.10", user="ops", private_key="k",
                  gpu_count=2, instance_id="i-abc")
    values.update(kw)
    return GpuHost(**values)


def _program(stdin=None, triggers=None):
    def program():
        parent = pulumi.ComponentResource("test:index:Parent", "p")
        cmd = remote_step("step", step="vllm-serve", host=_host(), script="vllm_start.sh",
                          env={"PORT": pulumi.Output.from_input("8000"), "TRICKY": TRICKY},
                          stdin=stdin, triggers=triggers, parent=parent)
        return {"id": cmd.id}
    return program


def test_remote_step_with_a_secret_sends_it_on_stdin_only():
    run = run_pulumi(_program(stdin="s3cret-key", triggers=["run-7"]))
    cmd = run.one("command:remote:Command")
    assert cmd.parent == run.one("test:index:Parent").urn
    assert "stdin" in cmd.secret_inputs and cmd.inputs["stdin"]["value"] == "s3cret-key"
    assert "s3cret-key" not in cmd.inputs["create"]
    assert {"stdout", "stderr"} <= set(cmd.additional_secret_outputs)
    env = step_env(cmd.inputs["create"])
    assert env == {"PORT": "8000", "TRICKY": TRICKY, "QWEN_STEP": "vllm-serve", "QWEN_HOST": "gpu-h"}
    assert cmd.inputs["triggers"] == ["i-abc", "run-7"]
    assert cmd.inputs["addPreviousOutputInEnv"] is False
    assert "delete" not in cmd.inputs  # destroy must not need to reach an evicted VM
    conn = cmd.inputs["connection"]["value"]
    assert conn["host"] == "203.0.113.10" and conn["user"] == "ops" and conn["privateKey"] == "k"
    assert conn["dialErrorLimit"] == DIAL_ERROR_LIMIT


def test_remote_step_without_a_secret_has_no_stdin_and_plain_outputs():
    run = run_pulumi(_program())
    cmd = run.one("command:remote:Command")
    assert "stdin" not in cmd.inputs
    assert not {"stdout", "stderr"} & set(cmd.additional_secret_outputs)
    assert cmd.inputs["triggers"] == ["i-abc"]


def test_sudo_probe_stops_with_the_step_host_and_fix_before_anything_runs(tmp_path):
    import subprocess

    from components.remote import sudo_probe

    (tmp_path / "sudo").write_text('#!/bin/sh\necho "sudo: a password is required" >&2\nexit 1\n')
    (tmp_path / "sudo").chmod(0o755)
    command = sudo_probe("host-setup", "ws-4090") + render_command("host-setup", "ws-4090", "vllm_health.sh", {})
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert ran.returncode == 1 and ran.stdout == ""
    assert "qwen: step 'host-setup' failed on host 'ws-4090': user " in ran.stderr
    assert 'ALL=(ALL) NOPASSWD: ALL" | sudo tee /etc/sudoers.d/qwen' in ran.stderr
    assert "password is required" not in ran.stderr  # the probe's own sudo is silenced
    assert step_env(command)["QWEN_STEP"] == "host-setup"  # the rendered step still parses after the probe
