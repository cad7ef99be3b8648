"""RayCluster alone, on pulumi mocks: per-host readiness, head then workers one by one, the GPU
count check, and the nodes output parsed from nvidia-smi."""

from __future__ import annotations

import pulumi
import pulumi_random
import pytest

from components.ray_cluster import RAY_PORT, RayCluster, RayClusterArgs
from components.remote import GpuHost
from tests.harness import fixture, run_pulumi, step_env
from tests.test_remote_step import required_env

COMPONENT = "qwen:serving:RayCluster"
IMAGE = "registry.example/vllm-openai:v0.11.0"
L20_GPUS = [  # tests/fixtures/nvidia_smi_l20.csv
    {"index": 0, "name": "NVIDIA L20", "memoryMiB": 46068, "driver": "570.195.03"},
    {"index": 1, "name": "NVIDIA L20", "memoryMiB": 46068, "driver": "570.195.03"},
]


def make_hosts(count: int) -> list[GpuHost]:
    """Hosts gpu-n0.. with a dummy `ready` resource each (names with "gpu": the L20 fixture)."""
    hosts = []
    for i in range(count):
        marker = pulumi_random.RandomId(f"ready-gpu-n{i}", byte_length=4)
        hosts.append(GpuHost(
            name=f"gpu-n{i}", public_ip=f"203.0.113.{10 + i}", private_ip=f"10.30.0.{10 + i}", user="ops",
            private_key="k", gpu_count=2, instance_id=f"i-gpu-n{i}", ready=[marker],
        ))
    return hosts


def build(count: int, captured: dict):
    def program():
        hosts = make_hosts(count)
        cluster = RayCluster("ray", RayClusterArgs(hosts=hosts, image=IMAGE, model_root="/srv/models",
                                                   private_interface="ens5", min_driver_version="575.51",
                                                   gpu_timeout_minutes=7,
                                                   join_timeout_minutes=3))
        captured.update(hosts=hosts, cluster=cluster)
        return {"nodes": cluster.nodes, "gpu_total": cluster.gpu_total, "ready_urn": cluster.ready.urn,
                "worker_urns": pulumi.Output.all(*[w.urn for w in cluster.worker_steps])}
    return run_pulumi(program)


@pytest.fixture(scope="module")
def three():
    captured: dict = {}
    return build(3, captured), captured


def test_one_node_ready_step_per_host_after_its_ready_resources(three):
    run, captured = three
    component = run.one(COMPONENT)
    cmds = run.commands()
    for i, host in enumerate(captured["hosts"]):
        step = cmds[f"ray-{host.name}-node-ready"]
        assert step.parent == component.urn
        assert run.named(f"ready-gpu-n{i}").urn in step.dependencies
        for j in range(3):
            if j != i:
                assert run.named(f"ready-gpu-n{j}").urn not in step.dependencies
        env = step_env(step.inputs["create"])
        assert env["QWEN_STEP"] == "node-ready" and env["QWEN_HOST"] == host.name
        assert env["EXPECTED_GPUS"] == "2" and env["IMAGE"] == IMAGE
        assert env["MIN_DRIVER_VERSION"] == "575.51"
        assert env["GPU_TIMEOUT"] == env["CLOUD_INIT_TIMEOUT"] == str(7 * 60)
        assert required_env("node_ready.sh") <= set(env)
    assert len([n for n in cmds if n.endswith("-node-ready")]) == 3


def test_head_then_workers_join_one_after_another(three):
    run, captured = three
    cmds = run.commands()
    hosts = captured["hosts"]
    head = cmds["ray-head"]
    assert cmds["ray-gpu-n0-node-ready"].urn in head.dependencies
    workers = [cmds[f"ray-worker-{h.name}"] for h in hosts[1:]]
    assert len(workers) == 2
    previous = head
    for host, worker in zip(hosts[1:], workers, strict=True):
        assert cmds[f"ray-{host.name}-node-ready"].urn in worker.dependencies
        assert previous.urn in worker.dependencies, f"{worker.name} must wait for {previous.name}"
        assert not run.depends_on(previous, worker)
        previous = worker
    assert run.depends_on(workers[1], head)
    assert not run.depends_on(head, cmds["ray-gpu-n1-node-ready"])  # the head does not wait for the workers
    assert run.outputs["worker_urns"] == [w.urn for w in workers]
    assert captured["cluster"].head is hosts[0]
    gpus = cmds["ray-gpus"]
    assert workers[-1].urn in gpus.dependencies
    assert run.outputs["ready_urn"] == gpus.urn
    assert set(cmds) == {"ray-head", "ray-gpus", *(f"ray-worker-{h.name}" for h in hosts[1:]),
                         *(f"ray-{h.name}-node-ready" for h in hosts)}


