"""Aliyun preflight: before any resource, the GPU instance type must be sold for a vSwitch in a zone
of the region (else: the regions to try), and the account's ECS vCPU quota for the GPU family, where
Quota Center reports one, must hold every GPU node.

The zone itself is still chosen by AliyunGpuCluster (the same look-up); this only fails early and
clearly. Invokes go through the alicloud provider, so tests answer them with Pulumi mocks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pulumi
import pulumi_alicloud as alicloud

from components.aliyun_gpu_cluster import choose_zone, nas_zone_ids
from stacks.preflight.errors import PreflightError
from stacks.settings import Settings

# Regions to try when the GPU family is sold nowhere in alicloud:region. NOT verified by this project:
# ../shared/FACTS.md lists no regions for gn8is, and the instance-type-by-region page of the ECS buy
# console (https://ecs-buy.aliyun.com/instanceTypes/#/instanceTypeByRegion) could not be read from
# here. These are mainland regions where Alibaba sells its current GPU families; the message also
# gives the command that answers for certain.
REGIONS_TO_TRY = {"gn8is": ("cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-wulanchabu", "cn-shenzhen")}
QUOTA_CENTER = "https://quotas.console.aliyun.com/products/ecs/quotas"


def instance_family(instance_type: str) -> str:
    """ecs.gn8is-2x.8xlarge -> gn8is (the -2x marks the GPU count, not another family)."""
    parts = instance_type.split(".")
    return parts[1].split("-")[0] if len(parts) >= 3 else instance_type


def instance_vcpus(instance_type: str) -> int | None:
    """vCPUs from Alibaba's naming, where `<n>xlarge` has 4n vCPUs, `xlarge` 4 and `large` 2
    (ecs.gn8is-2x.8xlarge: 32, as FACTS.md lists)."""
    size = instance_type.rsplit(".", 1)[-1]
    match = re.fullmatch(r"(\d*)xlarge", size)
    if match:
        return 4 * int(match.group(1) or 1)
    return 2 if size == "large" else None


def sold_nowhere(instance_type: str, region: str) -> str:
    family = instance_family(instance_type)
    others = [r for r in REGIONS_TO_TRY.get(family, ()) if r != region]
    to_try = f"try {', '.join(others)} (unverified list) with " if others else "try another region with "
    return (f"alicloud:region: {instance_type} is sold for a vSwitch in no zone of {region}; {to_try}"
            f"`pulumi config set alicloud:region <region>`; check one with `aliyun ecs DescribeAvailableResource "
            f"--RegionId <region> --DestinationResource InstanceType --InstanceType {instance_type}`")


def quota_problems(quotas: Iterable[Any], instance_type: str, node_count: int, region: str) -> tuple[list[str], int]:
    """Problems with every reported vCPU quota of the instance family, and how many such quotas were found."""
    family = instance_family(instance_type)
    vcpus = instance_vcpus(instance_type)
    if vcpus is None:
        return [], 0
    needed = vcpus * node_count
    problems, found = [], 0
    for quota in quotas:
        text = " ".join(str(x or "") for x in (quota.quota_name, quota.quota_description, quota.quota_action_code)).lower()
        if family not in text or "vcpu" not in text or not quota.consumable:
            continue
        found += 1
        free = quota.total_quota - quota.total_usage
        if free < needed:
            problems.append(
                f"alicloud:region {region}: quota '{quota.quota_name}' ({quota.quota_action_code}) has {free:g} of "
                f"{quota.total_quota:g} vCPUs free; {node_count} x {instance_type} need {needed} (qwen:aliyun.gpuNodeCount "
                f"x {vcpus}); request at least {quota.total_usage + needed:g} at {QUOTA_CENTER}, "
                "or lower qwen:aliyun.gpuNodeCount")
    return problems, found


def region() -> str | None:
    """The provider's region: its config, then its environment variable."""
    return pulumi.Config("alicloud").get("region") or os.environ.get("ALICLOUD_REGION")


def check(settings: Settings) -> None:
    """Raise PreflightError when the region cannot sell or the account cannot hold the GPU nodes."""
    ali, stack = settings.aliyun, settings.stack
    assert ali is not None, "settings put every Aliyun stack's qwen:aliyun section in place"
    if not settings.preflight.enabled:
        pulumi.log.warn("qwen:preflight.enabled is false: the GPU type's zones and the account's ECS quota were NOT "
                        "checked; `pulumi up` may fail at the GPU nodes")
        return
    where = region() or "the provider's region"
    gpu_zones = alicloud.get_zones(available_instance_type=ali.gpu_instance_type, available_resource_creation="VSwitch")
    if not gpu_zones.ids:
        raise PreflightError(stack, [sold_nowhere(ali.gpu_instance_type, where)])
    downloader_zones = alicloud.get_zones(available_instance_type=ali.downloader_instance_type,
                                          available_resource_creation="VSwitch")
    nas_zones = alicloud.nas.get_zones(file_system_type="standard")
    try:
        choose_zone(gpu_zones.ids, downloader_zones.ids, nas_zone_ids(nas_zones.zones, ali.nas.storage_type),
                    ali.gpu_instance_type, ali.downloader_instance_type, ali.nas.storage_type)
    except ValueError as err:
        raise PreflightError(stack, [f"alicloud:region {where}: {err}; the keys: qwen:aliyun.downloaderInstanceType, "
                                     "qwen:aliyun.nas.storageType"]) from err
    if region() is None:
        pulumi.log.info("alicloud:region is not set here (the provider's default applies): the ECS quota was not checked")
        return
    try:
        answer = alicloud.quotas.get_quotas(product_code="ecs", dimensions=[{"key": "regionId", "value": where}])
        quotas: Sequence[Any] = answer.quotas or []
    except Exception as err:  # noqa: BLE001 - an invoke failure is a plain Exception; the quota is a bonus check
        pulumi.log.warn(f"could not read the ECS quotas from Quota Center ({str(err).splitlines()[0] if str(err) else err}); "
                        "the vCPU quota was NOT checked")
        return
    problems, found = quota_problems(quotas, ali.gpu_instance_type, ali.gpu_node_count, where)
    if problems:
        raise PreflightError(stack, problems)
    if not found:
        pulumi.log.info(f"Quota Center reports no vCPU quota for {instance_family(ali.gpu_instance_type)} in {where}; "
                        "only the zones were checked")
