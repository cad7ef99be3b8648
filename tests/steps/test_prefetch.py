"""The prefetch: prefetch_configure.sh (the step that hands over the settings), prefetch.sh (the
service: image pull, disk room) and hf_download.py (the weights, inside the image, against the
Hugging Face stand-in)."""

import json
import subprocess

import pytest

from tests.steps.conftest import IMAGE, gpu_node_document

MODEL = "Qwen/Qwen2.5-14B-Instruct"
MODEL_ROOT = "/var/lib/qwen/models"
MODEL_DIR = f"{MODEL_ROOT}/Qwen2.5-14B-Instruct"
MARKER = f"{MODEL_DIR}/.qwen-download-complete"
FILES = {"config.json": 663, "model-00001-of-00002.safetensors": 5000, "model-00002-of-00002.safetensors": 2500}
SETTINGS = {"IMAGE": IMAGE, "IMAGE_DISK_GB": "30", "PREFETCH_MODEL": "1", "MODEL_ID": MODEL, "MODEL_REVISION": "main",
            "MODEL_ROOT": MODEL_ROOT, "MODEL_DIR": MODEL_DIR, "PRUNE_IMAGES": "1"}


@pytest.fixture
def node(sandbox):
    sandbox.install_cloud_config(gpu_node_document())
    sandbox.set_state(hub={MODEL: {"main": {"sha": "cf98f3b3bbb457ad9e2bb7baf9a0125b6b88caa8", "files": FILES}}},
                      units={"qwen-prefetch.path": {"enabled": True, "active": "active"}})
    return sandbox


def configure(box, **changes):
    return box.run_step("prefetch", "prefetch_configure.sh", {**SETTINGS, **changes}, host="gpu-1")


def prefetch(box):
    return box.run_file("/opt/qwen/bin/prefetch.sh")


# ---- prefetch_configure.sh --------------------------------------------------------------------

def test_configure_writes_settings_that_parse_back_even_with_shell_special_characters(node):
    odd = {"MODEL_DIR": "/var/lib/qwen/models/it's a $dir `x` \"q\"", "MODEL_REVISION": "refs/pr/1;rm -rf /"}
    result = configure(node, **odd)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert node.mode("/etc/qwen/prefetch.env") == 0o644
    parsed = subprocess.run(["bash", "-c",
                             f'set -u; . {node.path("/etc/qwen/prefetch.env")}; '
                             'printf "%s\\n" "$MODEL_DIR" "$MODEL_REVISION" "$IMAGE"'],
                            capture_output=True, text=True, env={})
    assert parsed.stdout.splitlines() == [odd["MODEL_DIR"], odd["MODEL_REVISION"], IMAGE]


def test_configure_restarts_the_prefetch_only_on_a_change(node):
    assert configure(node).returncode == 0
    restarts = [c for c in node.calls("systemctl") if c[:1] == ["restart"]]
    assert restarts == [["restart", "--no-block", "qwen-prefetch.service"]]
    again = configure(node)
    assert again.returncode == 0 and "prefetch settings unchanged" in again.stderr
    assert [c for c in node.calls("systemctl") if c[:1] == ["restart"]] == restarts
    bumped = configure(node, IMAGE="vllm/vllm-openai:v0.11.1")
    assert bumped.returncode == 0
    calls = node.calls("systemctl")
    assert calls[-3:] == [["reset-failed", "qwen-prefetch.service", "qwen-prefetch.path"], ["start", "qwen-prefetch.path"],
                          ["restart", "--no-block", "qwen-prefetch.service"]]
    assert "IMAGE=vllm/vllm-openai:v0.11.1\n" in node.read("/etc/qwen/prefetch.env")


def test_configure_before_cloud_init_enabled_the_path_unit_leaves_the_start_to_it(node):
    node.set_state(units={"qwen-prefetch.path": {"enabled": False, "active": "inactive"}})
    assert configure(node).returncode == 0
    assert node.exists("/etc/qwen/prefetch.env")
    assert not [c for c in node.calls("systemctl") if c[:1] in (["restart"], ["start"])]


def test_configure_restarts_a_failed_prefetch_with_unchanged_settings(node):
    assert configure(node).returncode == 0
    node.set_state(units={"qwen-prefetch.path": {"enabled": True, "active": "active"},
                          "qwen-prefetch.service": {"enabled": False, "active": "failed", "start_limit_hit": True}})
    result = configure(node)
    assert result.returncode == 0 and "unchanged" not in result.stderr
    assert node.state()["units"]["qwen-prefetch.service"]["active"] == "active"


