"""vllm_start.sh and vllm_health.sh (vLLM on 127.0.0.1 of the host network behind the TLS proxy, the
key in a root-only file mounted into the container and read by common.sh's `sh -c` entrypoint),
against the docker stand-in, which checks `vllm serve` flags against vLLM v0.11.0 and reads the key
through that entrypoint, and the curl stand-in, which answers like vLLM: /v1/* behind the key,
/health not, and only on the address vLLM listens on."""

import json

import pytest

from tests.steps.conftest import IMAGE, assert_step_failed, nvidia_docker_env

KEY = "sk-Kq7'$(touch /var/tmp/qwen-pwned)\"x y"  # shell-special characters: the key is data, never code
MODEL_ROOT = "/var/lib/qwen/models"
MODEL_DIR = f"{MODEL_ROOT}/Qwen2.5-14B-Instruct"
MARKER = f"{MODEL_DIR}/.qwen-download-complete"
START_ENV = {"IMAGE": IMAGE, "MODEL_DIR": MODEL_DIR, "MODEL_REVISION": "main", "MODEL_ROOT": MODEL_ROOT,
             "SERVED_NAME": "Qwen/Qwen2.5-14B-Instruct", "PORT": "8000", "TP": "2", "PP": "1", "MAX_MODEL_LEN": "32768",
             "GPU_MEMORY_UTILIZATION": "0.9", "NODE_IP": "10.10.1.4", "RAY_PORT": "6379",
             "EXTRA_ARGS": "--max-num-seqs\n64", "MODEL_WAIT_TIMEOUT": "600", "EXECUTOR": "ray", "PRUNE_IMAGES": "1",
             **nvidia_docker_env(2, node_ip="10.10.1.4", interface="eth0")}
HEALTH_ENV = {"PORT": "8000", "SERVED_NAME": "Qwen/Qwen2.5-14B-Instruct", "HEALTH_TIMEOUT": "600"}


@pytest.fixture
def head(sandbox):
    sandbox.set_state(images={IMAGE: {"Id": "sha256:1", "RepoTags": [IMAGE]}, "vllm/vllm-openai:v0.10.2": {"Id": "sha256:0"}})
    sandbox.write(MARKER, json.dumps({"model": "Qwen/Qwen2.5-14B-Instruct", "revision": "main"}))
    return sandbox


def start(box, key=KEY, **changes):
    return box.run_step("vllm-start", "vllm_start.sh", {**START_ENV, **changes}, stdin=f"{key}\n", host="vm-qwen-nc48")


def health(box, **changes):
    return box.run_step("vllm-health", "vllm_health.sh", {**HEALTH_ENV, **changes}, host="vm-qwen-nc48")


KEY_FILE, KEY_MOUNT = "/etc/qwen/secrets/api-key", "/run/secrets/qwen-api-key"
KEY_ENTRYPOINT = f'VLLM_API_KEY="$(cat {KEY_MOUNT})" && export VLLM_API_KEY && exec vllm "$@"'


def test_start_runs_vllm_serve_with_the_settings_and_root_only_key_files(head):
    head.write("/etc/qwen/secrets/vllm.env", f"VLLM_API_KEY={KEY}\n", 0o600)  # an earlier version's env file
    result = start(head)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    c = head.container("qwen-vllm")
    assert c["Config"]["Entrypoint"] == ["sh"]
    assert c["Config"]["Cmd"] == ["-c", KEY_ENTRYPOINT, "vllm",
                                  "serve", MODEL_DIR, "--served-model-name", "Qwen/Qwen2.5-14B-Instruct", "--host", "127.0.0.1",
                                  "--port", "8000", "--tensor-parallel-size", "2", "--pipeline-parallel-size", "1",
                                  "--distributed-executor-backend", "ray", "--max-model-len", "32768",
                                  "--gpu-memory-utilization", "0.9", "--max-num-seqs", "64"]
    assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped" and c["State"]["Running"]
    assert {"RAY_ADDRESS=10.10.1.4:6379", "VLLM_HOST_IP=10.10.1.4", "NCCL_SOCKET_IFNAME=eth0",
            "GLOO_SOCKET_IFNAME=eth0"} <= set(c["Config"]["Env"])
    assert not any(e.startswith("VLLM_API_KEY") for e in c["Config"]["Env"])
    assert {(m["Source"], m["Destination"], m["RW"], m["Propagation"]) for m in c["Mounts"]} == {
        (KEY_FILE, KEY_MOUNT, False, "rprivate"), (MODEL_ROOT, MODEL_ROOT, False, "rslave"),
        ("/var/lib/qwen/ray", "/tmp/ray", True, "rprivate")}
    # the process got the key through the entrypoint (the stand-in reads the mounted file)
    assert c["process"]["api_key"] == KEY and c["process"]["host"] == "127.0.0.1"
    assert head.mode("/etc/qwen/secrets") == 0o700
    for name, text in [("api-key", KEY), ("auth-header", f"Authorization: Bearer {KEY}\n")]:
        assert head.read(f"/etc/qwen/secrets/{name}") == text
        assert head.mode(f"/etc/qwen/secrets/{name}") == 0o600
    assert not head.exists("/etc/qwen/secrets/vllm.env") and not head.exists("/etc/qwen/secrets/bench.env")
    assert KEY not in head.all_calls_text()
    assert not head.exists("/var/tmp/qwen-pwned")
    # the old serving image is pruned, the one in use is kept
    assert set(head.state()["images"]) == {IMAGE}


