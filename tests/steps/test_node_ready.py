"""node_ready.sh: cloud-init and the bootstrap done, the GPUs visible, the driver new enough for the
image, docker's nvidia runtime, the image pulled by the prefetch (one retry of a failed prefetch),
the GPUs seen from a container."""

import pytest

from tests.steps.conftest import IMAGE, assert_step_failed, gpu_node_document, nvidia_node_ready_env

ENV = {"EXPECTED_GPUS": "2", "IMAGE": IMAGE, "CLOUD_INIT_TIMEOUT": "60", "GPU_TIMEOUT": "600", "IMAGE_PULL_TIMEOUT": "600",
       **nvidia_node_ready_env(2, "570")}
CSV = ("0, NVIDIA A100 80GB PCIe, 81920 MiB, 570.172.08\n"
       "1, NVIDIA A100 80GB PCIe, 81920 MiB, 570.172.08\n")


@pytest.fixture
def node(sandbox):
    sandbox.install_cloud_config(gpu_node_document())
    sandbox.write("/var/lib/qwen/bootstrap-done", "")
    sandbox.set_state(images={IMAGE: {"Id": "sha256:1", "RepoTags": [IMAGE]}},
                      units={"qwen-prefetch.path": {"enabled": True, "active": "active"},
                             "qwen-prefetch.service": {"enabled": False, "active": "active"}})
    return sandbox


def ready(box, **changes):
    return box.run_step("node-ready", "node_ready.sh", {**ENV, **changes}, host="vm-qwen-nc48")


def test_ready_node_prints_its_gpus(node):
    result = ready(node)
    assert result.returncode == 0, result.stderr
    assert result.stdout == CSV
    assert ["run", "--rm", "--gpus", "all", "--entrypoint", "nvidia-smi", IMAGE, "-L"] in node.calls("docker")
    assert node.state()["containers"] == {}
    before = {k: v for k, v in node.state().items() if k != "tick"}
    again = ready(node)
    assert again.returncode == 0 and again.stdout == CSV
    assert {k: v for k, v in node.state().items() if k != "tick"} == before


@pytest.mark.parametrize("found, needed", [("535.247.01", "570"), ("570.124.06", "570.133"), ("570.172.08", "570.172.9"),
                                           ("99.1", "570")])
def test_a_driver_older_than_the_image_needs_fails_naming_both(node, found, needed):
    node.set_state(images=node.state()["images"], units=node.state()["units"], driver={"loaded": True, "version": found})
    result = ready(node, MIN_DRIVER_VERSION=needed)
    assert_step_failed(result, "node-ready", "vm-qwen-nc48",
                       f"ERROR: the NVIDIA driver is {found}, but {IMAGE} needs {needed} or newer "
                       "(qwen:serving.minDriverVersion)")
    assert not [c for c in node.calls("docker") if c[:1] == ["run"]]  # before any container


@pytest.mark.parametrize("found, needed", [("570.172.08", "570.172.08"), ("570.172.08", "570"), ("580.65.06", "570.172"),
                                           ("1000.1", "570")])
def test_a_driver_as_new_or_newer_passes(node, found, needed):
    node.set_state(images=node.state()["images"], units=node.state()["units"], driver={"loaded": True, "version": found})
    result = ready(node, MIN_DRIVER_VERSION=needed)
    assert result.returncode == 0, result.stderr
    assert result.stdout == CSV.replace("570.172.08", found)


def test_waits_for_the_driver_extension_to_show_the_gpus(node):
    node.set_state(gpus=[{"name": "NVIDIA A100 80GB PCIe", "memory_mib": 81920}],
                   driver={"loaded": False, "version": "570.172.08"},
                   events=[{"tick": 1, "set": ["driver", "loaded"], "value": True},
                           {"tick": 3, "set": ["gpus"], "value": [{"name": "NVIDIA A100 80GB PCIe", "memory_mib": 81920}] * 2}])
    result = ready(node)
    assert result.returncode == 0, result.stderr
    assert len(node.calls("sleep")) == 3 and result.stdout == CSV


def test_too_few_gpus_time_out_showing_nvidia_smi(node):
    node.set_state(gpus=[{"name": "NVIDIA A100 80GB PCIe", "memory_mib": 81920}])
    result = ready(node, GPU_TIMEOUT="0")
    assert_step_failed(result, "node-ready", "vm-qwen-nc48",
                       "ERROR: timed out after 0s waiting for the host to show 2 NVIDIA devices",
                       "NVIDIA A100 80GB PCIe")