# ---- prefetch.sh and hf_download.py -----------------------------------------------------------

def test_prefetch_pulls_the_image_and_downloads_verified_weights(node):
    assert configure(node).returncode == 0
    result = prefetch(node)
    assert result.returncode == 0, result.stderr
    assert IMAGE in node.state()["images"]
    for path, size in FILES.items():
        assert node.path(f"{MODEL_DIR}/{path}").stat().st_size == size
    assert json.loads(node.read(MARKER)) == {"model": MODEL, "revision": "main",
                                             "commit": "cf98f3b3bbb457ad9e2bb7baf9a0125b6b88caa8",
                                             "files": 3, "bytes": sum(FILES.values())}
    # the download ran in the image, with the script mounted read-only and the model root writable
    run = next(c for c in node.calls("docker") if c[:1] == ["run"])
    assert "/opt/qwen/bin/hf_download.py:/hf_download.py:ro" in run and f"{MODEL_ROOT}:{MODEL_ROOT}:rslave" in run
    assert node.state()["containers"] == {}  # --rm
    # a second run: image present, marker of this revision: nothing pulled or downloaded
    calls = len(node.calls("docker")), len(node.calls("huggingface_hub"))
    assert prefetch(node).returncode == 0
    assert node.calls("docker")[calls[0]:] == [["info"], ["image", "inspect", IMAGE]]
    assert len(node.calls("huggingface_hub")) == calls[1]


def test_prefetch_of_a_new_revision_replaces_the_marker(node):
    node.write(MARKER, json.dumps({"model": MODEL, "revision": "v0"}))
    node.set_state(hub={MODEL: {"v2": {"sha": "a" * 40, "files": {**FILES, "config.json": 700}}}})
    assert configure(node, MODEL_REVISION="v2").returncode == 0
    assert prefetch(node).returncode == 0
    assert json.loads(node.read(MARKER))["revision"] == "v2"
    assert node.path(f"{MODEL_DIR}/config.json").stat().st_size == 700


def test_a_short_download_leaves_no_marker(node):
    node.set_state(hub={MODEL: {"main": {"files": FILES, "truncate": ["model-00001-of-00002.safetensors"]}}})
    assert configure(node).returncode == 0
    result = prefetch(node)
    assert result.returncode != 0
    assert "incomplete download, missing or short: model-00001-of-00002.safetensors" in result.stderr
    assert not node.exists(MARKER)


def test_a_stale_marker_is_removed_before_a_failing_download(node):
    node.write(MARKER, json.dumps({"model": MODEL, "revision": "v0"}))
    node.set_state(hub={MODEL: {}})  # the revision is unknown to the hub
    assert configure(node).returncode == 0
    assert prefetch(node).returncode != 0
    assert not node.exists(MARKER)


def test_an_unknown_image_fails_the_prefetch(node):
    assert configure(node, IMAGE="vllm/vllm-openai:v9").returncode == 0
    result = prefetch(node)
    assert result.returncode != 0 and "manifest unknown" in result.stderr
    assert node.state()["images"] == {}


def test_prefetch_without_the_model_only_pulls(node):
    assert configure(node, PREFETCH_MODEL="0").returncode == 0
    assert prefetch(node).returncode == 0
    assert IMAGE in node.state()["images"] and not node.exists(MODEL_DIR)


@pytest.mark.parametrize("free_gb, prunes", [(12, True), (300, False)])
def test_prefetch_makes_room_for_a_new_image_only_when_the_disk_is_short(node, free_gb, prunes):
    node.set_state(images={IMAGE: {"Id": "sha256:old", "RepoTags": [IMAGE]}}, disk_free_gb={"/var/lib/docker": free_gb})
    assert node.run("docker run -d --name qwen-ray --restart unless-stopped --network host --entrypoint /bin/bash "
                    f"{IMAGE} -c 'ray start --block --head --port=6379 --num-gpus=2'").returncode == 0
    new = "vllm/vllm-openai:v0.11.1"
    node.set_state(registry={"reachable": True, "images": [IMAGE, new]})
    assert configure(node, IMAGE=new, PREFETCH_MODEL="0").returncode == 0
    assert prefetch(node).returncode == 0
    state = node.state()
    assert new in state["images"]
    assert (IMAGE in state["images"]) is not prunes
    assert ("qwen-ray" in state["containers"]) is not prunes
    docker = node.calls("docker")
    if prunes:
        assert docker.index(["image", "prune", "-af"]) < docker.index(["pull", new])
