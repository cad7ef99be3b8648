"""node_ready.sh on an Atlas 300I Duo pair (four Ascend 310P3 chips), with tools that print npu-smi's
real formats: the same script as on NVIDIA hosts, driven by the ascend-310p entry's env."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from components.accelerators import ASCEND_310P, ASCEND_VERSION_INFO, node_ready_env
from components.remote import SCRIPTS_DIR
from tests.harness import FIXTURES, fixture

IMAGE = ASCEND_310P.default_image


def run_node_ready(tmp_path: Path, driver: str = "24.1.rc3", arch: str = "amd64", chips_in_container: int = 4,
                   device_files: bool = True) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker.calls"
    tools = {
        "npu-smi": (f'if [ "$*" = "info -m" ]; then cat {FIXTURES / "npu_smi_info_m_300i_duo.txt"}; '
                    f'elif [ "$*" = "info" ]; then cat {FIXTURES / "npu_smi_info_300i_duo.txt"}; else exit 2; fi'),
        # docker run ... --entrypoint npu-smi IMAGE info -m: the chips the container was given
        "docker": (f'echo "$*" >>{calls}; case "$1" in '
                   f'run) awk -v n={chips_in_container} \'NR == 1 || ($4 == "Ascend" && seen++ < n)\' '
                   f'{FIXTURES / "npu_smi_info_m_300i_duo.txt"} ;; '
                   f'image) echo {arch} ;; esac; exit 0'),
        "systemctl": "exit 1",  # is-failed: no
    }
    for tool, body in tools.items():
        (bin_dir / tool).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "bootstrap-done").write_text("")
    version_info = tmp_path / "version.info"
    version_info.write_text(f"Version={driver}\nascendhal_version=7.35.23\n")
    driver_dir = tmp_path / "driver"
    if device_files:
        (driver_dir / "lib64").mkdir(parents=True)
    env = node_ready_env(ASCEND_310P, 4, owned=True, nvidia_minimum="570")
    # The host paths of the driver's files, moved under tmp_path (character devices become files).
    env = {k: v.replace(ASCEND_VERSION_INFO, str(version_info)).replace("/usr/local/Ascend/driver", str(driver_dir))
           .replace("test -c /dev/", f"test -e {tmp_path}/dev/") for k, v in env.items()}
    (tmp_path / "dev").mkdir()
    if device_files:
        for name in ("davinci_manager", "devmm_svm", "hisi_hdc"):
            (tmp_path / "dev" / name).write_text("")
    script = "\n".join((SCRIPTS_DIR / name).read_text() for name in ("common.sh", "accelerator.sh", "node_ready.sh"))
    script = script.replace("/var/log/qwen", str(tmp_path / "log")).replace("/var/lib/qwen/bootstrap-done",
                                                                         str(tmp_path / "bootstrap-done"))
    ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "node-ready", "QWEN_HOST": "atlas-300i",
        "EXPECTED_GPUS": "4", "IMAGE": IMAGE, "CLOUD_INIT_TIMEOUT": "0", "GPU_TIMEOUT": "5", "IMAGE_PULL_TIMEOUT": "5",
        **env})
    return ran, calls.read_text() if calls.exists() else ""


def host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def test_four_chips_ready_print_the_inventory(tmp_path):
    ran, calls = run_node_ready(tmp_path, arch=host_arch())
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == fixture("npu_inventory_310p3.csv")
    run = next(line for line in calls.splitlines() if line.startswith("run "))
    for device in ("/dev/davinci0", "/dev/davinci3", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"):
        assert f"--device {device}" in run
    assert "--gpus" not in run and "--privileged" not in run
    assert f"--entrypoint npu-smi {IMAGE} info -m" in run
    assert "cloud-init" not in ran.stderr  # an owned machine: no cloud-init to wait for


def test_an_old_hdk_driver_is_named(tmp_path):
    ran, _ = run_node_ready(tmp_path, driver="23.0.rc3", arch=host_arch())
    assert ran.returncode == 1
    assert (f"the Ascend driver is 23.0.rc3, but {IMAGE} needs 24.1 or newer (components/accelerators.py); "
            "install the Ascend HDK driver") in ran.stderr


def test_missing_device_files_say_what_to_install(tmp_path):
    ran, _ = run_node_ready(tmp_path, arch=host_arch(), device_files=False)
    assert ran.returncode == 1
    assert "docker cannot hand the devices to containers: the Ascend driver's devices" in ran.stderr


def test_an_image_of_another_architecture_is_refused(tmp_path):
    arch = "arm64" if host_arch() == "amd64" else "amd64"
    ran, _ = run_node_ready(tmp_path, arch=arch)
    assert ran.returncode == 1
    assert f"the image {IMAGE} is built for {arch} and this host is {host_arch()}; use a tag built for" in ran.stderr


def test_a_container_that_sees_fewer_chips_fails(tmp_path):
    ran, _ = run_node_ready(tmp_path, arch=host_arch(), chips_in_container=2)
    assert ran.returncode == 1
    assert "a container sees 2 devices, expected 4" in ran.stderr