def test_a_second_start_keeps_the_container(head):
    assert start(head).returncode == 0
    first = head.container("qwen-vllm")["Id"]
    again = start(head)
    assert again.returncode == 0 and "vLLM already running with these settings" in again.stderr
    assert head.container("qwen-vllm")["Id"] == first


@pytest.mark.parametrize("change", [{"key": "sk-other"}, {"MODEL_REVISION": "v2"}, {"EXTRA_ARGS": ""}, {"TP": "1"},
                                    {"SERVED_NAME": "qwen"}, {"NODE_IP": "10.10.1.5"}])
def test_a_changed_setting_or_key_replaces_the_container(head, change):
    assert start(head).returncode == 0
    first = head.container("qwen-vllm")["Id"]
    if "MODEL_REVISION" in change:
        head.write(MARKER, json.dumps({"revision": "v2"}))
    key = change.pop("key", KEY)
    assert start(head, key=key, **change).returncode == 0
    assert head.container("qwen-vllm")["Id"] != first


def test_start_waits_for_the_weights_of_its_revision(head):
    head.write(MARKER, json.dumps({"revision": "v1"}))
    head.set_state(images=head.state()["images"],
                   events=[{"tick": 2, "write": str(head.path(MARKER)), "text": json.dumps({"revision": "main"})}])
    result = start(head)
    assert result.returncode == 0, result.stderr
    assert len(head.calls("sleep")) == 2
    run_at = head.all_calls_text().index('"run"')
    assert head.all_calls_text().rindex('"tool": "sleep"') < run_at


def test_start_times_out_without_the_weights_of_its_revision(head):
    head.write(MARKER, json.dumps({"revision": "v1"}))
    head.write("/etc/systemd/system/qwen-prefetch.service", "[Service]\n")
    head.set_state(images=head.state()["images"], units={"qwen-prefetch.service": {
        "active": "activating", "enabled": False, "journal": ["Downloading model-00003-of-00008.safetensors"]}})
    result = start(head, MODEL_WAIT_TIMEOUT="0")
    assert_step_failed(result, "vllm-start", "vm-qwen-nc48", "the model weights (revision main)",
                       "Downloading model-00003-of-00008.safetensors")
    assert head.container("qwen-vllm") is None


def test_start_without_a_key_fails(head):
    result = start(head, key="")
    assert_step_failed(result, "vllm-start", "vm-qwen-nc48", "ERROR: no API key was given on stdin")
    assert head.container("qwen-vllm") is None


def test_an_extra_flag_vllm_lacks_makes_the_container_crash(head):
    assert start(head, EXTRA_ARGS="--num-warmups\n2").returncode == 0  # docker run -d itself succeeds
    result = health(head, HEALTH_TIMEOUT="0")
    assert_step_failed(result, "vllm-health", "vm-qwen-nc48", "unrecognized arguments: --num-warmups")


# ---- vllm_health.sh ---------------------------------------------------------------------------

def test_health_checks_the_key_and_the_served_name(head):
    assert start(head).returncode == 0
    result = health(head)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"models": ["Qwen/Qwen2.5-14B-Instruct"]}
    curl = head.calls("curl")
    assert curl[-1] == ["-fsS", "--max-time", "30", "-H", "@/etc/qwen/secrets/auth-header", "http://127.0.0.1:8000/v1/models"]
    again = health(head)
    assert again.returncode == 0 and again.stdout == result.stdout


def test_health_waits_for_the_model_to_load(head):
    head.set_state(images=head.state()["images"], vllm={"load_ticks": 3, "crash": False, "bench_failed_requests": 0})
    assert start(head).returncode == 0
    result = health(head)
    assert result.returncode == 0, result.stderr
    assert len(head.calls("sleep")) == 3


def test_health_fails_when_the_served_name_differs(head):
    assert start(head, SERVED_NAME="qwen2.5-14b").returncode == 0
    result = health(head)
    assert_step_failed(result, "vllm-health", "vm-qwen-nc48",
                       "ERROR: vLLM does not serve a model named Qwen/Qwen2.5-14B-Instruct")


def test_vllm_answers_on_127_0_0_1_only(head):
    assert start(head).returncode == 0
    local = head.run("curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health")
    private = head.run("curl -sS -o /dev/null -w '%{http_code}' http://10.10.1.4:8000/health")
    assert local.stdout == "200" and private.returncode == 7 and "Couldn't connect" in private.stderr


def test_health_fails_when_the_key_is_refused(head):
    assert start(head).returncode == 0
    head.write("/etc/qwen/secrets/auth-header", "Authorization: Bearer sk-stale\n", 0o600)
    result = health(head)
    assert_step_failed(result, "vllm-health", "vm-qwen-nc48", "ERROR: /v1/models refused the API key",
                       "The requested URL returned error: 401")


def test_health_fails_fast_on_a_crash_loop_and_shows_the_container_log(head):
    assert start(head).returncode == 0
    head.set_state(images=head.state()["images"], containers=head.state()["containers"],
                   vllm={"load_ticks": 0, "crash": True, "bench_failed_requests": 0})
    result = health(head)
    assert_step_failed(result, "vllm-health", "vm-qwen-nc48", "it keeps crashing",
                       "qwen: last lines of the qwen-vllm container log")
    assert len(head.calls("sleep")) < 5


def test_health_times_out(head):
    head.set_state(images=head.state()["images"], vllm={"load_ticks": 100, "crash": False, "bench_failed_requests": 0})
    assert start(head).returncode == 0
    result = health(head, HEALTH_TIMEOUT="0")
    assert_step_failed(result, "vllm-health", "vm-qwen-nc48", "ERROR: timed out after 0s waiting for vLLM /health on port 8000")
