"""AliyunGpuCluster alone, on pulumi mocks (no network): zone choice, security rules, NAS access,
the GPU nodes waiting for the model download, instance settings, user data and image pinning."""

from __future__ import annotations

import json
from dataclasses import replace

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from components.aliyun_gpu_cluster import (
    AliyunGpuCluster,
    AliyunGpuClusterArgs,
    check_held_model,
    choose_zone,
    ingress_rules,
    nas_zone_ids,
    parse_download_summary,
)

GPU_TYPE = "ecs.gn8is-2x.8xlarge"
CPU_TYPE = "ecs.e-c1m2.large"
DOMAIN = "0a1b2c3d4e-abc12.cn-beijing.nas.aliyuncs.com"
LOOKED_UP_IMAGE = "ubuntu_22_04_x64_20G_alibase_20250101.vhd"
SUMMARY = {"model": "Qwen/Qwen2.5-72B-Instruct", "revision": "master", "files": 50, "bytes": 145_000_000_000}

INSTANCE = "alicloud:ecs/instance:Instance"
RULE = "alicloud:ecs/securityGroupRule:SecurityGroupRule"
COMMAND = "command:remote:Command"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self, zones: dict[str, list[str]], nas_offers: dict[str, list[tuple[str, str]]]):
        self.zones = zones
        self.nas_offers = nas_offers  # zone -> (storage type, protocol) offered by General-purpose NAS
        self.calls: list[tuple[str, dict]] = []

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        if args.token == "alicloud:index/getZones:getZones":
            ids = self.zones.get(args.args.get("availableInstanceType", ""), [])
            return {"ids": ids}, []
        if args.token == "alicloud:nas/getZones:getZones":
            return {"id": "cn-beijing", "fileSystemType": args.args.get("fileSystemType"), "zones": [
                {"zoneId": zone, "instanceTypes": [{"storageType": s, "protocolType": p} for s, p in offers]}
                for zone, offers in self.nas_offers.items()]}, []
        if args.token == "alicloud:ecs/getImages:getImages":
            return {"ids": [LOOKED_UP_IMAGE]}, []
        return {}, []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        if args.typ == INSTANCE:
            # every instance its own addresses, so a host wired to another instance's IP shows
            suffix = INSTANCE_ADDRESS_SUFFIX[args.name]
            state.update(publicIp=f"47.0.0.{suffix}", privateIp=f"10.0.0.{suffix}")
        elif args.typ == "alicloud:nas/mountTarget:MountTarget":
            state["mountTargetDomain"] = DOMAIN
        elif args.typ == COMMAND:
            state.update(stdout=json.dumps(SUMMARY), stderr="")
        return rid, state


INSTANCE_ADDRESS_SUFFIX = {"cluster-downloader": 5, "cluster-gpu-0": 10, "cluster-gpu-1": 11}


class RecordingMonitor(MockMonitor):
    """Keeps every registration request: type, name, dependencies (URNs), inputs, ignore_changes."""

    def __init__(self, mocks: Mocks):
        super().__init__(mocks)
        self.registrations: list[dict] = []

    def RegisterResource(self, request):
        self.registrations.append({
            "type": request.type,
            "name": request.name,
            "dependencies": list(request.dependencies),
            "inputs": pulumi.runtime.rpc.deserialize_properties(request.object),
            "ignore_changes": list(request.ignoreChanges),
        })
        return super().RegisterResource(request)

    def of_type(self, typ: str) -> list[dict]:
        return [r for r in self.registrations if r["type"] == typ]

    def named(self, name: str) -> dict:
        return next(r for r in self.registrations if r["name"] == name)

    def urn(self, name: str) -> str:
        matches = [urn for urn in self.resources if urn.endswith(f"::{name}")]
        assert len(matches) == 1, (name, matches)
        return matches[0]


def make_args(**overrides) -> AliyunGpuClusterArgs:
    args = AliyunGpuClusterArgs(
        name_prefix="qwen", vpc_cidr="10.10.0.0/16", vswitch_cidr="10.10.1.0/24",
        gpu_instance_type=GPU_TYPE, gpu_node_count=2, gpus_per_node=2, gpu_system_disk_gb=45,
        downloader_instance_type=CPU_TYPE, downloader_system_disk_gb=150, system_disk_category="cloud_essd",
        internet_max_bandwidth_out=100, image_name_regex=r"^ubuntu_22_04_x64_20G_alibase_.*\.vhd$",
        allowed_cidrs=["203.0.113.0/24", "198.51.100.7/32"], inbound_ports=[22, 8000],
        ssh_public_key="ssh-ed25519 AAAA test", ssh_private_key=pulumi.Output.secret("PRIVATE"),
        nas_storage_type="Performance", nas_mount_dir="/mnt", model_dir="/mnt/models/Qwen2.5-72B-Instruct",
        model_id="Qwen/Qwen2.5-72B-Instruct", model_revision="master", stop_downloader=False,
        gpu_user_data=lambda domain: f"#cloud-config\n# gpu node, nas {domain}\n",
        downloader_user_data=lambda domain: f"#cloud-config\n# downloader, nas {domain}\n",
        download_timeout_hours=8, tags={"stack": "test"},
    )
    return replace(args, **overrides)


