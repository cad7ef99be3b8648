"""The API key as a property of a whole bootstrap of a sandbox host (Azure layout): cloud-init's
bootstrap, the prefetch, node-ready, Ray, vLLM, health and a benchmark, with the key sent only on
the vllm-start step's stdin. Afterwards the key is in no command line of any stand-in call (the
rendered step commands included), no stdout or stderr, no log, no journal, no container's
`docker inspect`; the files that hold it are root-only."""

import json
import secrets
import subprocess

import pytest

from tests.steps.conftest import IMAGE, gpu_node_document
from tests.steps.test_benchmark import ENV as BENCH_ENV
from tests.steps.test_vllm import HEALTH_ENV, START_ENV

MODEL = "Qwen/Qwen2.5-14B-Instruct"


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    from tests.sandbox import Sandbox

    box = Sandbox(tmp_path_factory.mktemp("host"), host="vm-qwen-nc48")
    box.path("/var/lib/docker").mkdir(parents=True)
    key = "sk-" + secrets.token_urlsafe(24)
    box.install_cloud_config(gpu_node_document())
    box.set_state(
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
        "MODEL_ROOT": START_ENV["MODEL_ROOT"], "MODEL_DIR": START_ENV["MODEL_DIR"]}))
    ok(box.run_file("/opt/qwen/bin/prefetch.sh"))  # what qwen-prefetch.service runs
    ok(box.run_step("node-ready", "node_ready.sh", {"EXPECTED_GPUS": "2", "IMAGE": IMAGE, "CLOUD_INIT_TIMEOUT": "60",
                                                   "GPU_TIMEOUT": "60", "IMAGE_PULL_TIMEOUT": "60"}))
    ok(box.run_step("ray-head", "ray_start.sh", {"RAY_ROLE": "head", "IMAGE": IMAGE, "NODE_IP": "10.10.1.4",
                                                "HEAD_IP": "10.10.1.4", "RAY_PORT": "6379", "GPUS": "2",
                                                "PRIVATE_INTERFACE": "eth0", "MODEL_ROOT": START_ENV["MODEL_ROOT"]}))
    ok(box.run_step("ray-wait-gpus", "ray_wait_gpus.sh", {"EXPECTED_GPUS": "2", "RAY_TIMEOUT": "60"}))
    ok(box.run_step("vllm-start", "vllm_start.sh", START_ENV, stdin=key + "\n"))
    ok(box.run_step("vllm-health", "vllm_health.sh", HEALTH_ENV))
    ok(box.run_step("benchmark-seed", "benchmark.sh", BENCH_ENV))
    return box, key, outputs


def test_the_bootstrap_serves_and_measures(bootstrapped):
    box, _, outputs = bootstrapped
    assert json.loads(outputs[-2].stdout) == {"models": [MODEL]}
    assert json.loads(outputs[-1].stdout)["completed"] == 1


def test_the_key_is_in_no_command_line_output_log_or_journal(bootstrapped):
    box, key, outputs = bootstrapped
    assert box.calls("sudo") and key not in box.all_calls_text()
    for result in outputs:
        assert key not in result.stdout and key not in result.stderr
    logs = [p for p in box.path("/var/log").rglob("*") if p.is_file()]
    assert any(p.name == "vllm-start.log" for p in logs)
    for path in logs:
        assert key not in path.read_text(errors="replace"), path
    assert key not in json.dumps(box.state()["units"])  # journals


def test_the_key_files_are_root_only(bootstrapped):
    box, key, _ = bootstrapped
    assert box.mode("/etc/qwen/secrets") == 0o700 and box.path("/etc/qwen/secrets").stat().st_uid == 0
    holders = [p for p in box.path("/etc").rglob("*") if p.is_file() and key in p.read_text(errors="replace")]
    assert {p.name for p in holders} == {"vllm.env", "bench.env", "auth-header"}
    for path in holders:
        assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == 0, path


@pytest.mark.xfail(strict=True, reason="today's vllm_start.sh passes the key with --env-file, which docker puts into "
                   "Config.Env; the proxy branch's vllm_start.sh keeps it out of the container's environment")
def test_the_key_is_in_no_container_inspect(bootstrapped):
    box, key, _ = bootstrapped
    containers = json.loads(box.run("docker inspect qwen-ray qwen-vllm").stdout)
    assert len(containers) == 2
    for c in containers:
        assert key not in json.dumps(c["Config"]["Cmd"]) and key not in json.dumps(c["Args"]), c["Name"]
        assert key not in json.dumps(c["Config"]["Env"]), c["Name"]
