"""The downloader node: downloader_bootstrap.sh, mount_nas.sh, modelscope_download.sh with
modelscope_fetch.py (against the ModelScope stand-in), and the wait_model_download.sh step."""

import json

import pytest

import cloudinit
from tests.steps.conftest import assert_step_failed

MODEL = "Qwen/Qwen2.5-72B-Instruct"
MODEL_DIR = "/mnt/models/Qwen2.5-72B-Instruct"
MARKER = f"{MODEL_DIR}/.qwen-download-complete"
FILES = {"config.json": 663, "model-00001-of-00002.safetensors": 4000, "model-00002-of-00002.safetensors": 3000,
         "tokenizer/vocab.json": 120}
UNIT = "qwen-model-download.service"


@pytest.fixture
def downloader(sandbox):
    sandbox.install_cloud_config(cloudinit.downloader_node(
        model_id=MODEL, model_revision="master", model_dir=MODEL_DIR, modelscope_version="1.31.0",
        nas=cloudinit.NasMount("0a1b2c-xyz.cn-hangzhou.nas.aliyuncs.com", "/mnt")))
    sandbox.set_state(hub={MODEL: {"master": {"files": FILES}, "v1.1": {"files": {**FILES, "config.json": 700}}}})
    return sandbox


def test_bootstrap_mounts_the_nas_and_starts_the_download_service(downloader):
    result = downloader.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert result.returncode == 0, result.stderr
    state = downloader.state()
    assert state["mounts"] == {"/mnt": "0a1b2c-xyz.cn-hangzhou.nas.aliyuncs.com:/"}
    assert state["units"][UNIT]["enabled"] and state["units"][UNIT]["active"] == "active"
    assert downloader.exists("/var/lib/qwen/bootstrap-done")
    again = downloader.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert again.returncode == 0, again.stderr
    assert downloader.state()["mounts"] == state["mounts"]


def test_bootstrap_without_the_nas_leaves_no_marker(downloader):
    downloader.set_state(nas={"reachable": False})
    result = downloader.run_file("/opt/qwen/bin/node-bootstrap.sh")
    assert result.returncode != 0
    assert "could not mount the NAS at /mnt" in result.stderr
    assert len(downloader.calls("mount")) == 60  # retried, with a pause between attempts
    assert len(downloader.calls("sleep")) == 60
    assert not downloader.exists("/var/lib/qwen/bootstrap-done")
    assert downloader.state()["units"].get(UNIT, {}).get("active") != "active"


def test_mount_nas_retries_until_the_mount_target_answers(downloader):
    downloader.set_state(nas={"reachable": False}, events=[{"tick": 3, "set": ["nas", "reachable"], "value": True}])
    result = downloader.run_file("/opt/qwen/bin/mount-nas.sh")
    assert result.returncode == 0, result.stderr
    assert len(downloader.calls("mount")) == 4 and downloader.state()["mounts"]["/mnt"]
    assert downloader.run_file("/opt/qwen/bin/mount-nas.sh").returncode == 0
    assert len(downloader.calls("mount")) == 4  # already mounted: not mounted again


def mounted(box):
    box.set_state(mounts={"/mnt": "nas:/"})
    return box


def test_download_installs_modelscope_fetches_verifies_and_marks(downloader):
    result = mounted(downloader).run_file("/opt/qwen/bin/modelscope-download.sh")
    assert result.returncode == 0, result.stderr
    for path, size in FILES.items():
        assert downloader.path(f"{MODEL_DIR}/{path}").stat().st_size == size
    assert json.loads(downloader.read(MARKER)) == {"model": MODEL, "revision": "master", "files": 4,
                                                   "bytes": sum(FILES.values())}
    assert downloader.state()["venvs"] == {"/opt/qwen/modelscope": {"modelscope": "1.31.0"}}
    downloads = downloader.calls("modelscope")
    assert len(downloads) == 4
    # a second run sees the marker of this revision and does nothing
    again = downloader.run_file("/opt/qwen/bin/modelscope-download.sh")
    assert again.returncode == 0 and downloader.calls("modelscope") == downloads
    assert len(downloader.calls("/opt/qwen/modelscope/bin/pip")) == 1


def test_a_short_file_is_caught_by_the_verification_and_no_marker_is_written(downloader):
    downloader.set_state(hub={MODEL: {"master": {"files": FILES, "truncate": ["model-00002-of-00002.safetensors"]}}})
    result = mounted(downloader).run_file("/opt/qwen/bin/modelscope-download.sh")
    assert result.returncode != 0
    assert "model-00002-of-00002.safetensors: 1500 bytes, expected 3000" in result.stderr
    assert not downloader.exists(MARKER)