DEFAULT_ZONES = {
    GPU_TYPE: ["cn-beijing-l", "cn-beijing-i", "cn-beijing-h"],
    CPU_TYPE: ["cn-beijing-a", "cn-beijing-l", "cn-beijing-i"],
}


DEFAULT_NAS_OFFERS = {
    "cn-beijing-a": [("Capacity", "nfs")],
    "cn-beijing-i": [("Performance", "nfs"), ("Capacity", "nfs")],
    "cn-beijing-l": [("Performance", "nfs"), ("Performance", "smb")],
}


def deploy(args: AliyunGpuClusterArgs, zones: dict[str, list[str]] = DEFAULT_ZONES,
           nas_offers: dict[str, list[tuple[str, str]]] = DEFAULT_NAS_OFFERS):
    """Runs the component on fresh mocks; returns (monitor, mocks, resolved outputs)."""
    mocks = Mocks(zones, nas_offers)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="qwen", stack="test", preview=False, monitor=monitor)
    resolved: dict = {}

    @pulumi.runtime.test
    def program():
        cluster = AliyunGpuCluster("cluster", args)
        resolved["cluster"] = cluster
        return pulumi.Output.all(
            cluster.mount_target_domain, cluster.download_summary,
            [h.public_ip for h in cluster.gpu_hosts], [h.private_ip for h in cluster.gpu_hosts],
            cluster.downloader_host.public_ip,
        ).apply(lambda v: resolved.update(domain=v[0], summary=v[1], gpu_public=v[2], gpu_private=v[3], downloader_public=v[4]))

    program()
    return monitor, mocks, resolved


# ---------------------------------------------------------------------------- pure functions


def test_choose_zone_is_the_first_sorted_zone_in_all_lists():
    assert choose_zone(["z-c", "z-b", "z-a"], ["z-b", "z-c", "z-d"], ["z-a", "z-b", "z-c"],
                       GPU_TYPE, CPU_TYPE, "Performance") == "z-b"
    assert choose_zone(["z-c", "z-b", "z-a"], ["z-b", "z-c", "z-d"], ["z-c"], GPU_TYPE, CPU_TYPE, "Performance") == "z-c"


def test_choose_zone_without_common_zone_names_both_types_and_the_nas():
    with pytest.raises(ValueError, match="no zone of this region sells") as err:
        choose_zone(["cn-beijing-l"], ["cn-beijing-a"], ["cn-beijing-l"], GPU_TYPE, CPU_TYPE, "Performance")
    assert GPU_TYPE in str(err.value) and CPU_TYPE in str(err.value)
    with pytest.raises(ValueError, match="sold in: none"):
        choose_zone([], ["cn-beijing-a"], ["cn-beijing-a"], GPU_TYPE, CPU_TYPE, "Performance")
    with pytest.raises(ValueError, match="no zone of this region sells") as err:
        choose_zone(["cn-beijing-l"], ["cn-beijing-l"], [], GPU_TYPE, CPU_TYPE, "Performance")
    assert "Performance NFS file system (offered in: none)" in str(err.value)


def test_ingress_rules_one_per_port_and_cidr():
    rules = ingress_rules(["1.2.3.0/24", "5.6.7.8/32"], [22, 8000])
    assert {(r["port_range"], r["cidr_ip"]) for r in rules} == {
        ("22/22", "1.2.3.0/24"), ("22/22", "5.6.7.8/32"), ("8000/8000", "1.2.3.0/24"), ("8000/8000", "5.6.7.8/32"),
    }
    assert all(r["type"] == "ingress" and r["ip_protocol"] == "tcp" and r["policy"] == "accept"
               and r["nic_type"] == "intranet" for r in rules)
    assert len({r["key"] for r in rules}) == len(rules)
    with pytest.raises(ValueError, match="allowed_cidrs is empty"):
        ingress_rules([], [22])


def test_parse_download_summary():
    assert parse_download_summary(json.dumps(SUMMARY)) == SUMMARY
    with pytest.raises(ValueError, match="not the completion JSON"):
        parse_download_summary("not json")


