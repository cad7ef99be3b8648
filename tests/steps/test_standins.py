"""The stand-ins refuse what the pinned real tools refuse and speak their formats, including the
forms no step uses today (so the real-engine tier and new steps can rely on them)."""

import json

import pytest

from tests.steps.conftest import IMAGE

RUN = f"docker run -d --name c --restart unless-stopped --entrypoint /bin/bash {IMAGE} -c 'ray start --head --block'"


@pytest.fixture
def box(sandbox):
    sandbox.set_state(images={IMAGE: {"Id": "sha256:1", "RepoTags": [IMAGE]}})
    sandbox.path("/var/lib/qwen/models").mkdir(parents=True)
    return sandbox


@pytest.mark.parametrize("flags, error", [
    ("--restart sometimes", "invalid restart policy 'sometimes'"),
    ("--restart always:3", "invalid restart policy format: always:3"),
    ("--rm", "Conflicting options: cannot specify both --restart and --rm"),
    ("-v /var/lib/qwen/models:models:ro", "must be absolute"),
    ("-v /var/lib/qwen/models:/m:ro:z", "invalid volume specification"),
    ("-v /var/lib/qwen/models:/m:readonly", "invalid mode: readonly"),
    ("--mount type=bind,source=/nonexistent,target=/m", "bind source path does not exist"),
    ("--mount type=bind,source=/var/lib/qwen/models,target=/m,bind-propagation=slave-ish", "invalid value for bind-propagation"),
    ("--gpus count=two", "invalid count (two)"),
    ("--gpus devices=0", "unexpected key 'devices'"),
    ("--shm-sizes 10g", "unknown flag: --shm-sizes"),
])
def test_docker_run_refuses_what_the_cli_refuses(box, flags, error):
    result = box.run(RUN.replace("--entrypoint", f"{flags} --entrypoint"))
    assert result.returncode == 125 and error in result.stderr, result.stderr
    assert box.state().get("containers", {}) == {}


@pytest.mark.parametrize("flags", ["-v /var/lib/qwen/models:/var/lib/qwen/models:ro,rslave",
                                   "--mount type=bind,source=/var/lib/qwen/models,target=/m,readonly,bind-propagation=rslave",
                                   "--gpus all", "--gpus 2", '--gpus "device=0,1"', "--restart on-failure:5"])
def test_docker_run_accepts_the_real_forms(box, flags):
    result = box.run(RUN.replace("--entrypoint", f"{flags} --entrypoint"))
    assert result.returncode == 0, result.stderr
    if "rslave" in flags:
        mount = box.container("c")["Mounts"][0]
        assert mount["Propagation"] == "rslave" and mount["RW"] is False


def test_env_file_values_land_in_config_env_like_docker(box):
    box.write("/etc/e.env", "# comment\nA=1\nB=two words\n\n")
    assert box.run(RUN.replace("--entrypoint", "--env-file /etc/e.env -e A=3 --entrypoint")).returncode == 0
    env = json.loads(box.run("docker inspect -f '{{json .Config.Env}}' c").stdout)
    assert env[-3:] == ["A=1", "B=two words", "A=3"]


def test_vllm_serve_flags_are_checked_against_v0_11_0(box):
    ok = box.run(f"docker run --rm --network host --entrypoint vllm {IMAGE} serve /m --served-model-name q "
                 "--tensor_parallel_size 2 -tp 2 --no-enable-prefix-caching --enforce-eager --max-num-seqs=64 & wait")
    assert ok.returncode == 0, ok.stderr
    bad = box.run(f"docker run --rm --entrypoint vllm {IMAGE} serve /m --num-gpu-blocks-overide 10")
    assert bad.returncode == 2 and "unrecognized arguments: --num-gpu-blocks-overide" in bad.stderr
    choice = box.run(f"docker run --rm --entrypoint vllm {IMAGE} serve /m --kv-cache-dtype fp16")
    assert choice.returncode == 2 and "invalid choice: 'fp16'" in choice.stderr