def test_a_marker_of_another_revision_is_removed_and_the_files_fetched_again(downloader):
    downloader.write(MARKER, json.dumps({"model": MODEL, "revision": "v1.0"}))
    downloader.write("/etc/qwen/node.env",
                     downloader.read("/etc/qwen/node.env").replace("MODEL_REVISION=master", "MODEL_REVISION=v1.1"))
    result = mounted(downloader).run_file("/opt/qwen/bin/modelscope-download.sh")
    assert result.returncode == 0, result.stderr
    assert json.loads(downloader.read(MARKER))["revision"] == "v1.1"
    assert downloader.path(f"{MODEL_DIR}/config.json").stat().st_size == 700


def test_download_refuses_to_write_to_the_disk_without_the_nas(downloader):
    result = downloader.run_file("/opt/qwen/bin/modelscope-download.sh")
    assert result.returncode != 0 and "the NAS is not mounted at /mnt" in result.stderr
    assert not downloader.exists(MODEL_DIR) and downloader.calls("python3") == []


def test_a_modelscope_version_the_index_lacks_fails_the_service(downloader):
    downloader.set_state(pypi={"reachable": True, "modelscope": ["1.30.0"]})
    result = mounted(downloader).run_file("/opt/qwen/bin/modelscope-download.sh")
    assert result.returncode != 0 and "No matching distribution found for modelscope==1.31.0" in result.stderr
    assert not downloader.exists(MARKER)


def test_verify_refuses_an_empty_listing(downloader):
    downloader.set_state(hub={MODEL: {"master": {"files": {}}}})
    result = mounted(downloader).run_file("/opt/qwen/bin/modelscope-download.sh")
    assert result.returncode != 0 and f"the hub lists no files for {MODEL}@master" in result.stderr
    assert not downloader.exists(MARKER)


# ---- the wait-model-download step -------------------------------------------------------------
STEP_ENV = {"MODEL_DIR": MODEL_DIR, "MODEL_REVISION": "master", "DOWNLOAD_TIMEOUT": "600"}


def test_step_waits_for_the_marker_of_its_revision_and_prints_it(downloader):
    summary = {"model": MODEL, "revision": "master", "files": 4, "bytes": 7783}
    downloader.write(MARKER, json.dumps({"model": MODEL, "revision": "v0"}))
    downloader.set_state(units={UNIT: {"enabled": True, "active": "activating", "n_restarts": 1}},
                         events=[{"tick": 2, "write": str(downloader.path(MARKER)), "text": json.dumps(summary)}])
    result = downloader.run_step("wait-model-download", "wait_model_download.sh", STEP_ENV, host="dl")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == summary
    assert "downloaded so far" in result.stderr and "1 restart(s)" in result.stderr
    assert len(downloader.calls("sleep")) == 2
    again = downloader.run_step("wait-model-download", "wait_model_download.sh", STEP_ENV, host="dl")
    assert again.returncode == 0 and json.loads(again.stdout) == summary
    assert len(downloader.calls("sleep")) == 2


def test_step_fails_at_once_when_the_service_failed_and_shows_its_journal(downloader):
    downloader.set_state(units={UNIT: {"enabled": True, "active": "failed", "journal": ["HTTPError: 403 Forbidden"]}})
    result = downloader.run_step("wait-model-download", "wait_model_download.sh", STEP_ENV, host="dl")
    assert_step_failed(result, "wait-model-download", "dl", f"ERROR: {UNIT} failed", "HTTPError: 403 Forbidden")
    assert downloader.calls("sleep") == []


def test_step_times_out_on_a_download_that_does_not_finish(downloader):
    downloader.set_state(units={UNIT: {"enabled": True, "active": "activating"}})
    result = downloader.run_step("wait-model-download", "wait_model_download.sh", {**STEP_ENV, "DOWNLOAD_TIMEOUT": "0"},
                                 host="dl")
    assert_step_failed(result, "wait-model-download", "dl", "ERROR: the download did not finish within 0s")


def test_step_fails_when_cloud_init_failed(downloader):
    downloader.set_state(cloud_init={"status": "error"})
    result = downloader.run_step("wait-model-download", "wait_model_download.sh", STEP_ENV, host="dl")
    assert_step_failed(result, "wait-model-download", "dl", "ERROR: cloud-init did not finish (cloud-init status exit 1)")