# ---------------------------------------------------------------------------- the component


def test_component_uses_the_zone_common_to_both_lookups():
    monitor, mocks, _ = deploy(make_args())
    zone_calls = [a for token, a in mocks.calls if token == "alicloud:index/getZones:getZones"]
    assert {a["availableInstanceType"] for a in zone_calls} == {GPU_TYPE, CPU_TYPE}
    assert all(a["availableResourceCreation"] == "VSwitch" for a in zone_calls)
    vswitch = monitor.of_type("alicloud:vpc/switch:Switch")
    assert len(vswitch) == 1
    assert vswitch[0]["inputs"]["zoneId"] == "cn-beijing-i"
    assert vswitch[0]["inputs"]["cidrBlock"] == "10.10.1.0/24"


def test_nas_zone_ids_keep_zones_offering_the_storage_type_over_nfs():
    from pulumi_alicloud.nas.outputs import GetZonesZoneInstanceTypeResult as Offer
    from pulumi_alicloud.nas.outputs import GetZonesZoneResult as Zone

    zones = [
        Zone(zone_id="z-a", instance_types=[Offer(protocol_type="NFS", storage_type="Capacity")]),
        Zone(zone_id="z-b", instance_types=[Offer(protocol_type="SMB", storage_type="Performance")]),
        Zone(zone_id="z-c", instance_types=[Offer(protocol_type="nfs", storage_type="Performance")]),
        Zone(zone_id="z-d", instance_types=[]),
    ]
    assert nas_zone_ids(zones, "Performance") == ["z-c"]
    assert nas_zone_ids(zones, "Capacity") == ["z-a"]
    assert nas_zone_ids([], "Performance") == []


def test_zone_is_one_where_the_nas_offers_the_storage_type():
    # Both instance types are sold in i and l; a Performance NFS file system only in l.
    offers = {"cn-beijing-i": [("Capacity", "nfs"), ("Performance", "smb")], "cn-beijing-l": [("Performance", "nfs")]}
    monitor, mocks, _ = deploy(make_args(), nas_offers=offers)
    nas_calls = [a for token, a in mocks.calls if token == "alicloud:nas/getZones:getZones"]
    assert nas_calls == [{"fileSystemType": "standard"}]
    assert monitor.of_type("alicloud:vpc/switch:Switch")[0]["inputs"]["zoneId"] == "cn-beijing-l"
    assert monitor.of_type("alicloud:nas/fileSystem:FileSystem")[0]["inputs"]["zoneId"] == "cn-beijing-l"


def test_no_zone_with_the_nas_storage_type_raises():
    offers = {"cn-beijing-i": [("Capacity", "nfs")], "cn-beijing-l": [("Capacity", "nfs")]}
    with pytest.raises(Exception, match="Performance NFS file system"):
        deploy(make_args(), nas_offers=offers)


def test_component_without_common_zone_raises():
    with pytest.raises(Exception, match="no zone of this region sells") as err:
        deploy(make_args(), zones={GPU_TYPE: ["cn-beijing-l"], CPU_TYPE: ["cn-beijing-a"]})
    assert GPU_TYPE in str(err.value) and CPU_TYPE in str(err.value)


def test_security_rules_are_the_ports_from_allowed_cidrs_plus_the_group_itself():
    monitor, _, _ = deploy(make_args())
    rules = [r["inputs"] for r in monitor.of_type(RULE)]
    tcp = [r for r in rules if r["ipProtocol"] == "tcp"]
    assert {(r["portRange"], r["cidrIp"]) for r in tcp} == {
        (f"{p}/{p}", c) for p in (22, 8000) for c in ("203.0.113.0/24", "198.51.100.7/32")
    }
    assert len(tcp) == 4
    assert all(r["type"] == "ingress" and r["policy"] == "accept" and r["nicType"] == "intranet" for r in rules)
    others = [r for r in rules if r["ipProtocol"] != "tcp"]
    assert len(others) == 1
    assert others[0]["ipProtocol"] == "all" and others[0]["portRange"] == "-1/-1"
    assert others[0]["sourceSecurityGroupId"] == "cluster-sg-id"
    assert "cidrIp" not in others[0]
    assert len(rules) == 5


