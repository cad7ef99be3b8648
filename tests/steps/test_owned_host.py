"""Machines a team owns, in the sandbox with the stand-ins: host_setup.sh (checks that name what was
found and what is needed, then cloud-init's units and scripts), node_ready.sh on Ascend 310P chips
(npu-smi, the device files), and owned_remove.sh (destroy removes containers, units and files,
keeps weights and images)."""

from __future__ import annotations

import json

import pytest

import cloudinit
from components.accelerators import ASCEND_310P, ASCEND_VERSION_INFO, NVIDIA, driver_hint
from components.host_setup import SERVING_CONTAINERS, files_archive
from components.remote import Removal, render_command
from tests.steps.conftest import IMAGE, assert_step_failed

ASCEND_IMAGE = ASCEND_310P.default_image
MODEL_ROOT = "/var/lib/qwen/models"
MODEL_DIR = f"{MODEL_ROOT}/Qwen2.5-14B-Instruct"
FILES = cloudinit.owned_node_files()
ASCEND_CHIPS = [{"name": "Ascend 310P3", "memory_mb": 44280}] * 4


def setup_env(family=NVIDIA, count=2, image=IMAGE, accelerator="RTX 4090", **changes) -> dict:
    """host-setup's env as components/host_setup.py renders it (the sandbox has no default route: 127.0.0.1)."""
    return {"ACCELERATOR": accelerator, "EXPECTED_GPUS": str(count), "ACCEL_COUNT_COMMAND": family.count_command,
            "ACCEL_DRIVER_VERSION_COMMAND": family.driver_version_command, "MIN_DRIVER_VERSION": family.min_driver_version,
            "DRIVER_HINT": driver_hint(family, owned=True), "ACCEL_RUNTIME_CHECK": family.runtime_check_command,
            "RUNTIME_HINT": family.runtime_hint, "IMAGE": image, "IMAGE_DISK_GB": "30", "MODEL_ROOT": MODEL_ROOT,
            "MODEL_DIR": MODEL_DIR, "MODEL_REVISION": "main", "MODEL_DISK_GB": "30", "PRIVATE_INTERFACE": "",
            "FILES_ARCHIVE": files_archive(FILES), "ENABLE_UNITS": cloudinit.PREFETCH_TRIGGER_UNIT, **changes}


def host_setup(box, **changes):
    return box.run_step("host-setup", "host_setup.sh", setup_env(**changes), host="ws-4090")


@pytest.fixture
def workstation(sandbox):
    """A workstation the team set up: docker with the nvidia runtime, two GPUs, driver 570, systemd."""
    sandbox.set_state(gpus=[{"name": "NVIDIA GeForce RTX 4090", "memory_mib": 24564}] * 2,
                      disk_free_gb={"/": 500})
    return sandbox


def ascend_server(box):
    """An Atlas 300I Duo pair: four 310P3 chips, the driver's devices and files, docker without a GPU runtime."""
    box.set_state(gpus=[], driver={"loaded": False, "version": ""}, npus=ASCEND_CHIPS,
                  docker={"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc"]})
    box.write(ASCEND_VERSION_INFO, "Version=24.1.rc3\nascendhal_version=7.35.23\npackage_version=24.1.rc3\n")
    box.write("/usr/local/Ascend/driver/lib64/libascend_hal.so", "")
    return box


def test_a_ready_workstation_gets_cloud_inits_units_and_scripts(workstation):
    result = host_setup(workstation)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"privateIp": "127.0.0.1", "arch": workstation.run("uname -m").stdout.strip()}
    for spec in FILES:
        assert workstation.read(spec["path"]) == spec["content"], spec["path"]
        assert workstation.mode(spec["path"]) == int(spec["permissions"], 8), spec["path"]
    assert workstation.state()["units"]["qwen-prefetch.path"]["enabled"] is True
    assert workstation.exists("/var/lib/qwen/bootstrap-done")
    assert not workstation.exists("/var/lib/qwen/.host-setup-files")
    assert "NVIDIA GeForce RTX 4090" not in result.stdout  # only the facts JSON on stdout
    again = host_setup(workstation)
    assert again.returncode == 0 and "installed" not in again.stderr  # nothing differs the second time


@pytest.mark.parametrize("driver, shown", [
    ("535.230.02", "the RTX 4090 driver is 535.230.02, the image needs 570 or newer (qwen:serving.minDriverVersion)"),
])
def test_an_old_driver_is_named_with_what_is_needed_and_never_installed(workstation, driver, shown):
    workstation.set_state(driver={"loaded": True, "version": driver})
    result = host_setup(workstation)
    assert_step_failed(result, "host-setup", "ws-4090", shown, "nvidia-driver-570")
    assert workstation.calls("apt-get") == [] and not workstation.exists("/etc/systemd/system/qwen-prefetch.path")