def test_curl_answers_vllm_with_its_key_rule(box):
    box.write("/etc/qwen/vllm.env", "VLLM_API_KEY=sk-1\n")
    box.write("/etc/qwen/h", "Authorization: Bearer sk-1\n")
    assert box.run(f"docker run -d --name v --network host --env-file /etc/qwen/vllm.env --entrypoint vllm {IMAGE} "
                   "serve /m --served-model-name q --port 8000").returncode == 0
    assert box.run("curl -fsS http://127.0.0.1:8000/health").returncode == 0  # /health: no key
    refused = box.run("curl -fsS http://127.0.0.1:8000/v1/models")
    assert refused.returncode == 22 and "returned error: 401" in refused.stderr and refused.stdout == ""
    quiet = box.run("curl -fs http://127.0.0.1:8000/v1/models")
    assert quiet.returncode == 22 and quiet.stderr == ""
    models = box.run("curl -fsS -H @/etc/qwen/h http://127.0.0.1:8000/v1/models")
    assert [m["id"] for m in json.loads(models.stdout)["data"]] == ["q"]
    assert box.run("curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8001/health").stdout == "000"
    assert box.run("curl -sS http://127.0.0.1:8001/health").returncode == 7


def test_nvidia_smi_refuses_unknown_query_fields(box):
    bad = box.run("nvidia-smi --query-gpu=index,gpu_memory --format=csv")
    assert bad.returncode == 2 and 'Field "gpu_memory" is not a valid field to query.' in bad.stderr
    header = box.run("nvidia-smi --query-gpu=index,memory.total --format=csv,nounits").stdout.splitlines()[0]
    assert header == "index, memory.total"


def test_npu_smi_info_m_lists_chips_and_mcu_rows(box):
    box.set_state(npus=[{"name": "Ascend 310P3", "memory_mb": 44278}] * 4)
    rows = box.run("npu-smi info -m").stdout.splitlines()
    chips = [r.split() for r in rows[1:] if "Ascend 310P3" in r]
    assert [(c[0], c[1], c[2]) for c in chips] == [("1", "0", "0"), ("1", "1", "1"), ("2", "0", "2"), ("2", "1", "3")]
    assert sum(1 for r in rows if r.split()[2:4] == ["-", "Mcu"]) == 2


def test_systemd_and_cloud_init_fail_like_the_real_ones(box):
    missing = box.run("systemctl start nope.service")
    assert missing.returncode == 5 and "Unit nope.service not found." in missing.stderr
    assert box.run("systemctl is-active nope").stdout == "inactive\n"
    box.set_state(cloud_init={"status": "degraded done", "errors": ["W: x"]})
    status = box.run("cloud-init status --format json")
    assert status.returncode == 2 and json.loads(status.stdout)["extended_status"] == "degraded done"
    assert box.run("cloud-init status --format xml").returncode == 2


def test_the_key_entrypoint_runs_in_a_real_sh_and_needs_its_key_file(box):
    program = 'VLLM_API_KEY="$(cat /run/secrets/k/api-key)" && export VLLM_API_KEY && exec vllm "$@"'
    box.write("/etc/qwen/keys/api-key", "sk-1")
    box.write("/etc/qwen/h", "Authorization: Bearer sk-1\n")
    serve = f"--network host -v /etc/qwen/keys:/run/secrets/k:ro --entrypoint sh {IMAGE} -c '{program}' vllm serve /m --port 8000"
    assert box.run(f"docker run -d --name v {serve}").returncode == 0
    assert box.run("curl -fsS -H @/etc/qwen/h http://127.0.0.1:8000/v1/models").returncode == 0
    assert box.run("curl -fsS http://127.0.0.1:8000/v1/models").returncode == 22  # the key is in effect
    assert "sk-1" not in box.run("docker inspect v").stdout
    box.run("rm /etc/qwen/keys/api-key; docker rm -f v")
    assert box.run(f"docker run -d --name v {serve}").returncode == 0  # the container starts, sh fails in it
    assert box.container("v")["process"]["kind"] == "crashed"
    assert "cat: /run/secrets/k/api-key: No such file or directory" in box.run("docker logs v").stdout
    assert box.run("curl -sS http://127.0.0.1:8000/health").returncode == 7  # vllm never started


def test_the_sandbox_has_no_network(box):
    # its own network namespace: one loopback interface, down, so nothing it runs can connect anywhere
    interfaces = [line.split(":")[0].strip() for line in box.run("cat /proc/net/dev").stdout.splitlines()[2:]]
    assert interfaces == ["lo"]
    real = box.run("/usr/bin/curl -sS --max-time 5 http://127.0.0.1:1/")  # this machine's real curl
    assert real.returncode == 7 and "Couldn't connect to server" in real.stderr