def test_nas_access_rule_allows_the_vpc_cidr():
    monitor, _, resolved = deploy(make_args())
    rules = monitor.of_type("alicloud:nas/accessRule:AccessRule")
    assert len(rules) == 1
    rule = rules[0]["inputs"]
    assert rule["sourceCidrIp"] == "10.10.0.0/16"
    assert rule["rwAccessType"] == "RDWR" and rule["userAccessType"] == "no_squash"
    fs = monitor.of_type("alicloud:nas/fileSystem:FileSystem")[0]["inputs"]
    assert fs["protocolType"] == "NFS" and fs["storageType"] == "Performance" and fs["fileSystemType"] == "standard"
    mount = monitor.of_type("alicloud:nas/mountTarget:MountTarget")[0]["inputs"]
    assert mount["vswitchId"] == "cluster-vswitch-id" and mount["networkType"] == "Vpc"
    assert resolved["domain"] == DOMAIN


def test_gpu_instances_depend_on_the_download_step_and_the_mount_target():
    monitor, _, resolved = deploy(make_args())
    download = monitor.named("cluster-model-download")
    assert download["type"] == COMMAND
    assert monitor.urn("cluster-downloader") in download["dependencies"]
    gpus = [r for r in monitor.of_type(INSTANCE) if r["name"].startswith("cluster-gpu-")]
    assert [g["name"] for g in gpus] == ["cluster-gpu-0", "cluster-gpu-1"]
    for gpu in gpus:
        assert monitor.urn("cluster-model-download") in gpu["dependencies"]
        assert monitor.urn("cluster-nas-mount") in gpu["dependencies"]
    downloader = monitor.named("cluster-downloader")
    assert monitor.urn("cluster-nas-mount") in downloader["dependencies"]
    assert monitor.urn("cluster-model-download") not in downloader["dependencies"]
    # The GPU nodes are registered only after the download step.
    names = [r["name"] for r in monitor.registrations]
    assert names.index("cluster-model-download") < names.index("cluster-gpu-0")
    assert resolved["summary"] == SUMMARY
    cluster = resolved["cluster"]
    assert [h.name for h in cluster.gpu_hosts] == ["qwen-gpu-0", "qwen-gpu-1"]
    assert all(h.user == "root" and h.gpu_count == 2 for h in cluster.gpu_hosts)
    assert cluster.downloader_host.gpu_count == 0
    assert resolved["gpu_private"] == ["10.0.0.10", "10.0.0.11"]
    assert resolved["gpu_public"] == ["47.0.0.10", "47.0.0.11"]
    assert resolved["downloader_public"] == "47.0.0.5"


def test_download_step_waits_for_the_model_dir_with_the_timeout():
    monitor, _, _ = deploy(make_args(download_timeout_hours=3))
    create = monitor.named("cluster-model-download")["inputs"]["create"]
    assert "MODEL_DIR=/mnt/models/Qwen2.5-72B-Instruct" in create
    assert "DOWNLOAD_TIMEOUT=10800" in create
    assert "QWEN_STEP=model-download" in create


def test_instance_charge_bandwidth_disk_and_names():
    monitor, _, _ = deploy(make_args())
    instances = {r["name"]: r["inputs"] for r in monitor.of_type(INSTANCE)}
    assert set(instances) == {"cluster-downloader", "cluster-gpu-0", "cluster-gpu-1"}
    for inputs in instances.values():
        assert inputs["instanceChargeType"] == "PostPaid"
        assert inputs["internetChargeType"] == "PayByTraffic"
        assert inputs["internetMaxBandwidthOut"] == 100
        assert inputs["systemDiskCategory"] == "cloud_essd"
        assert inputs["vswitchId"] == "cluster-vswitch-id"
        assert inputs["securityGroups"] == ["cluster-sg-id"]
        assert inputs["keyName"] == "qwen-key"
        assert inputs["tags"]["stack"] == "test"
    assert instances["cluster-gpu-0"]["instanceType"] == GPU_TYPE
    assert instances["cluster-gpu-0"]["systemDiskSize"] == 45
    assert instances["cluster-gpu-1"]["instanceName"] == "qwen-gpu-1"
    assert instances["cluster-downloader"]["instanceType"] == CPU_TYPE
    assert instances["cluster-downloader"]["systemDiskSize"] == 150
    assert instances["cluster-downloader"]["instanceName"] == "qwen-downloader"


def test_user_data_contains_the_mount_target_domain():
    monitor, _, _ = deploy(make_args())
    instances = {r["name"]: r["inputs"] for r in monitor.of_type(INSTANCE)}
    assert instances["cluster-downloader"]["userData"] == f"#cloud-config\n# downloader, nas {DOMAIN}\n"
    for name in ("cluster-gpu-0", "cluster-gpu-1"):
        assert instances[name]["userData"] == f"#cloud-config\n# gpu node, nas {DOMAIN}\n"


