"""The owned stacks (rtx4090, ascend-300i, local) under mocks: no cloud provider, a host-setup step
instead of cloud-init, each family's devices, flags, resources and env in the shared steps, delete
commands that remove what the program started, and the same outputs contract."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
import yaml

from components.accelerators import ASCEND_310P_COMPILATION_CONFIG
from tests.harness import COMMAND_TYPES, ROOT, PreviewMocks, contract_outputs, fixture, run_stack, step_env

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nowned-test-key\n-----END OPENSSH PRIVATE KEY-----\n"
ADDRESS = "192.0.2.10"


def owned_config(stack: str, address: str = ADDRESS, **changes: Any) -> dict[str, Any]:
    """qwen:owned of the stack file after the README's setup (the host's address)."""
    owned: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["qwen:owned"]
    for host in owned["hosts"]:
        host.setdefault("address", address)
    owned.update(changes)
    return owned


def run_owned(stack: str, monkeypatch, **overrides):
    settings: dict[str, Any] = {"owned": owned_config(stack)}
    if stack != "local":
        settings["sshPrivateKey"] = KEY
    return run_stack(stack, monkeypatch, **{**settings, **overrides})


@pytest.fixture(scope="module", params=["rtx4090", "ascend-300i", "local"])
def owned(request):
    mp = pytest.MonkeyPatch()
    try:
        yield request.param, run_owned(request.param, mp)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def rtx():
    mp = pytest.MonkeyPatch()
    try:
        yield run_owned("rtx4090", mp)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def ascend():
    mp = pytest.MonkeyPatch()
    try:
        yield run_owned("ascend-300i", mp)
    finally:
        mp.undo()


def env_of(run, name: str) -> dict:
    return step_env(run.commands()[name].inputs["create"])


def test_no_cloud_provider_and_no_cloud_resource(owned):
    _, run = owned
    types = {r.type for r in run.resources}
    assert not [t for t in types if t.startswith(("azure-native:", "alicloud:", "pulumi:providers:azure",
                                                  "pulumi:providers:alicloud"))]
    assert "tls:index/privateKey:PrivateKey" in types  # the TLS proxy's certificate; the SSH key is the team's


def test_steps_in_order_with_one_host_and_no_ray(owned):
    stack, run = owned
    host = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["qwen:owned"]["hosts"][0]["name"]
    cmds = run.commands()
    chain = [f"{host}-host-setup", f"prefetch-{host}", f"ray-{host}-node-ready", "vllm-serve", "vllm-health",
             "proxy-start", "proxy-smoke", "bench-seed-10k-in-800-out-c1"]
    for earlier, later in pairwise(chain):
        assert run.depends_on(cmds[later], cmds[earlier]), f"{later} must come after {earlier}"
    assert not [n for n in cmds if n in ("ray-head", "ray-gpus") or n.startswith("ray-worker")]
    assert env_of(run, "vllm-serve")["EXECUTOR"] == "mp"
    assert env_of(run, f"ray-{host}-node-ready")["CLOUD_INIT_TIMEOUT"] == "0"  # no cloud-init on owned machines


def test_host_setup_checks_before_installing_cloud_inits_units(rtx):
    import cloudinit
    from components.host_setup import files_archive

    setup = rtx.commands()["ws-4090-host-setup"]
    create = setup.inputs["create"]
    assert create.startswith("sudo -n true 2>/dev/null || {")  # a clear message without passwordless sudo
    assert "cannot run sudo without a password" in create and "'ws-4090'" in create
    env = step_env(create)
    assert env["QWEN_STEP"] == "host-setup" and env["EXPECTED_GPUS"] == "2" and env["ACCELERATOR"] == "RTX 4090"
    assert env["MIN_DRIVER_VERSION"] == "570" and "nvidia-driver" in env["DRIVER_HINT"]
    assert env["IMAGE"] == "vllm/vllm-openai:v0.11.0" and env["IMAGE_DISK_GB"] == "30" and env["MODEL_DISK_GB"] == "30"
    assert env["MODEL_DIR"] == "/var/lib/qwen/models/Qwen2.5-14B-Instruct"
    assert env["FILES_ARCHIVE"] == files_archive(cloudinit.owned_node_files())  # reused, not copied
    assert env["ENABLE_UNITS"] == "qwen-prefetch.path"
    conn = setup.inputs["connection"]["value"] if "value" in setup.inputs["connection"] else setup.inputs["connection"]
    assert conn["host"] == ADDRESS and conn["user"] == "qwen"


def test_the_private_key_is_secret_and_never_in_a_command(owned):
    stack, run = owned
    for cmd in run.commands().values():
        assert "owned-test-key" not in cmd.inputs["create"], cmd.name
        if stack != "local":
            assert "connection" in cmd.secret_inputs, cmd.name


def test_destroy_removes_containers_and_units_but_keeps_weights_and_images(rtx):
    cmds = rtx.commands()
    with_delete = {name for name, cmd in cmds.items() if cmd.inputs.get("delete")}
    assert with_delete == {"ws-4090-host-setup", "vllm-serve", "proxy-start"}
    setup = step_env(cmds["ws-4090-host-setup"].inputs["delete"])
    assert setup["QWEN_STEP"] == "host-setup-remove"
    assert setup["CONTAINERS"].splitlines() == ["qwen-proxy", "qwen-vllm", "qwen-ray"]
    assert setup["UNITS"].splitlines() == ["qwen-prefetch.path", "qwen-prefetch.service"]
    paths = setup["PATHS"].splitlines()
    assert "/etc/qwen" in paths and "/opt/qwen/bin/prefetch.sh" in paths
    assert not [p for p in paths if p.startswith("/var/lib/qwen/models") or p == "/var/lib/qwen"]
    serve = step_env(cmds["vllm-serve"].inputs["delete"])
    assert serve["CONTAINERS"] == "qwen-vllm" and serve["PATHS"] == "/etc/qwen/secrets"
    assert step_env(cmds["proxy-start"].inputs["delete"])["CONTAINERS"] == "qwen-proxy"
    for name in with_delete:
        assert cmds[name].delete_before_replace, name  # the removal never hits what the new step starts
    assert "docker image" not in json.dumps({n: c.inputs.get("delete") for n, c in cmds.items()})
    # nothing prunes the team's images
    assert env_of(rtx, "vllm-serve")["PRUNE_IMAGES"] == "0" and env_of(rtx, "prefetch-ws-4090")["PRUNE_IMAGES"] == "0"


def test_rtx4090_devices_env_and_flags(rtx):
    serve = env_of(rtx, "vllm-serve")
    assert serve["DEVICE_ARGS"] == "--gpus\nall"
    assert serve["CONTAINER_ENV"] == "NCCL_P2P_DISABLE=1"  # GeForce: no P2P; one host: no socket env
    assert serve["TP"] == "2" and serve["PP"] == "1" and serve["GPU_MEMORY_UTILIZATION"] == "0.85"
    assert serve["EXTRA_ARGS"] == ""
    assert "listen 0.0.0.0:8000 ssl;" in env_of(rtx, "proxy-start")["NGINX_CONF"]
    ready = env_of(rtx, "ray-ws-4090-node-ready")
    assert "nvidia-smi" in ready["ACCEL_COUNT_COMMAND"] and ready["DEVICE_ARGS"] == "--gpus\nall"
    bench = env_of(rtx, "bench-seed-10k-in-800-out-c1")
    assert bench["DEVICE_ARGS"] == "--gpus\nall"


def test_ascend_devices_env_and_flags(ascend):
    serve = env_of(ascend, "vllm-serve")
    devices = serve["DEVICE_ARGS"].splitlines()
    assert [devices[i + 1] for i, a in enumerate(devices) if a == "--device"][:4] == [f"/dev/davinci{i}" for i in range(4)]
    assert "--gpus" not in devices
    assert serve["CONTAINER_ENV"].splitlines() == ["ASCEND_RT_VISIBLE_DEVICES=0,1,2,3",
                                                   "PYTORCH_NPU_ALLOC_CONF=max_split_size_mb:256"]
    assert serve["EXTRA_ARGS"].splitlines() == ["--dtype", "float16", "--enforce-eager", "--compilation-config",
                                                ASCEND_310P_COMPILATION_CONFIG, "--max-num-seqs", "256"]
    assert serve["MAX_MODEL_LEN"] == "16384" and serve["TP"] == "4" and serve["GPU_MEMORY_UTILIZATION"] == "0.5"
    assert serve["IMAGE"] == "quay.io/ascend/vllm-ascend:v0.10.0rc1-310p"
    setup = env_of(ascend, "atlas-300i-host-setup")
    assert "npu-smi" in setup["ACCEL_COUNT_COMMAND"] and setup["MIN_DRIVER_VERSION"] == "24.1"
    assert "/dev/davinci_manager" in setup["ACCEL_RUNTIME_CHECK"]
    ready = env_of(ascend, "ray-atlas-300i-node-ready")
    assert "npu-smi info -m" in ready["ACCEL_COUNT_COMMAND"] and ready["DEVICE_ARGS"] == serve["DEVICE_ARGS"]


def test_ascend_runs_seed_001s_benchmark(ascend):
    cmds = ascend.commands()
    env = env_of(ascend, "bench-seed001-256-in-256-out-c192")
    assert (env["INPUT_LEN"], env["OUTPUT_LEN"], env["CONCURRENCY"], env["NUM_PROMPTS"]) == ("256", "256", "192", "192")
    assert run_depends(ascend, "bench-seed001-256-in-256-out-c192", "bench-seed-10k-in-800-out-c1")
    assert [n for n in cmds if n.startswith("bench-")] == [
        "bench-seed-10k-in-800-out-c1", "bench-seed001-256-in-256-out-c192", "bench-chat-1k-in-256-out-c8"]


def run_depends(run, later: str, earlier: str) -> bool:
    cmds = run.commands()
    return bool(run.depends_on(cmds[later], cmds[earlier]))


def test_outputs_contract_with_either_family(owned):
    stack, run = owned
    o = run.outputs
    assert list(o) == contract_outputs(ssh_key_generated=False)  # no generated key to export, no price set
    gpus = o["nodes"][0]["gpus"]
    if stack == "ascend-300i":
        assert len(gpus) == 4 and gpus[0] == {"index": 0, "name": "Ascend 310P3", "memoryMiB": 44280, "driver": "24.1.rc3"}
        assert o["endpoint"] == f"https://{ADDRESS}:8000/v1"
        assert o["sshCommand"] == f"ssh -i ~/.ssh/qwen-ascend-300i.pem qwen@{ADDRESS}"
    elif stack == "rtx4090":
        assert [g["name"] for g in gpus] == ["NVIDIA GeForce RTX 4090"] * 2
        assert o["nodes"][0]["privateIp"] == "192.168.50.10"  # what host-setup found on the host
        assert o["publicIp"] == ADDRESS
    else:
        assert len(gpus) == 1 and o["endpoint"] == "https://127.0.0.1:8000/v1" and o["sshCommand"] == ""
        assert o["publicIp"] == "127.0.0.1"
    assert o["tokensPerSecond"] == json.loads(fixture("vllm_bench_seed.json"))["output_throughput"]


def test_local_runs_every_step_on_this_machine(monkeypatch):
    run = run_owned("local", monkeypatch)
    types = {r.type for r in run.resources if r.type in COMMAND_TYPES}
    assert types == {"command:local:Command"}
    setup = run.commands()["local-host-setup"]
    assert "connection" not in setup.inputs
    proxy = env_of(run, "proxy-start")
    assert "listen 127.0.0.1:8000 ssl;" in proxy["NGINX_CONF"]  # this machine only
    smoke = env_of(run, "proxy-smoke")
    assert smoke["PUBLIC_IP"] == smoke["CONNECT_IP"] == "127.0.0.1"


def test_api_on_the_heads_loopback_gets_an_ssh_tunnel(monkeypatch):
    run = run_owned("rtx4090", monkeypatch, owned=owned_config("rtx4090", listenAddress="127.0.0.1"))
    assert run.outputs["endpoint"] == "https://127.0.0.1:8000/v1"
    csr = run.one("tls:index/certRequest:CertRequest").inputs
    assert csr["ipAddresses"] == ["127.0.0.1", "192.168.50.10"]  # valid through the tunnel
    assert run.outputs["sshCommand"] == f"ssh -i ~/.ssh/qwen-rtx4090.pem -L 8000:127.0.0.1:8000 qwen@{ADDRESS}"


def test_two_ascend_servers_form_a_ray_cluster_of_npus(monkeypatch):
    owned = owned_config("ascend-300i")
    first = owned["hosts"][0]
    owned["hosts"] = [{**first, "name": "atlas-a", "privateInterface": "enp1s0"},
                      {**first, "name": "atlas-b", "address": "192.0.2.11", "privateInterface": "enp1s0"}]
    serving = yaml.safe_load((ROOT / "Pulumi.ascend-300i.yaml").read_text())["config"]["qwen:serving"]
    run = run_owned("ascend-300i", monkeypatch, owned=owned, serving={**serving, "pipelineParallelSize": 2})
    head, worker = env_of(run, "ray-head"), env_of(run, "ray-worker-atlas-b")
    assert head["RAY_RESOURCE_ARGS"] == worker["RAY_RESOURCE_ARGS"] == '--resources={"NPU": 4}'
    assert head["NODE_IP"] == "10.60.0.11" and worker["HEAD_IP"] == "10.60.0.11" and worker["NODE_IP"] == "10.60.0.12"
    env = dict(line.split("=", 1) for line in worker["CONTAINER_ENV"].splitlines())
    assert env["HCCL_IF_IP"] == "10.60.0.12" and env["GLOO_SOCKET_IFNAME"] == env["TP_SOCKET_IFNAME"] == "enp1s0"
    assert env["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"] == "1" and env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3"
    assert not [k for k in env if k.startswith("NCCL_")]
    assert env_of(run, "ray-gpus")["RAY_RESOURCE"] == "NPU" and env_of(run, "ray-gpus")["EXPECTED_GPUS"] == "8"
    serve = env_of(run, "vllm-serve")
    assert serve["EXECUTOR"] == "ray" and serve["PP"] == "2"
    assert "HCCL_IF_IP=10.60.0.11" in serve["CONTAINER_ENV"].splitlines()
    for name in ("ray-head", "ray-worker-atlas-b"):
        assert step_env(run.commands()[name].inputs["delete"])["CONTAINERS"] == "qwen-ray"
    assert run.outputs["nodes"][1]["privateIp"] == "10.60.0.12"


def test_preview_reaches_no_machine(monkeypatch):
    run = run_stack("ascend-300i", monkeypatch, mocks=PreviewMocks(), preview=True,
                    owned=owned_config("ascend-300i"), sshPrivateKey=KEY)
    assert "atlas-300i-host-setup" in run.commands() and set(contract_outputs(ssh_key_generated=False)) <= set(run.exported)
    assert run.outputs == {}


def test_a_model_that_does_not_fit_is_refused_before_any_step(monkeypatch):
    from stacks.settings import SettingsError

    with pytest.raises(SettingsError, match=r"qwen:model.maxModelLen: Qwen/Qwen2.5-72B-Instruct needs .* per GPU"):
        run_owned("ascend-300i", monkeypatch, model={"id": "Qwen/Qwen2.5-72B-Instruct", "maxModelLen": 16384})


def test_a_host_reached_by_name_gets_a_certificate_for_that_name(monkeypatch):
    run = run_owned("rtx4090", monkeypatch, owned=owned_config("rtx4090", address="ws-4090.lab.example"))
    csr = run.one("tls:index/certRequest:CertRequest").inputs
    assert csr["dnsNames"] == ["ws-4090.lab.example"] and csr["ipAddresses"] == ["192.168.50.10"]
    assert run.outputs["endpoint"] == "https://ws-4090.lab.example:8000/v1"
    smoke = env_of(run, "proxy-smoke")
    assert smoke["PUBLIC_IP"] == "ws-4090.lab.example" and smoke["CONNECT_IP"] == "127.0.0.1"
