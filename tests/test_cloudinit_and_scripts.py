"""Every cloud-init document passes the real `cloud-init schema`; every shell script passes shellcheck;
the scripts' parsing and verification logic runs on fixtures. The scripts themselves run end to end
against the stand-ins in tests/steps/."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import cloudinit
from components.remote import SCRIPTS_DIR as STEP_SCRIPTS
from tests.harness import FIXTURES, ROOT

DOCUMENTS = {
    "azure-gpu-node": lambda: cloudinit.gpu_node(),
    "aliyun-gpu-node": lambda: cloudinit.gpu_node(
        nvidia_driver_package="nvidia-headless-570-server", nas=cloudinit.NasMount("x.nas.aliyuncs.com", "/mnt")),
    "aliyun-downloader": lambda: cloudinit.downloader_node(
        model_id="Qwen/Qwen2.5-72B-Instruct", model_revision="master", model_dir="/mnt/models/Qwen2.5-72B-Instruct",
        modelscope_version="1.31.0", nas=cloudinit.NasMount("x.nas.aliyuncs.com", "/mnt")),
}

SHELL_SCRIPTS = sorted([*STEP_SCRIPTS.glob("*.sh"), *cloudinit.SCRIPTS_DIR.glob("*.sh"), *(ROOT / ".ci").glob("run")])


def require(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is not installed (apt-get install {tool}); .ci/run installs it"
    return path


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_cloud_config_schema(name, tmp_path):
    require("cloud-init")
    text = DOCUMENTS[name]()
    assert text.startswith("#cloud-config\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_documents_write_every_script_they_run(name):
    doc = yaml.safe_load(DOCUMENTS[name]())
    paths = {f["path"] for f in doc["write_files"]}
    assert doc["runcmd"] == [["/opt/qwen/bin/node-bootstrap.sh"]]
    assert "/opt/qwen/bin/node-bootstrap.sh" in paths
    for f in doc["write_files"]:
        for called in re.findall(r"/opt/qwen/bin/[\w.-]+", f["content"]):
            assert called in paths, f"{f['path']} calls {called}, which is not written"
    assert "apt-daily.timer" in doc["bootcmd"][0]  # no background apt while drivers install


def test_gpu_documents_start_the_prefetch_from_its_settings_file():
    for name in ("azure-gpu-node", "aliyun-gpu-node"):
        doc = yaml.safe_load(DOCUMENTS[name]())
        units = {f["path"]: f["content"] for f in doc["write_files"] if f["path"].startswith("/etc/systemd/")}
        assert "PathExists=/etc/qwen/prefetch.env" in units["/etc/systemd/system/qwen-prefetch.path"]
        assert "RemainAfterExit=yes" in units["/etc/systemd/system/qwen-prefetch.service"]
        bootstrap = next(f["content"] for f in doc["write_files"] if f["path"] == "/opt/qwen/bin/node-bootstrap.sh")
        # the prefetch may start before the driver install, never before docker
        assert (bootstrap.index("enable --now docker") < bootstrap.index("qwen-prefetch.path")
                < bootstrap.index("install-nvidia-driver"))


def test_azure_document_leaves_the_driver_to_the_extension():
    doc = yaml.safe_load(DOCUMENTS["azure-gpu-node"]())
    env = next(f for f in doc["write_files"] if f["path"] == "/etc/qwen/node.env")["content"]
    assert "INSTALL_NVIDIA_DRIVER=0" in env and "mounts" not in doc


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    require("shellcheck")
    result = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_step_scripts_bound_every_wait():
    for script in STEP_SCRIPTS.glob("*.sh"):
        text = script.read_text()
        assert "sleep infinity" not in text
        if "cloud-init status --wait" in text:
            assert "timeout " in text.split("cloud-init status --wait")[0].splitlines()[-1], script.name


def fake_docker(tmp_path: Path, ray_status: str) -> dict:
    """A PATH where `docker exec qwen-ray ray status` (and nothing else) prints a fixture."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    # answers only the call ray_wait_gpus.sh makes, in `ray status`' real format
    docker.write_text(f'#!/usr/bin/env bash\n[ "$*" = "exec qwen-ray ray status" ] || exit 1\ncat {ray_status}\n')
    docker.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("fixture_name, gpus", [("ray_status_1node.txt", "2"), ("ray_status_2nodes.txt", "4")])
def test_ray_wait_gpus_script_reads_ray_status(tmp_path, fixture_name, gpus):
    body = (STEP_SCRIPTS / "ray_wait_gpus.sh").read_text()
    probe = body.split("wait_until")[0] + 'ray_gpu_total\n'
    result = subprocess.run(["bash", "-c", probe], env={**fake_docker(tmp_path, FIXTURES / fixture_name), "RAY_RESOURCE": "GPU"},
                            capture_output=True, text=True)
    assert result.stdout.strip() == gpus, result.stderr


def test_modelscope_verification(tmp_path):
    sys.path.insert(0, str(cloudinit.SCRIPTS_DIR))
    try:
        import modelscope_fetch as fetch
    finally:
        sys.path.pop(0)
    listing = [
        {"Path": "config.json", "Size": 5, "Type": "blob"},
        {"Path": "model-00001-of-00002.safetensors", "Size": 10, "Type": "blob"},
        {"Path": "sub", "Size": 0, "Type": "tree"},
    ]
    files = fetch.expected_files(listing)
    assert files == {"config.json": 5, "model-00001-of-00002.safetensors": 10}
    (tmp_path / "config.json").write_bytes(b"12345")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"123")
    assert fetch.find_problems(str(tmp_path), files) == ["model-00001-of-00002.safetensors: 3 bytes, expected 10"]
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"1234567890")
    assert fetch.find_problems(str(tmp_path), files) == []
    summary = fetch.write_marker(str(tmp_path), "Qwen/X", "master", files)
    assert json.loads((tmp_path / fetch.MARKER).read_text()) == summary == {
        "model": "Qwen/X", "revision": "master", "files": 2, "bytes": 15}


@pytest.mark.parametrize("name, limit", [("azure-gpu-node", 65535), ("aliyun-gpu-node", 32768),
                                         ("aliyun-downloader", 32768)])
def test_documents_fit_the_clouds_user_data_limits(name, limit):
    # Azure customData: 64 KiB base64-encoded; Aliyun UserData: 32 KiB (counted here after base64,
    # the stricter reading).
    import base64

    assert len(base64.b64encode(DOCUMENTS[name]().encode())) <= limit
