"""The API key as a property of a whole bootstrap of a sandbox host (Azure layout): cloud-init's
bootstrap, the prefetch, node-ready, Ray, vLLM, health, the TLS proxy and a benchmark, with the
key sent only on the vllm-start and proxy-start steps' stdin (the proxy's with the TLS server
key). Afterwards neither key is in any command line of any stand-in call (the rendered step
commands included), any stdout or stderr, log or journal, or any container's `docker inspect`; the
files that hold them are root-only."""

import json
import secrets
import string
import subprocess

import pytest

from components.tls_proxy import CONTAINER_CONF_DIR, nginx_config
from tests.steps.conftest import IMAGE, gpu_node_document, nvidia_docker_env, nvidia_node_ready_env
from tests.steps.test_benchmark import ENV as BENCH_ENV
from tests.steps.test_vllm import HEALTH_ENV, START_ENV
from tests.test_proxy_nginx import make_certificates

PROXY_IMAGE = "nginx:1.28.0-alpine"

MODEL = "Qwen/Qwen2.5-14B-Instruct"


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    from tests.sandbox import Sandbox

    box = Sandbox(tmp_path_factory.mktemp("host"), host="vm-qwen-nc48")
    box.path("/var/lib/docker").mkdir(parents=True)
    # the program's form (random_password without specials): letters and digits
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    certs = tmp_path_factory.mktemp("certs")
    make_certificates(certs)
    server_key = (certs / "server.key").read_text()
    box.install_cloud_config(gpu_node_document())
    box.set_state(
        registry={"reachable": True, "images": [IMAGE, PROXY_IMAGE]},
        apt={"installed": {}}, docker={"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc"]},
        units={"docker.service": {"enabled": True, "active": "active"}},
        http={"https://nvidia.github.io": {"default_status": 200, "paths": {"/libnvidia-container/gpgkey": {
            "status": 200, "body": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n"}}}},
        hub={MODEL: {"main": {"sha": "b" * 40, "files": {"config.json": 663, "model.safetensors": 4096}}}})
    outputs: list[subprocess.CompletedProcess] = []

    def ok(result):
        outputs.append(result)
        assert result.returncode == 0, result.stderr
        return result

    ok(box.run_file("/opt/qwen/bin/node-bootstrap.sh"))
    ok(box.run_step("prefetch", "prefetch_configure.sh", {
        "IMAGE": IMAGE, "IMAGE_DISK_GB": "30", "PREFETCH_MODEL": "1", "MODEL_ID": MODEL, "MODEL_REVISION": "main",
        "MODEL_ROOT": START_ENV["MODEL_ROOT"], "MODEL_DIR": START_ENV["MODEL_DIR"], "PRUNE_IMAGES": "1"}))
    ok(box.run_file("/opt/qwen/bin/prefetch.sh"))  # what qwen-prefetch.service runs
    ok(box.run_step("node-ready", "node_ready.sh", {"EXPECTED_GPUS": "2", "IMAGE": IMAGE, "CLOUD_INIT_TIMEOUT": "60",
                                                   "GPU_TIMEOUT": "60", "IMAGE_PULL_TIMEOUT": "60", **nvidia_node_ready_env()}))
    ok(box.run_step("ray-head", "ray_start.sh", {"RAY_ROLE": "head", "IMAGE": IMAGE, "NODE_IP": "10.10.1.4",
                                                "HEAD_IP": "10.10.1.4", "RAY_PORT": "6379", "RAY_RESOURCE_ARGS": "--num-gpus=2",
                                                "MODEL_ROOT": START_ENV["MODEL_ROOT"],
                                                **nvidia_docker_env(2, node_ip="10.10.1.4", interface="eth0")}))
    ok(box.run_step("ray-wait-gpus", "ray_wait_gpus.sh", {"EXPECTED_GPUS": "2", "RAY_RESOURCE": "GPU", "RAY_TIMEOUT": "60"}))
    ok(box.run_step("vllm-start", "vllm_start.sh", START_ENV, stdin=key + "\n"))
    ok(box.run_step("vllm-health", "vllm_health.sh", HEALTH_ENV))
    ok(box.run_step("proxy-start", "proxy_start.sh", {
        "IMAGE": PROXY_IMAGE, "PORT": "8000", "NGINX_CONF": nginx_config(8000, 8001), "CONF_MOUNT": CONTAINER_CONF_DIR,
        "SERVER_CERT": (certs / "server.crt").read_text()}, stdin=f"{key}\n{server_key}"))
    ok(box.run_step("benchmark-seed", "benchmark.sh", BENCH_ENV))
    return box, key, server_key, outputs


def test_the_bootstrap_serves_and_measures(bootstrapped):
    box, _, _, outputs = bootstrapped
    assert json.loads(outputs[-3].stdout) == {"models": [MODEL]}
    assert box.container("qwen-proxy")["State"]["Running"]
    assert json.loads(outputs[-1].stdout)["completed"] == 1


@pytest.mark.parametrize("secret", ["key", "server_key"])
def test_the_keys_are_in_no_command_line_output_log_or_journal(bootstrapped, secret):
    box, key, server_key, outputs = bootstrapped
    value = {"key": key, "server_key": server_key.strip().splitlines()[1]}[secret]
    assert box.calls("sudo") and value not in box.all_calls_text()
    for result in outputs:
        assert value not in result.stdout and value not in result.stderr
    logs = [p for p in box.path("/var/log").rglob("*") if p.is_file()]
    assert {"vllm-start.log", "proxy-start.log"} <= {p.name for p in logs}
    for path in logs:
        assert value not in path.read_text(errors="replace"), path
    assert value not in json.dumps(box.state()["units"])  # journals


def test_the_key_files_are_root_only(bootstrapped):
    box, key, server_key, _ = bootstrapped
    for directory in ("/etc/qwen/secrets", "/etc/qwen/secrets/proxy"):
        assert box.mode(directory) == 0o700 and box.path(directory).stat().st_uid == 0
    holders = [p for p in box.path("/etc").rglob("*") if p.is_file() and key in p.read_text(errors="replace")]
    assert {str(p.relative_to(box.path("/etc/qwen/secrets"))) for p in holders} == {
        "api-key", "auth-header", "proxy-auth-header", "proxy/api-key.map"}
    server_key_holders = [p for p in box.path("/etc").rglob("*")
                          if p.is_file() and "PRIVATE KEY" in p.read_text(errors="replace")]
    assert [p.name for p in server_key_holders] == ["server.key"]
    for path in holders + server_key_holders:
        assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == 0, path


def test_the_key_is_in_no_container_inspect(bootstrapped):
    box, key, _, _ = bootstrapped
    containers = json.loads(box.run("docker inspect qwen-ray qwen-vllm qwen-proxy").stdout)
    assert len(containers) == 3
    for c in containers:
        assert key not in json.dumps(c), c["Name"]