def test_looked_up_image_is_ignored_after_creation():
    monitor, mocks, _ = deploy(make_args(image_id=None))
    image_calls = [a for token, a in mocks.calls if token == "alicloud:ecs/getImages:getImages"]
    assert len(image_calls) == 1
    assert image_calls[0]["owners"] == "system" and image_calls[0]["mostRecent"] is True
    for inst in monitor.of_type(INSTANCE):
        assert inst["inputs"]["imageId"] == LOOKED_UP_IMAGE
        assert inst["ignore_changes"] == ["imageId"]


def test_pinned_image_is_used_as_is_without_lookup():
    monitor, mocks, _ = deploy(make_args(image_id="m-pinned"))
    assert not [t for t, _ in mocks.calls if t == "alicloud:ecs/getImages:getImages"]
    for inst in monitor.of_type(INSTANCE):
        assert inst["inputs"]["imageId"] == "m-pinned"
        assert inst["ignore_changes"] == []


def test_every_child_is_parented_to_the_component():
    monitor, _, _ = deploy(make_args())
    component = monitor.urn("cluster")
    assert "qwen:aliyun:AliyunGpuCluster" in component
    children = [urn for urn in monitor.resources if urn != component]
    assert children and all("qwen:aliyun:AliyunGpuCluster$" in urn for urn in children)


def test_model_dir_outside_the_nas_is_rejected():
    with pytest.raises(Exception, match="inside nas_mount_dir"):
        deploy(make_args(model_dir="/data/models/x"))


# ---------------------------------------------------------------------------- stopping the downloader


def test_a_running_downloader_and_its_steps_run_as_usual():
    monitor, _, resolved = deploy(make_args(preflight_urls=["https://registry-1.docker.io/v2/"]))
    downloader = monitor.named("cluster-downloader")
    assert downloader["inputs"]["status"] == "Running" and "stoppedMode" not in downloader["inputs"]
    assert "userData" not in downloader["ignore_changes"]
    for step in ("cluster-model-download", "cluster-preflight"):
        assert monitor.named(step)["ignore_changes"] == []
    assert [h.name for h in resolved["cluster"].gpu_hosts] == ["qwen-gpu-0", "qwen-gpu-1"]


def test_stop_downloader_stops_it_without_charge_and_freezes_its_steps():
    monitor, _, resolved = deploy(make_args(stop_downloader=True, preflight_urls=["https://registry-1.docker.io/v2/"]))
    downloader = monitor.named("cluster-downloader")
    assert downloader["inputs"]["status"] == "Stopped" and downloader["inputs"]["stoppedMode"] == "StopCharging"
    # never replaced (by another model's user data) into a stopped node that cannot download
    assert sorted(downloader["ignore_changes"]) == ["imageId", "userData"]
    for step in ("cluster-model-download", "cluster-preflight"):
        assert sorted(monitor.named(step)["ignore_changes"]) == ["connection", "create"], step
    for gpu in ("cluster-gpu-0", "cluster-gpu-1"):
        assert "status" not in monitor.named(gpu)["inputs"]
    assert resolved["summary"] == SUMMARY  # the NAS holds this model: the GPU steps may run


def test_a_stopped_downloader_refuses_a_model_it_has_not_downloaded():
    def gpu_step_triggers(stop_downloader: bool, revision: str):
        mocks = Mocks(DEFAULT_ZONES, DEFAULT_NAS_OFFERS)
        pulumi.runtime.set_mocks(mocks, project="qwen", stack="test", preview=False, monitor=RecordingMonitor(mocks))

        @pulumi.runtime.test
        def program():
            cluster = AliyunGpuCluster("cluster", make_args(stop_downloader=stop_downloader, model_revision=revision))
            return pulumi.Output.all(*[h.instance_id for h in cluster.gpu_hosts])

        return program()

    gpu_step_triggers(True, "master")  # what the last download reported
    gpu_step_triggers(False, "v2")  # a running downloader downloads v2
    with pytest.raises(Exception, match="stopDownloader is true") as err:
        gpu_step_triggers(True, "v2")
    assert ("qwen:aliyun.stopDownloader is true, but the NAS holds Qwen/Qwen2.5-72B-Instruct at revision master, "
            "not Qwen/Qwen2.5-72B-Instruct at v2") in str(err.value)
    assert "pulumi config set --path qwen:aliyun.stopDownloader false" in str(err.value)


def test_check_held_model():
    check_held_model(SUMMARY, "Qwen/Qwen2.5-72B-Instruct", "master")
    with pytest.raises(ValueError, match="holds Qwen/Qwen2.5-72B-Instruct at revision master, not Qwen/X at master"):
        check_held_model(SUMMARY, "Qwen/X", "master")
