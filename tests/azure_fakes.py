"""A stand-in for azure-mgmt-compute's ComputeManagementClient with the same method signatures,
answering with the SDK's own model objects (ResourceSku, Usage, VirtualMachine) built from the
REST-shaped fixtures. It never reaches a network."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import ResourceSku, Usage, VirtualMachine

from tests.harness import FIXTURES

TEST_SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"


def recorded_skus() -> dict[str, list[dict]]:
    data = json.loads((FIXTURES / "azure_resource_skus.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def recorded_usages() -> dict[str, list[dict]]:
    data = json.loads((FIXTURES / "azure_usages.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def restrict(skus: dict, location: str, size: str, kind: str = "Location", zones: list[str] | None = None,
             reason: str = "NotAvailableForSubscription") -> dict:
    """Add a restriction as the API reports it: type Location (values and restrictionInfo.locations
    name the region) or Zone (restrictionInfo.zones name the zones)."""
    sku = next(s for s in skus[location] if s["name"] == size)
    info = {"locations": [location]} if kind == "Location" else {"locations": [location], "zones": zones or []}
    sku["restrictions"].append({"type": kind, "values": [location], "restrictionInfo": info, "reasonCode": reason})
    return skus


def set_usage(usages: dict, location: str, name: str, current: int, limit: int) -> dict:
    row = next(u for u in usages[location] if u["name"]["value"] == name)
    row["currentValue"], row["limit"] = current, limit
    return usages


def vm_answer(location: str, size: str, priority: str | None = "Spot", zones: list[str] | None = None) -> dict:
    """GET virtualMachines/{name} as the API answers it (trimmed)."""
    props: dict[str, Any] = {"hardwareProfile": {"vmSize": size}, "provisioningState": "Succeeded"}
    if priority:
        props["priority"] = priority
    answer: dict[str, Any] = {"name": "vm-qwen-nc48", "location": location, "type": "Microsoft.Compute/virtualMachines",
                              "properties": props}
    if zones:
        answer["zones"] = zones
    return answer


class FakeComputeClient:
    def __init__(self, skus: dict | None = None, usages: dict | None = None,
                 vms: dict[tuple[str, str], dict] | None = None):
        self.skus = skus if skus is not None else recorded_skus()
        self.usages = usages if usages is not None else recorded_usages()
        self.vms = vms or {}
        self.calls: list[tuple] = []
        self.resource_skus = _ResourceSkus(self)
        self.usage = _Usage(self)
        self.virtual_machines = _VirtualMachines(self)


class _ResourceSkus:
    def __init__(self, client: FakeComputeClient):
        self.client = client

    def list(self, *, filter: str | None = None, include_extended_locations: str | None = None,
             **kwargs: Any) -> Iterator[ResourceSku]:
        match = re.fullmatch(r"location eq '([a-z0-9]+)'", filter or "")
        assert match, f"only a location filter is supported by the API, got {filter!r}"
        self.client.calls.append(("resource_skus.list", match.group(1)))
        return iter([ResourceSku(copy.deepcopy(s)) for s in self.client.skus.get(match.group(1), [])])


class _Usage:
    def __init__(self, client: FakeComputeClient):
        self.client = client

    def list(self, location: str, **kwargs: Any) -> Iterator[Usage]:
        self.client.calls.append(("usage.list", location))
        return iter([Usage(copy.deepcopy(u)) for u in self.client.usages.get(location, [])])


class _VirtualMachines:
    def __init__(self, client: FakeComputeClient):
        self.client = client

    def get(self, resource_group_name: str, vm_name: str, *, expand: str | None = None, **kwargs: Any) -> VirtualMachine:
        self.client.calls.append(("virtual_machines.get", resource_group_name, vm_name))
        answer = self.client.vms.get((resource_group_name, vm_name))
        if answer is None:
            raise ResourceNotFoundError(
                message=f"(ResourceNotFound) The Resource 'Microsoft.Compute/virtualMachines/{vm_name}' under resource "
                        f"group '{resource_group_name}' was not found.")
        return VirtualMachine(copy.deepcopy(answer))
