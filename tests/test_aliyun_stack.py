"""The whole program for stack `aliyun-l20` as configured in Pulumi.aliyun-l20.yaml, under mocks."""

import json
import subprocess
from itertools import pairwise

import pytest
import yaml

from tests.harness import ROOT, TEST_CIDR, contract_outputs, fixture, run_stack, step_env

NAS_DOMAIN = "0a1b2c3d4e-abc12.cn-hangzhou.nas.aliyuncs.com"


@pytest.fixture(scope="module")
def run():
    mp = pytest.MonkeyPatch()
    try:
        yield run_stack("aliyun-l20", mp)
    finally:
        mp.undo()


def instances(run):
    return {r.inputs["instanceName"]: r for r in run.of_type("alicloud:ecs/instance:Instance")}


def test_machines(run):
    nodes = instances(run)
    assert sorted(nodes) == ["qwen-l20-downloader", "qwen-l20-gpu-0", "qwen-l20-gpu-1"]
    for name in ("qwen-l20-gpu-0", "qwen-l20-gpu-1"):
        i = nodes[name].inputs
        assert i["instanceType"] == "ecs.gn8is-2x.8xlarge" and i["systemDiskSize"] == 45
        assert i["imageId"] == "ubuntu_22_04_x64_20G_alibase_20261015.vhd"
    d = nodes["qwen-l20-downloader"].inputs
    assert d["instanceType"] == "ecs.e-c1m2.large" and d["systemDiskSize"] == 150
    for node in nodes.values():
        assert node.inputs["internetChargeType"] == "PayByTraffic" and node.inputs["internetMaxBandwidthOut"] == 100
        assert node.inputs["instanceChargeType"] == "PostPaid"


def test_zone_is_chosen_by_instance_type(run):
    lookups = [a for t, a in run.mocks.invokes if t == "alicloud:index/getZones:getZones"]
    assert {a.get("availableInstanceType") for a in lookups} == {"ecs.gn8is-2x.8xlarge", "ecs.e-c1m2.large"}
    assert all(a.get("availableResourceCreation") == "VSwitch" for a in lookups)
    vsw = run.one("alicloud:vpc/switch:Switch")
    # gn8is is sold in k and j, the downloader in h, j, k: the first common zone, sorted
    assert vsw.inputs["zoneId"] == "cn-hangzhou-j"


def test_network_and_security(run):
    assert run.one("alicloud:vpc/network:Network").inputs["cidrBlock"] == "172.18.0.0/16"
    assert run.one("alicloud:vpc/switch:Switch").inputs["cidrBlock"] == "172.18.190.0/24"
    rules = run.of_type("alicloud:ecs/securityGroupRule:SecurityGroupRule")
    outside = [r.inputs for r in rules if "sourceSecurityGroupId" not in r.inputs]
    assert sorted((r["portRange"], r["cidrIp"]) for r in outside) == [("22/22", TEST_CIDR), ("8000/8000", TEST_CIDR)]
    assert all(r["type"] == "ingress" and r["ipProtocol"] == "tcp" for r in outside)
    inside = [r.inputs for r in rules if "sourceSecurityGroupId" in r.inputs]
    assert len(inside) == 1 and inside[0]["ipProtocol"] == "all" and inside[0]["portRange"] == "-1/-1"
    assert inside[0]["sourceSecurityGroupId"] == inside[0]["securityGroupId"]


def test_nas(run):
    fs = run.one("alicloud:nas/fileSystem:FileSystem")
    assert fs.inputs["protocolType"] == "NFS" and fs.inputs["fileSystemType"] == "standard"
    assert run.one("alicloud:nas/accessRule:AccessRule").inputs["sourceCidrIp"] == "172.18.0.0/16"
    mount = run.one("alicloud:nas/mountTarget:MountTarget")
    assert mount.inputs["vswitchId"] == run.one("alicloud:vpc/switch:Switch").name + "-id"