def test_ray_steps_env(three):
    run, captured = three
    cmds = run.commands()
    hosts = captured["hosts"]
    steps = [("ray-head", hosts[0], "head")] + [(f"ray-worker-{h.name}", h, "worker") for h in hosts[1:]]
    for name, host, role in steps:
        env = step_env(cmds[name].inputs["create"])
        assert env["QWEN_STEP"] == f"ray-{role}" and env["QWEN_HOST"] == host.name, name
        assert env["RAY_ROLE"] == role, name
        assert env["HEAD_IP"] == "10.30.0.10", name  # the head's private IP, never a public one
        assert env["NODE_IP"] == host.private_ip, name
        assert env["RAY_PORT"] == str(RAY_PORT) and env["RAY_RESOURCE_ARGS"] == "--num-gpus=2", name
        assert env["DEVICE_ARGS"] == "--gpus\nall", name
        assert env["CONTAINER_ENV"].splitlines() == [
            f"VLLM_HOST_IP={host.private_ip}", "NCCL_SOCKET_IFNAME=ens5", "GLOO_SOCKET_IFNAME=ens5"], name
        assert env["MODEL_ROOT"] == "/srv/models" and env["IMAGE"] == IMAGE
        assert required_env("ray_start.sh") <= set(env), name
    gpus = step_env(cmds["ray-gpus"].inputs["create"])
    assert gpus["QWEN_HOST"] == "gpu-n0" and gpus["QWEN_STEP"] == "ray-wait-gpus"
    assert gpus["EXPECTED_GPUS"] == "6" and gpus["RAY_RESOURCE"] == "GPU"  # 3 hosts x 2 GPUs
    assert gpus["RAY_TIMEOUT"] == str(3 * 60)
    assert required_env("ray_wait_gpus.sh") <= set(gpus)


def test_every_step_is_triggered_by_its_hosts_instance(three):
    run, captured = three
    instance = {h.name: h.instance_id for h in captured["hosts"]}
    for cmd in run.commands().values():
        host = step_env(cmd.inputs["create"])["QWEN_HOST"]
        assert cmd.inputs["triggers"][0] == instance[host], cmd.name
        conn = cmd.inputs["connection"]["value"]
        assert conn["host"] == next(h.public_ip for h in captured["hosts"] if h.name == host), cmd.name


def test_nodes_lists_every_host_with_its_gpus(three):
    run, _ = three
    assert fixture("nvidia_smi_l20.csv").startswith("0, NVIDIA L20, 46068 MiB")
    assert run.outputs["nodes"] == [
        {"name": f"gpu-n{i}", "publicIp": f"203.0.113.{10 + i}", "privateIp": f"10.30.0.{10 + i}", "gpus": L20_GPUS}
        for i in range(3)
    ]


def test_gpu_total_is_parsed_from_ray_status():
    captured: dict = {}
    run = build(2, captured)
    env = step_env(run.commands()["ray-gpus"].inputs["create"])
    assert env["EXPECTED_GPUS"] == "4"
    # CloudMocks answers ray_status_2nodes.txt (4.0/4.0 GPU) for 4 expected GPUs
    assert " 0.0/4.0 GPU" in fixture("ray_status_2nodes.txt")
    assert run.outputs["gpu_total"] == 4.0
    assert set(run.commands()) == {"ray-gpu-n0-node-ready", "ray-gpu-n1-node-ready", "ray-head",
                                   "ray-worker-gpu-n1", "ray-gpus"}


def test_single_host_starts_no_ray():
    captured: dict = {}
    run = build(1, captured)
    cmds = run.commands()
    assert set(cmds) == {"ray-gpu-n0-node-ready"}  # vLLM's mp executor serves; no Ray to start
    assert run.outputs["ready_urn"] == cmds["ray-gpu-n0-node-ready"].urn
    assert run.outputs["gpu_total"] == 2.0  # the node-ready step's device list
    assert captured["cluster"].worker_steps == [] and not captured["cluster"].uses_ray


def test_empty_host_list_is_refused():
    with pytest.raises(ValueError, match="at least one host"):
        run_pulumi(lambda: RayCluster("ray", RayClusterArgs(hosts=[], image=IMAGE, model_root="/m",
                                                            private_interface="eth0", min_driver_version="570")) and {})
