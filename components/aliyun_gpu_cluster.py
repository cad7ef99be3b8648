"""AliyunGpuCluster: GPU ECS nodes and a cheap downloader on one VPC, the weights on a shared NAS.

The zone is the first one (sorted) where both instance types are sold for a vSwitch and the NAS
offers the storage type over NFS (the NAS shares the nodes' zone and vSwitch). The order is:
network, security group, NAS + mount target -> downloader (cloud-init mounts the NAS and downloads
the weights with ModelScope) -> the ``model-download`` step waits until every file is verified ->
only then the GPU nodes, the expensive part, are bought. Every instance depends on the mount
target, so ``pulumi destroy`` removes the instances before it (a client that still mounts a
deleted mount target hangs). The ``gpu_hosts`` output is what the serving layer runs on.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_alicloud as alicloud

from components.remote import GpuHost, remote_step


@dataclass
class AliyunGpuClusterArgs:
    """name_prefix: prefix of every cloud-side name (VPC, vSwitch, group, key pair, NAS, instances).
    vpc_cidr / vswitch_cidr: address ranges; the vSwitch lies inside the VPC, the NAS accepts the VPC.
    gpu_instance_type: the GPU ECS type (e.g. ecs.gn8is-2x.8xlarge); gpu_node_count: how many;
    gpus_per_node: its GPUs; gpu_system_disk_gb: its system disk (the weights live on the NAS).
    downloader_instance_type / downloader_system_disk_gb: the CPU node that downloads the weights.
    system_disk_category: disk category of both (e.g. cloud_essd).
    internet_max_bandwidth_out: Mbps of public outbound bandwidth, pay-by-traffic, on every node.
    image_name_regex: system image name looked up (most recent) when image_id is None; image_id: a
    pinned image. A looked-up image is ignored after creation, so a newer one never replaces a node.
    allowed_cidrs / inbound_ports: who may reach which TCP ports from outside (22 and the API port);
    nothing else is open, except all traffic between members of the group (Ray, NCCL, Gloo).
    ssh_public_key / ssh_private_key (secret): root login, key only.
    nas_storage_type: General-purpose NAS storage type (Performance, Capacity, Premium).
    nas_mount_dir: where every node mounts the NAS; model_dir: absolute path of the weights, inside it;
    model_id / model_revision: the model whose completion marker the download step waits for.
    stop_downloader: stop the downloader without charge (in place, never replaced while stopped);
    its steps are then kept as they last ran, and the GPU steps refuse to run unless they reported
    this model and revision (a stopped downloader cannot download another).
    gpu_user_data / downloader_user_data: build the #cloud-config of a GPU node / the downloader
    from the NAS mount-target domain. download_timeout_hours: how long the download step waits.
    preflight_urls: URLs the GPU nodes will need (image registry, apt repositories), checked from
    the downloader before any GPU node is bought; preflight_hint: the fix to print when one fails.
    tags: added to every taggable resource."""

    name_prefix: str
    vpc_cidr: str
    vswitch_cidr: str
    gpu_instance_type: str
    gpu_node_count: int
    gpus_per_node: int
    gpu_system_disk_gb: int
    downloader_instance_type: str
    downloader_system_disk_gb: int
    system_disk_category: str
    internet_max_bandwidth_out: int
    image_name_regex: str
    allowed_cidrs: Sequence[str]
    inbound_ports: Sequence[int]
    ssh_public_key: pulumi.Input[str]
    ssh_private_key: pulumi.Input[str]
    nas_storage_type: str
    nas_mount_dir: str
    model_dir: str
    model_id: str
    model_revision: str
    stop_downloader: bool
    gpu_user_data: Callable[[str], str]
    downloader_user_data: Callable[[str], str]
    download_timeout_hours: int
    image_id: str | None = None
    preflight_urls: Sequence[str] = ()
    preflight_hint: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


def nas_zone_ids(zones: Sequence, storage_type: str) -> list[str]:
    """Zones of `alicloud.nas.get_zones()` whose instance types offer `storage_type` over NFS."""
    return [
        zone.zone_id for zone in zones or []
        if any(offer.storage_type.lower() == storage_type.lower() and offer.protocol_type.lower() == "nfs"
               for offer in zone.instance_types or [])
    ]


def choose_zone(gpu_zone_ids: Sequence[str], downloader_zone_ids: Sequence[str], nas_zone_ids: Sequence[str],
                gpu_instance_type: str, downloader_instance_type: str, nas_storage_type: str) -> str:
    """The first zone id (sorted) in all three lists: every node and the NAS mount target on one
    vSwitch, in one zone."""
    common = sorted(set(gpu_zone_ids or []) & set(downloader_zone_ids or []) & set(nas_zone_ids or []))
    if not common:

        def where(ids: Sequence[str]) -> str:
            return ", ".join(sorted(ids or [])) or "none"

        raise ValueError(
            f"no zone of this region sells {gpu_instance_type} (sold in: {where(gpu_zone_ids)}), "
            f"{downloader_instance_type} (sold in: {where(downloader_zone_ids)}) for a vSwitch and a "
            f"{nas_storage_type} NFS file system (offered in: {where(nas_zone_ids)}); pick another region "
            "(alicloud:region), instance type or NAS storage type"
        )
    return common[0]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def ingress_rules(allowed_cidrs: Sequence[str], ports: Sequence[int]) -> list[dict]:
    """Inbound TCP accept rules, one per port and allowed CIDR. ``key`` names the resource."""
    if not allowed_cidrs:
        raise ValueError("ingress_rules: allowed_cidrs is empty")
    if not ports:
        raise ValueError("ingress_rules: inbound_ports is empty")
    return [
        {
            "key": f"tcp-{port}-{_slug(cidr)}",
            "type": "ingress",
            "ip_protocol": "tcp",
            "port_range": f"{port}/{port}",
            "cidr_ip": cidr,
            "nic_type": "intranet",
            "policy": "accept",
        }
        for port in dict.fromkeys(int(p) for p in ports)
        for cidr in dict.fromkeys(allowed_cidrs)
    ]


def parse_download_summary(text: str) -> dict:
    """The completion marker the model-download step prints: {model, revision, files, bytes}."""
    try:
        summary = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"model-download output is not the completion JSON: {err}: {text[:200]!r}") from err
    if not isinstance(summary, dict) or "files" not in summary:
        raise ValueError(f"model-download output has no file count: {text[:200]!r}")
    return summary


def check_held_model(summary: dict, model_id: str, model_revision: str) -> None:
    """With the downloader stopped, the NAS must hold the wanted model: the last download says which."""
    if (summary.get("model"), summary.get("revision")) != (model_id, model_revision):
        raise ValueError(
            f"qwen:aliyun.stopDownloader is true, but the NAS holds {summary.get('model')} at revision "
            f"{summary.get('revision')}, not {model_id} at {model_revision}, and a stopped downloader cannot "
            "download it. Set `pulumi config set --path qwen:aliyun.stopDownloader false`, run `pulumi up` "
            "(the downloader starts and downloads), then set it true again"
        )


def _check_model_dir(model_dir: str, nas_mount_dir: str) -> None:
    mount = posixpath.normpath(nas_mount_dir)
    if not posixpath.isabs(model_dir) or not posixpath.normpath(model_dir).startswith(mount.rstrip("/") + "/"):
        raise ValueError(f"model_dir '{model_dir}' must be an absolute path inside nas_mount_dir '{nas_mount_dir}'")


class AliyunGpuCluster(pulumi.ComponentResource):
    """Outputs: ``gpu_hosts`` (GpuHost per GPU node, head first), ``downloader_host``, ``download``
    (the model-download step), ``download_summary`` (its parsed JSON), ``zone_id``, ``vpc_id``,
    ``mount_target_domain``, ``gpu_instances``, ``downloader_instance``."""

    def __init__(self, name: str, args: AliyunGpuClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:aliyun:AliyunGpuCluster", name, None, opts)
        if args.gpu_node_count < 1:
            raise ValueError("AliyunGpuCluster needs gpu_node_count >= 1")
        _check_model_dir(args.model_dir, args.nas_mount_dir)
        rules = ingress_rules(args.allowed_cidrs, args.inbound_ports)
        prefix = args.name_prefix
        tags = {"managed-by": "pulumi", "component": name, **args.tags}
        child = pulumi.ResourceOptions(parent=self)
        # Names that must be unique (key pair, access group) cannot coexist with their replacement.
        named = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        invoke = pulumi.InvokeOptions(parent=self)

        gpu_zones = alicloud.get_zones(available_instance_type=args.gpu_instance_type,
                                       available_resource_creation="VSwitch", opts=invoke)
        downloader_zones = alicloud.get_zones(available_instance_type=args.downloader_instance_type,
                                              available_resource_creation="VSwitch", opts=invoke)
        nas_zones = alicloud.nas.get_zones(file_system_type="standard", opts=invoke)
        self.zone_id = choose_zone(gpu_zones.ids, downloader_zones.ids, nas_zone_ids(nas_zones.zones, args.nas_storage_type),
                                   args.gpu_instance_type, args.downloader_instance_type, args.nas_storage_type)

        image_id = args.image_id
        if image_id is None:
            images = alicloud.ecs.get_images(name_regex=args.image_name_regex, owners="system",
                                             most_recent=True, opts=invoke)
            if not images.ids:
                raise ValueError(f"no system image matches image_name_regex '{args.image_name_regex}' in this region; "
                                 "fix the regex or pin image_id")
            image_id = images.ids[0]

        vpc = alicloud.vpc.Network(f"{name}-vpc", vpc_name=f"{prefix}-vpc", cidr_block=args.vpc_cidr, tags=tags, opts=child)
        self.vpc_id = vpc.id
        vswitch = alicloud.vpc.Switch(
            f"{name}-vswitch", vswitch_name=f"{prefix}-vswitch", vpc_id=vpc.id, cidr_block=args.vswitch_cidr,
            zone_id=self.zone_id, tags=tags, opts=child,
        )

        sg = alicloud.ecs.SecurityGroup(
            f"{name}-sg", security_group_name=f"{prefix}-sg", vpc_id=vpc.id,
            description="qwen: SSH and the API from the allowed CIDRs; all traffic between members", tags=tags, opts=child,
        )
        for rule in rules:
            alicloud.ecs.SecurityGroupRule(
                f"{name}-sg-{rule['key']}", security_group_id=sg.id, type=rule["type"], ip_protocol=rule["ip_protocol"],
                port_range=rule["port_range"], cidr_ip=rule["cidr_ip"], nic_type=rule["nic_type"], policy=rule["policy"],
                opts=child,
            )
        # Ray, NCCL and Gloo use many ports between the nodes: open everything inside the group only.
        alicloud.ecs.SecurityGroupRule(
            f"{name}-sg-intra-group", security_group_id=sg.id, type="ingress", ip_protocol="all", port_range="-1/-1",
            source_security_group_id=sg.id, nic_type="intranet", policy="accept", opts=child,
        )

        key_pair = alicloud.ecs.EcsKeyPair(
            f"{name}-key", key_pair_name=f"{prefix}-key", public_key=args.ssh_public_key, tags=tags, opts=named,
        )

        # In the nodes' zone: 145 GB of weights are read over NFS at every start of vLLM.
        nas = alicloud.nas.FileSystem(
            f"{name}-nas", protocol_type="NFS", storage_type=args.nas_storage_type, file_system_type="standard",
            zone_id=self.zone_id, description=f"{prefix} model weights", tags=tags, opts=child,
        )
        access_group = alicloud.nas.AccessGroup(
            f"{name}-nas-access", access_group_name=f"{prefix}-nas-access", access_group_type="Vpc",
            file_system_type="standard", description=f"{prefix}: the VPC only", opts=named,
        )
        alicloud.nas.AccessRule(
            f"{name}-nas-access-vpc", access_group_name=access_group.access_group_name, file_system_type="standard",
            source_cidr_ip=args.vpc_cidr, rw_access_type="RDWR", user_access_type="no_squash", priority=1, opts=child,
        )
        mount_target = alicloud.nas.MountTarget(
            f"{name}-nas-mount", file_system_id=nas.id, access_group_name=access_group.access_group_name,
            vswitch_id=vswitch.id, vpc_id=vpc.id, network_type="Vpc", opts=child,
        )
        self.mount_target_domain = mount_target.mount_target_domain

        def instance(resource_name: str, instance_name: str, instance_type: str, disk_gb: int,
                     user_data: Callable[[str], str], depends_on: list, **power) -> alicloud.ecs.Instance:
            ignored = ["image_id"] if args.image_id is None else []
            if power.get("status") == "Stopped":
                # A new user_data (another model) would replace the node by a stopped one that never downloads.
                ignored.append("user_data")
            return alicloud.ecs.Instance(
                resource_name, instance_name=instance_name, host_name=instance_name, instance_type=instance_type,
                image_id=image_id, vswitch_id=vswitch.id, security_groups=[sg.id],
                system_disk_category=args.system_disk_category, system_disk_size=disk_gb,
                # The provider no longer defaults these: set them explicitly.
                instance_charge_type="PostPaid", internet_charge_type="PayByTraffic",
                internet_max_bandwidth_out=args.internet_max_bandwidth_out,
                key_name=key_pair.key_pair_name, user_data=self.mount_target_domain.apply(user_data), tags=tags,
                **power,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # The mount target outlives every client: destroy removes the instances first.
                    depends_on=[mount_target, *depends_on],
                    # A most_recent lookup changes over time: never replace a node for a newer image.
                    ignore_changes=ignored or None,
                    # A user_data change is applied in place with a reboot but first-boot scripts do
                    # not run again: replace the node so the new document really takes effect.
                    replace_on_changes=["userData"],
                ),
            )

        # Stopped without charge (StopCharging releases its vCPUs, memory and public IP); Running
        # again when the setting is turned off, which starts the instance in place.
        downloader_power = ({"status": "Stopped", "stopped_mode": "StopCharging"} if args.stop_downloader
                            else {"status": "Running"})
        self.downloader_instance = instance(
            f"{name}-downloader", f"{prefix}-downloader", args.downloader_instance_type,
            args.downloader_system_disk_gb, args.downloader_user_data, [], **downloader_power,
        )
        private_key = pulumi.Output.secret(args.ssh_private_key)
        self.downloader_host = GpuHost(
            name=f"{prefix}-downloader", public_ip=self.downloader_instance.public_ip,
            private_ip=self.downloader_instance.private_ip, user="root", private_key=private_key, gpu_count=0,
            instance_id=self.downloader_instance.id, ready=[self.downloader_instance],
        )
        self.download = remote_step(
            f"{name}-model-download", step="model-download", host=self.downloader_host, script="wait_model_download.sh",
            env={"MODEL_DIR": args.model_dir, "MODEL_REVISION": args.model_revision,
                 "DOWNLOAD_TIMEOUT": str(args.download_timeout_hours * 3600)},
            parent=self, depends_on=[self.downloader_instance], frozen=args.stop_downloader,
        )
        self.download_summary = self.download.stdout.apply(parse_download_summary)
        gates: list[pulumi.Resource] = [self.download]
        self.preflight = None
        if args.preflight_urls:
            # Checked from the cheap downloader, in the region, before any GPU node is bought.
            self.preflight = remote_step(
                f"{name}-preflight", step="preflight-reachability", host=self.downloader_host,
                script="reachability.sh", env={"URLS": "\n".join(args.preflight_urls), "HINT": args.preflight_hint},
                parent=self, depends_on=[self.downloader_instance], frozen=args.stop_downloader,
            )
            gates.append(self.preflight)

        # The GPU nodes are bought only once the weights are complete on the NAS.
        self.gpu_instances = [
            instance(f"{name}-gpu-{i}", f"{prefix}-gpu-{i}", args.gpu_instance_type, args.gpu_system_disk_gb,
                     args.gpu_user_data, gates)
            for i in range(args.gpu_node_count)
        ]
        # Every step on a GPU node has its node's id among its triggers: with the downloader stopped,
        # that id resolves only when the NAS holds the wanted model, so no serving step runs without it.
        held = (self.download_summary.apply(lambda s: check_held_model(s, args.model_id, args.model_revision))
                if args.stop_downloader else None)
        self.gpu_hosts = [
            GpuHost(
                name=f"{prefix}-gpu-{i}", public_ip=vm.public_ip, private_ip=vm.private_ip, user="root",
                private_key=private_key, gpu_count=args.gpus_per_node, booted=[vm], ready=[],
                instance_id=vm.id if held is None else pulumi.Output.all(vm.id, held).apply(lambda v: v[0]),
            )
            for i, vm in enumerate(self.gpu_instances)
        ]
        self.register_outputs({
            "zone_id": self.zone_id,
            "vpc_id": self.vpc_id,
            "mount_target_domain": self.mount_target_domain,
            "download_summary": self.download_summary,
            "downloader_public_ip": self.downloader_instance.public_ip,
            "gpu_public_ips": [vm.public_ip for vm in self.gpu_instances],
            "gpu_private_ips": [vm.private_ip for vm in self.gpu_instances],
        })