def test_every_problem_is_reported_at_once(workstation):
    workstation.set_state(driver={"loaded": False, "version": "570.172.08"},
                          docker={"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc"]},
                          disk_free_gb={"/": 12})
    result = host_setup(workstation)
    assert_step_failed(result, "host-setup", "ws-4090",
                       "no RTX 4090 driver found, the image needs 570 or newer",
                       "found 0 RTX 4090 device(s), the stack needs 2",
                       "docker cannot hand RTX 4090 devices to containers: install the NVIDIA container toolkit",
                       "12 GB free", "needs 60 GB: image 30 + weights 30")
    assert "(4 problem(s))" in result.stderr


def test_the_image_and_weights_already_there_need_no_disk(workstation):
    workstation.set_state(images={IMAGE: {"Id": "sha256:1", "RepoTags": [IMAGE]}}, disk_free_gb={"/": 1})
    workstation.write(f"{MODEL_DIR}/.qwen-download-complete", json.dumps({"revision": "main"}))
    assert host_setup(workstation).returncode == 0


def test_an_ascend_server_is_checked_through_npu_smi_and_its_devices(sandbox):
    box = ascend_server(sandbox)
    result = box.run_step("host-setup", "host_setup.sh", setup_env(ASCEND_310P, 4, ASCEND_IMAGE, "Ascend 310P3"),
                          host="atlas-300i")
    # The sandbox has no /dev/davinci_manager: docker cannot hand the chips over, and says what to install.
    assert_step_failed(result, "host-setup", "atlas-300i", "docker cannot hand Ascend 310P3 devices to containers",
                       "/dev/davinci_manager")
    # The driver (24.1.rc3 in version.info) and the four chips in npu-smi pass: the devices are the one problem.
    assert "(1 problem(s))" in result.stderr and "Ascend 310P3 driver 24.1.rc3 (needs 24.1 or newer)" in result.stderr


def test_an_old_ascend_driver(sandbox):
    box = ascend_server(sandbox)
    box.write(ASCEND_VERSION_INFO, "Version=23.0.rc3\n")
    result = box.run_step("host-setup", "host_setup.sh", setup_env(ASCEND_310P, 4, ASCEND_IMAGE, "Ascend 310P3"),
                          host="atlas-300i")
    assert_step_failed(result, "host-setup", "atlas-300i",
                       "the Ascend 310P3 driver is 23.0.rc3, the image needs 24.1 or newer (components/accelerators.py)",
                       "Ascend-hdk-310p-npu-driver")


def container(name: str) -> dict:
    """A running container as the docker stand-in keeps it."""
    return {"Name": f"/{name}", "State": {"Running": True, "Status": "running"}, "RestartCount": 0,
            "Config": {"Image": IMAGE, "Entrypoint": None, "Cmd": None, "Labels": {}, "Env": []},
            "HostConfig": {"DeviceRequests": [], "RestartPolicy": {"Name": "unless-stopped"}}, "Mounts": [],
            "process": {}, "logs": []}


def test_destroy_removes_what_the_program_started_and_keeps_weights_and_images(workstation):
    assert host_setup(workstation).returncode == 0
    workstation.write("/etc/qwen/prefetch.env", "IMAGE=x\n")
    workstation.write("/etc/qwen/secrets/api-key", "k", 0o600)
    workstation.write(f"{MODEL_DIR}/.qwen-download-complete", json.dumps({"revision": "main"}))
    workstation.set_state(images={IMAGE: {"Id": "sha256:1", "RepoTags": [IMAGE]}, "team/other:1": {"Id": "sha256:2"}},
                          containers={name: container(name) for name in (*SERVING_CONTAINERS, "team-db")})
    removal = Removal(containers=SERVING_CONTAINERS, units=("qwen-prefetch.path", "qwen-prefetch.service"),
                      paths=("/opt/qwen/bin/prefetch.sh", "/opt/qwen/bin/hf_download.py", "/etc/qwen",
                             "/var/lib/qwen/bootstrap-done"))
    result = workstation.run(render_command("host-setup-remove", "ws-4090", "owned_remove.sh", removal.env()))
    assert result.returncode == 0, result.stderr
    state = workstation.state()
    assert set(state["containers"]) == {"team-db"}
    assert set(state["images"]) == {IMAGE, "team/other:1"}
    assert not workstation.exists("/etc/systemd/system/qwen-prefetch.path")
    assert not workstation.exists("/etc/qwen/secrets/api-key") and not workstation.exists("/opt/qwen/bin/prefetch.sh")
    assert workstation.exists(f"{MODEL_DIR}/.qwen-download-complete")
    again = workstation.run(render_command("host-setup-remove", "ws-4090", "owned_remove.sh", removal.env()))
    assert again.returncode == 0 and "removed" not in again.stderr  # idempotent


def test_removal_refuses_paths_that_are_not_the_programs(workstation):
    result = workstation.run(render_command("x-remove", "ws-4090", "owned_remove.sh",
                                            Removal(paths=("/var/lib/qwen/models",)).env()))
    assert_step_failed(result, "x-remove", "ws-4090", "refusing to remove /var/lib/qwen/models")