def test_cloud_init_failure_fails(node):
    node.set_state(cloud_init={"status": "error"})
    result = ready(node)
    assert_step_failed(result, "node-ready", "vm-qwen-nc48", "ERROR: cloud-init did not finish (cloud-init status exit 1)")


def test_a_missing_bootstrap_marker_fails(node):
    node.path("/var/lib/qwen/bootstrap-done").unlink()
    result = ready(node)
    assert_step_failed(result, "node-ready", "vm-qwen-nc48", "the node bootstrap did not finish")


def test_docker_without_the_nvidia_runtime_fails(node):
    node.set_state(docker={"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc"]})
    result = ready(node)
    assert_step_failed(result, "node-ready", "vm-qwen-nc48",
                       "docker cannot hand the devices to containers: install the NVIDIA container toolkit")


def test_waits_for_the_prefetch_to_pull_the_image(node):
    node.set_state(images={}, events=[{"tick": 2, "set": ["images", IMAGE], "value": {"Id": "sha256:1", "RepoTags": [IMAGE]}}])
    result = ready(node)
    assert result.returncode == 0, result.stderr
    assert len(node.calls("sleep")) == 2


def test_a_failed_prefetch_gets_one_more_chance(node):
    node.set_state(images={}, units={"qwen-prefetch.path": {"enabled": True, "active": "active"},
                                     "qwen-prefetch.service": {"enabled": False, "active": "failed", "start_limit_hit": True}},
                   events=[{"tick": 1, "set": ["images", IMAGE], "value": {"Id": "sha256:1", "RepoTags": [IMAGE]}}])
    result = ready(node)
    assert result.returncode == 0, result.stderr
    assert "the prefetch service had failed: starting it again" in result.stderr
    assert ["restart", "--no-block", "qwen-prefetch.service"] in node.calls("systemctl")


def test_a_prefetch_that_fails_again_ends_the_step_with_its_journal(node):
    units = {"qwen-prefetch.path": {"enabled": True, "active": "active"},
             "qwen-prefetch.service": {"enabled": False, "active": "failed", "on_start": "failed",
                                       "journal": ["Error response from daemon: manifest unknown"]}}
    node.set_state(images={}, units=units)
    result = ready(node)
    assert_step_failed(result, "node-ready", "vm-qwen-nc48", "ERROR: the prefetch service failed",
                       "Error response from daemon: manifest unknown")
    assert len([c for c in node.calls("systemctl") if c[:1] == ["restart"]]) == 1


def test_an_image_that_never_arrives_times_out(node):
    node.set_state(images={})
    result = ready(node, IMAGE_PULL_TIMEOUT="0")
    assert_step_failed(result, "node-ready", "vm-qwen-nc48", f"waiting for the image {IMAGE} (pulled by qwen-prefetch)")


def test_a_container_that_cannot_see_the_gpus_fails(node):
    node.set_state(images=node.state()["images"], units=node.state()["units"],
                   docker={"daemon": "running", "runtimes": ["runc", "nvidia"], "gpu_passthrough": False})
    result = ready(node)
    assert_step_failed(result, "node-ready", "vm-qwen-nc48", "ERROR: a container sees 0 devices, expected 2")


def test_a_failed_run_shows_only_this_runs_log_lines(node):
    node.set_state(images=node.state()["images"], units=node.state()["units"], driver={"loaded": True, "version": "535.247.01"})
    first = ready(node)
    assert_step_failed(first, "node-ready", "vm-qwen-nc48", "the NVIDIA driver is 535.247.01")
    node.set_state(driver={"loaded": True, "version": "570.172.08"},
                   docker={"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc"]})
    second = ready(node)
    assert_step_failed(second, "node-ready", "vm-qwen-nc48", "qwen: this run's last lines of /var/log/qwen/node-ready.log",
                       "ERROR: docker cannot hand the devices to containers: install the NVIDIA container toolkit")
    assert "535.247.01" not in second.stderr and second.stderr.count("step node-ready starts") == 1
    log = node.read("/var/log/qwen/node-ready.log")  # the log itself keeps every run
    assert "535.247.01" in log and log.count("step node-ready starts") == 2