def test_every_node_mounts_the_nas_and_user_data_is_valid(run, tmp_path):
    for name, node in instances(run).items():
        text = node.inputs["userData"]
        doc = yaml.safe_load(text)
        assert doc["mounts"][0][:3] == [f"{NAS_DOMAIN}:/", "/mnt", "nfs"], name
        assert "_netdev" in doc["mounts"][0][3]
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    gpu_env = next(f for f in yaml.safe_load(instances(run)["qwen-l20-gpu-0"].inputs["userData"])["write_files"]
                   if f["path"] == "/etc/qwen/node.env")["content"]
    assert "INSTALL_NVIDIA_DRIVER=1" in gpu_env and "NAS_MOUNT_DIR=/mnt" in gpu_env
    assert "vllm/vllm-openai" not in instances(run)["qwen-l20-gpu-0"].inputs["userData"]  # an image bump keeps the node


def test_cost_order_download_then_gpus_then_serving(run):
    cmds = run.commands()
    nodes = instances(run)
    download = cmds["cluster-model-download"]
    assert "MODEL_REVISION=master" in download.inputs["create"]
    assert run.depends_on(download, nodes["qwen-l20-downloader"])
    for gpu in ("qwen-l20-gpu-0", "qwen-l20-gpu-1"):
        assert run.depends_on(nodes[gpu], download), f"{gpu} must wait for the verified download"
    mount = run.one("alicloud:nas/mountTarget:MountTarget")
    for node in nodes.values():
        assert mount.urn in node.dependencies  # destroy removes instances before the mount target
    for gpu in ("qwen-l20-gpu-0", "qwen-l20-gpu-1"):
        prefetch = cmds[f"prefetch-{gpu}"]
        assert nodes[gpu].urn in prefetch.dependencies
        assert "PREFETCH_MODEL=0" in prefetch.inputs["create"]  # the weights are on the NAS
        assert run.depends_on(cmds[f"ray-{gpu}-node-ready"], prefetch)
    chain = ["ray-qwen-l20-gpu-0-node-ready", "ray-head", "ray-worker-qwen-l20-gpu-1", "ray-gpus",
             "vllm-serve", "vllm-health", "bench-seed-10k-in-800-out-c1"]
    assert run.depends_on(cmds["ray-qwen-l20-gpu-0-node-ready"], nodes["qwen-l20-gpu-0"])
    for earlier, later in pairwise(chain):
        assert run.depends_on(cmds[later], cmds[earlier]), f"{later} must come after {earlier}"


def test_serving_layout(run):
    cmds = run.commands()
    serve = cmds["vllm-serve"].inputs["create"]
    for flag in ("TP=2", "PP=2", "SERVED_NAME=qwen2.5-72b-instruct", "MODEL_DIR=/mnt/models/Qwen2.5-72B-Instruct"):
        assert flag in serve
    assert "EXPECTED_GPUS=4" in cmds["ray-gpus"].inputs["create"]
    worker = step_env(cmds["ray-worker-qwen-l20-gpu-1"].inputs["create"])
    assert worker["RAY_ROLE"] == "worker" and worker["RAY_RESOURCE_ARGS"] == "--num-gpus=2"
    assert worker["DEVICE_ARGS"] == "--gpus\nall"
    assert worker["CONTAINER_ENV"].splitlines() == [
        f"VLLM_HOST_IP={worker['NODE_IP']}", "NCCL_SOCKET_IFNAME=eth0", "GLOO_SOCKET_IFNAME=eth0"]
    assert step_env(serve)["EXECUTOR"] == "ray"  # two hosts: Ray
    assert "stdin" in cmds["vllm-serve"].secret_inputs


