"""The GPU node's first boot: node_bootstrap.sh with install_container_toolkit.sh,
install_nvidia_driver.sh and mount_nas.sh, from the real cloud-init documents."""

import json

import pytest

from tests.steps.conftest import TOOLKIT_ORIGIN, gpu_node_document

TOOLKIT = {"nvidia-container-toolkit": "1.17.8-1", "nvidia-container-toolkit-base": "1.17.8-1",
           "libnvidia-container-tools": "1.17.8-1", "libnvidia-container1": "1.17.8-1"}


@pytest.fixture
def fresh(sandbox):
    """A node as cloud-init leaves it before runcmd: docker installed, no toolkit, no driver."""
    sandbox.set_state(apt={"installed": {}}, docker={"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc"]},
                      driver={"loaded": False, "version": "570.172.08"})
    return sandbox


def test_azure_node_gets_the_pinned_toolkit_as_docker_runtime_and_the_prefetch_path_unit(fresh):
    fresh.install_cloud_config(gpu_node_document())
    result = fresh.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert result.returncode == 0, result.stderr
    state = fresh.state()
    assert state["apt"]["installed"] == TOOLKIT  # and no driver: the Azure extension installs it
    assert "nvidia" in state["docker"]["runtimes"]
    assert json.loads(fresh.read("/etc/docker/daemon.json"))["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert fresh.read("/etc/apt/sources.list.d/nvidia-container-toolkit.list").startswith(
        "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /")
    assert fresh.exists("/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg")
    assert state["units"]["qwen-prefetch.path"] == {"enabled": True, "active": "active", "n_restarts": 0,
                                                    "journal": ["Started qwen-prefetch.path."]}
    assert not state["driver"]["loaded"] and state["mounts"] == {}
    assert fresh.exists("/var/lib/qwen/bootstrap-done")
    # a second boot script run keeps the installed toolkit: no apt at all
    apt_calls = len(fresh.calls("apt-get"))
    assert fresh.run_file("/opt/qwen/bin/node-bootstrap.sh").returncode == 0
    assert len(fresh.calls("apt-get")) == apt_calls


def test_aliyun_node_also_installs_and_loads_the_driver_and_mounts_the_nas(fresh):
    fresh.install_cloud_config(gpu_node_document(aliyun=True))
    result = fresh.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert result.returncode == 0, result.stderr
    state = fresh.state()
    assert {"nvidia-headless-570-server", "nvidia-utils-570-server"} <= set(state["apt"]["installed"])
    assert any(p.startswith("linux-headers-") for p in state["apt"]["installed"])
    assert state["driver"]["loaded"]
    assert state["mounts"] == {"/mnt": "0a1b2c-xyz.cn-hangzhou.nas.aliyuncs.com:/"}
    assert "GPU 0: NVIDIA A100 80GB PCIe" in result.stdout + result.stderr
    assert fresh.exists("/var/lib/qwen/bootstrap-done")
    # idempotent: the loaded driver is not installed again
    installs = [c for c in fresh.calls("apt-get") if "install" in c]
    assert fresh.run_file("/opt/qwen/bin/install-nvidia-driver.sh").returncode == 0
    assert [c for c in fresh.calls("apt-get") if "install" in c] == installs


def test_an_unreachable_toolkit_repository_stops_the_bootstrap(fresh):
    fresh.set_state(http={TOOLKIT_ORIGIN: {"blocked": True}})
    fresh.install_cloud_config(gpu_node_document())
    result = fresh.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert result.returncode != 0
    assert "curl: (28)" in result.stderr
    assert "nvidia-container-toolkit" not in fresh.state()["apt"]["installed"]
    assert not fresh.exists("/var/lib/qwen/bootstrap-done")


def test_a_mirror_without_the_pinned_version_stops_the_bootstrap(fresh):
    fresh.set_state(apt={"installed": {}, "toolkit_versions": ["1.17.7-1"]})
    fresh.install_cloud_config(gpu_node_document())
    result = fresh.run_file("/opt/qwen/bin/install-container-toolkit.sh")
    assert result.returncode != 0 and "Version '1.17.8-1' for 'nvidia-container-toolkit' was not found" in result.stderr
    assert "nvidia" not in fresh.state()["docker"]["runtimes"]


def test_an_older_toolkit_is_upgraded_to_the_pinned_version(fresh):
    fresh.set_state(apt={"installed": {"nvidia-container-toolkit": "1.16.2-1"}})
    fresh.install_cloud_config(gpu_node_document())
    assert fresh.run_file("/opt/qwen/bin/install-container-toolkit.sh").returncode == 0
    assert fresh.state()["apt"]["installed"]["nvidia-container-toolkit"] == "1.17.8-1"


def test_a_driver_package_the_archive_lacks_fails_without_a_marker(fresh):
    fresh.install_cloud_config(gpu_node_document(aliyun=True))
    fresh.write("/etc/qwen/node.env",
                fresh.read("/etc/qwen/node.env").replace("nvidia-headless-570-server", "nvidia-headless-570"))
    result = fresh.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert result.returncode != 0 and "Unable to locate package nvidia-headless-570" in result.stderr
    assert not fresh.state()["driver"]["loaded"]
    assert not fresh.exists("/var/lib/qwen/bootstrap-done")
