"""Fixtures for running the step scripts in a sandbox host (tests/sandbox.py) with the stand-ins."""

from __future__ import annotations

import subprocess

import pytest

import cloudinit
from tests.sandbox import Sandbox

IMAGE = "vllm/vllm-openai:v0.11.0"
TOOLKIT_ORIGIN = "https://nvidia.github.io"
ARMORED_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBFsandbox\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.fixture
def sandbox(tmp_path) -> Sandbox:
    box = Sandbox(tmp_path)
    box.path("/var/lib/docker").mkdir(parents=True)  # docker.io is installed on every node
    box.set_state(http={TOOLKIT_ORIGIN: {"paths": {"/libnvidia-container/gpgkey": {"status": 200, "body": ARMORED_KEY}},
                                         "default_status": 200}},
                  units={"docker.service": {"enabled": True, "active": "active", "n_restarts": 0}},
                  apt={"installed": {"nvidia-container-toolkit": "1.17.8-1"}})
    return box


def gpu_node_document(aliyun: bool = False) -> str:
    if aliyun:
        return cloudinit.gpu_node(nvidia_driver_package="nvidia-headless-570-server",
                                  nas=cloudinit.NasMount("0a1b2c-xyz.cn-hangzhou.nas.aliyuncs.com", "/mnt"))
    return cloudinit.gpu_node()


def assert_step_failed(result: subprocess.CompletedProcess, step: str, host: str, *shown: str) -> None:
    """A failed step: nothing on stdout, the step and host named, the given lines on stderr."""
    assert result.returncode != 0, result.stderr
    assert result.stdout == ""
    assert f"step '{step}' failed on host '{host}'" in result.stderr, result.stderr
    for line in shown:
        assert line in result.stderr, f"{line!r} not in:\n{result.stderr}"