def test_outputs_contract(run):
    o = run.outputs
    assert list(o) == contract_outputs(ssh_key_generated=True)
    assert run.secret_outputs == {"apiKey", "sshPrivateKey"}
    head = instances(run)["qwen-l20-gpu-0"]
    assert o["servedModel"] == "qwen2.5-72b-instruct"
    assert o["endpoint"] == f"https://{o['publicIp']}:8000/v1"
    assert o["sshCommand"] == f"ssh -i ~/.ssh/qwen-aliyun-l20.pem root@{o['publicIp']}"
    assert [n["name"] for n in o["nodes"]] == ["qwen-l20-gpu-0", "qwen-l20-gpu-1", "qwen-l20-downloader"]
    assert [len(n["gpus"]) for n in o["nodes"]] == [2, 2, 0]
    assert o["nodes"][0]["gpus"][0]["name"] == "NVIDIA L20"
    assert o["tokensPerSecond"] == json.loads(fixture("bench/aliyun-l20/seed-10k-in-800-out-c1.json"))["output_throughput"]
    assert "seed-10k-in-800-out-c1" in o["benchmark"]
    assert head.name == "cluster-gpu-0"


def test_no_zone_sells_both_types(monkeypatch):
    from tests.harness import CloudMocks

    mocks = CloudMocks(zones_by_type={"ecs.gn8is-2x.8xlarge": ["cn-hangzhou-k"], "ecs.e-c1m2.large": ["cn-hangzhou-h"]})
    with pytest.raises(Exception, match="ecs.gn8is-2x.8xlarge"):
        run_stack("aliyun-l20", monkeypatch, mocks=mocks)


def test_registry_and_toolkit_repo_are_checked_before_gpus_are_bought(run):
    cmds = run.commands()
    preflight = cmds["cluster-preflight"]
    env = step_env(preflight.inputs["create"])
    assert env["URLS"].splitlines() == ["https://registry-1.docker.io/v2/", "https://auth.docker.io/token",
                                       "https://production.cloudflare.docker.com/",
                                       "https://nvidia.github.io/libnvidia-container/gpgkey"]
    assert "qwen:serving.image" in env["HINT"]
    assert env["QWEN_HOST"] == "qwen-l20-downloader"
    for gpu in ("qwen-l20-gpu-0", "qwen-l20-gpu-1"):
        assert run.depends_on(instances(run)[gpu], preflight)


def test_a_mirror_is_one_setting_away(monkeypatch):
    serving = yaml.safe_load((ROOT / "Pulumi.aliyun-l20.yaml").read_text())["config"]["qwen:serving"]
    mirrored = run_stack("aliyun-l20", monkeypatch, serving={
        **serving, "image": "registry.cn-hangzhou.aliyuncs.com/qwen-mirror/vllm-openai:v0.11.0",
        "proxyImage": "registry.cn-hangzhou.aliyuncs.com/qwen-mirror/nginx:1.28.0-alpine",
        "containerToolkitRepo": "https://mirrors.example.cn/libnvidia-container"})
    cmds = mirrored.commands()
    assert step_env(cmds["cluster-preflight"].inputs["create"])["URLS"].splitlines() == [
        "https://registry.cn-hangzhou.aliyuncs.com/v2/", "https://mirrors.example.cn/libnvidia-container/gpgkey"]
    assert "IMAGE=registry.cn-hangzhou.aliyuncs.com/qwen-mirror/vllm-openai:v0.11.0" in cmds["vllm-serve"].inputs["create"]
    assert (step_env(cmds["proxy-start"].inputs["create"])["IMAGE"]
            == "registry.cn-hangzhou.aliyuncs.com/qwen-mirror/nginx:1.28.0-alpine")
    user_data = instances(mirrored)["qwen-l20-gpu-0"].inputs["userData"]
    assert "NVIDIA_CONTAINER_TOOLKIT_REPO=https://mirrors.example.cn/libnvidia-container" in user_data


def test_nas_is_in_the_nodes_zone(run):
    assert (run.one("alicloud:nas/fileSystem:FileSystem").inputs["zoneId"]
            == run.one("alicloud:vpc/switch:Switch").inputs["zoneId"])


def test_served_only_through_the_tls_proxy(run):
    from tests.test_component_tls_proxy import assert_served_through_the_proxy

    head = run.outputs["nodes"][0]
    assert head["name"] == "qwen-l20-gpu-0"
    assert_served_through_the_proxy(run, head["publicIp"], head["privateIp"], "k" * 40)
