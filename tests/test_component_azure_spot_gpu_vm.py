"""AzureSpotGpuVm alone, on pulumi mocks, in another region and size than the uksouth stack
(westeurope, Standard_NC24ads_A100_v4, other names), to show nothing is hard-coded."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pulumi
import pytest
from google.protobuf.json_format import MessageToDict

from components.azure_spot_gpu_vm import AzureSpotGpuVm, AzureSpotGpuVmArgs, security_rules
from tests import harness
from tests.harness import CloudMocks, run_pulumi, step_env
from tests.test_remote_step import required_env

COMPONENT = "qwen:azure:AzureSpotGpuVm"
VM = "azure-native:compute:VirtualMachine"
EXT = "azure-native:compute:VirtualMachineExtension"
CIDRS = ["203.0.113.5/32", "192.0.2.0/28"]
PORTS = [22, 9000]
CUSTOM_DATA = "#cloud-config\npackage_update: true\nruncmd:\n  - [echo, westeurope]\n"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIWestEurope ops@we"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nwe\n-----END OPENSSH PRIVATE KEY-----\n"
IMAGE = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "24.04.202601010"}

# The Azure name input of each type: the provider returns it as the resource's `name` output.
NAME_INPUT = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:network:NetworkSecurityGroup": "networkSecurityGroupName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:network:PublicIPAddress": "publicIpAddressName",
    "azure-native:network:NetworkInterface": "networkInterfaceName",
    VM: "vmName",
    EXT: "vmExtensionName",
}


def make_args(**overrides) -> AzureSpotGpuVmArgs:
    values: dict[str, Any] = dict(
        location="westeurope", resource_group_name="rg-llm-we", vnet_name="vnet-llm", vnet_cidr="10.20.0.0/16",
        subnet_name="snet-a100", subnet_cidr="10.20.3.0/24", nsg_name="nsg-a100", public_ip_name="pip-a100",
        nic_name="nic-a100", vm_name="vm-llm-a100-we", vm_size="Standard_NC24ads_A100_v4", gpu_count=1,
        os_disk_size_gb=512, os_disk_type="StandardSSD_LRS", admin_username="ops",
        ssh_public_key=PUBLIC_KEY, ssh_private_key=pulumi.Output.secret(PRIVATE_KEY),
        allowed_cidrs=CIDRS, inbound_ports=PORTS, custom_data=CUSTOM_DATA, image=IMAGE,
        driver_type_handler_version="1.10", driver_settings={"driverVersion": "12.4", "installCUDA": True},
        spot_max_price=0.85, eviction_policy="Delete", tags={"stack": "we"},
    )
    values.update(overrides)
    return AzureSpotGpuVmArgs(**values)


@pytest.fixture(scope="module")
def built():
    captured: dict = {}

    def program():
        vm = AzureSpotGpuVm("a100", make_args())
        captured["vm"] = vm
        host = vm.host
        return {
            "public_ip": vm.public_ip, "private_ip": vm.private_ip,
            "host_public_ip": host.public_ip, "host_private_ip": host.private_ip,
            "host_instance_id": host.instance_id, "host_private_key": host.private_key,
            "host_ready_urns": pulumi.Output.all(*[r.urn for r in host.ready]),
            "driver_urn": vm.driver.urn, "vm_urn": vm.vm.urn, "rg_urn": vm.resource_group.urn,
        }

    run = run_pulumi(program, mocks=CloudMocks())
    return run, captured["vm"]


def test_every_child_is_parented_to_the_component(built):
    run, _ = built
    component = run.one(COMPONENT)
    assert component.name == "a100"
    children = [r for r in run.resources if r.urn != component.urn and r.type != "pulumi:pulumi:Stack"]
    assert {r.type for r in children} == set(NAME_INPUT) | {"command:remote:Command"}
    for r in children:
        assert r.parent == component.urn, r.name
        assert r.name.startswith("a100-"), r.name


def test_names_region_and_size_are_the_given_ones(built):
    run, _ = built
    for typ, key in NAME_INPUT.items():
        if typ == EXT:
            continue
        expected = {"resourceGroupName": "rg-llm-we", "networkSecurityGroupName": "nsg-a100",
                    "virtualNetworkName": "vnet-llm", "subnetName": "snet-a100", "publicIpAddressName": "pip-a100",
                    "networkInterfaceName": "nic-a100", "vmName": "vm-llm-a100-we"}[key]
        assert run.one(typ).inputs[key] == expected, typ
    located = [t for t in NAME_INPUT if t != "azure-native:network:Subnet"]
    for typ in located:
        assert run.one(typ).inputs["location"] == "westeurope", typ
    for typ in NAME_INPUT:
        if typ != "azure-native:resources:ResourceGroup":
            assert run.one(typ).inputs["resourceGroupName"] == "rg-llm-we", typ
    assert run.one("azure-native:network:Subnet").inputs["virtualNetworkName"] == "vnet-llm"
    assert run.one("azure-native:network:Subnet").inputs["addressPrefix"] == "10.20.3.0/24"
    assert run.one("azure-native:network:VirtualNetwork").inputs["addressSpace"]["addressPrefixes"] == ["10.20.0.0/16"]
    assert run.one(EXT).inputs["vmName"] == "vm-llm-a100-we"
    for typ in NAME_INPUT:
        if "tags" in run.one(typ).inputs:
            assert run.one(typ).inputs["tags"]["stack"] == "we", typ


def test_vm_takes_every_setting_from_the_args(built):
    run, _ = built
    i = run.one(VM).inputs
    assert i["hardwareProfile"]["vmSize"] == "Standard_NC24ads_A100_v4"
    assert i["priority"] == "Spot" and i["evictionPolicy"] == "Delete" and i["billingProfile"]["maxPrice"] == 0.85
    assert i["storageProfile"]["imageReference"] == IMAGE
    disk = i["storageProfile"]["osDisk"]
    assert disk["diskSizeGB"] == 512 and disk["managedDisk"]["storageAccountType"] == "StandardSSD_LRS"
    os_profile = i["osProfile"]
    assert os_profile["adminUsername"] == "ops" and os_profile["computerName"] == "vm-llm-a100-we"
    key = os_profile["linuxConfiguration"]["ssh"]["publicKeys"][0]
    assert key == {"path": "/home/ops/.ssh/authorized_keys", "keyData": PUBLIC_KEY}
    assert PRIVATE_KEY not in str(i)
    ext = run.one(EXT).inputs
    assert ext["typeHandlerVersion"] == "1.10"
    assert ext["settings"] == {"driverVersion": "12.4", "installCUDA": True}


def test_custom_data_is_base64_of_the_given_document(built):
    run, _ = built
    vm = run.one(VM)
    assert base64.b64decode(vm.inputs["osProfile"]["customData"]).decode() == CUSTOM_DATA
    assert "osProfile.customData" in vm.ignore_changes


def test_nsg_rules_open_only_the_given_ports_to_the_given_cidrs(built):
    run, _ = built
    rules = run.one("azure-native:network:NetworkSecurityGroup").inputs["securityRules"]
    assert sorted(r["destinationPortRange"] for r in rules) == ["22", "9000"]
    for rule in rules:
        assert rule["sourceAddressPrefixes"] == CIDRS and "sourceAddressPrefix" not in rule
        assert rule["direction"] == "Inbound" and rule["access"] == "Allow" and rule["protocol"] == "Tcp"
    assert not run.of_type("azure-native:network:SecurityRule")


def test_security_rules_one_per_port_from_the_given_cidrs_only():
    rules = security_rules(["203.0.113.5/32"], [22, 8000, 9443])
    assert [r["destination_port_range"] for r in rules] == ["22", "8000", "9443"]
    assert len({r["name"] for r in rules}) == 3
    assert len({r["priority"] for r in rules}) == 3
    for r in rules:
        assert r["source_address_prefixes"] == ["203.0.113.5/32"]
        assert r["direction"] == "Inbound" and r["access"] == "Allow" and r["protocol"] == "Tcp"
        assert "source_address_prefix" not in r
        priority = r["priority"]
        assert isinstance(priority, int) and 100 <= priority <= 4096  # Azure's range for custom rules
    two = security_rules(CIDRS, [443])
    assert len(two) == 1 and two[0]["source_address_prefixes"] == CIDRS
    assert security_rules(CIDRS, []) == []


def test_security_rules_copy_the_cidrs():
    cidrs = ["203.0.113.5/32"]
    rules = security_rules(cidrs, [22])
    cidrs.append("0.0.0.0/0")
    assert rules[0]["source_address_prefixes"] == ["203.0.113.5/32"]


def test_security_rules_refuse_empty_cidrs():
    with pytest.raises(ValueError, match="allowed_cidrs is empty"):
        security_rules([], [22])


def test_component_refuses_empty_cidrs():
    with pytest.raises(ValueError, match="allowed_cidrs is empty"):
        run_pulumi(lambda: AzureSpotGpuVm("x", make_args(allowed_cidrs=[])) and {})


def test_driver_waits_for_cloud_init_which_waits_for_the_vm(built):
    run, _ = built
    vm, ext = run.one(VM), run.one(EXT)
    cloud_init = run.named("a100-cloud-init")
    assert cloud_init.urn in ext.dependencies
    assert vm.urn in cloud_init.dependencies
    assert run.depends_on(ext, vm)
    assert not run.depends_on(cloud_init, ext)
    env = step_env(cloud_init.inputs["create"])
    assert env["QWEN_STEP"] == "cloud-init" and env["QWEN_HOST"] == "vm-llm-a100-we"
    assert required_env("wait_cloud_init.sh") <= set(env)
    assert cloud_init.inputs["triggers"][0] == "5f0c7a52-3c1e-4a59-9d61-0e3c2b7f4a11"  # the mock's vmId
    conn = cloud_init.inputs["connection"]["value"]
    assert conn["host"] == "51.142.202.62" and conn["user"] == "ops" and conn["privateKey"] == PRIVATE_KEY


def test_host_is_ready_once_the_driver_is_in(built):
    run, component = built
    host = component.host
    assert host.ready == [component.driver]
    assert run.outputs["host_ready_urns"] == [run.one(EXT).urn] == [run.outputs["driver_urn"]]
    assert host.name == "vm-llm-a100-we" and host.user == "ops" and host.gpu_count == 1
    assert run.outputs["host_public_ip"] == run.outputs["public_ip"] == "51.142.202.62"
    assert run.outputs["host_private_ip"] == run.outputs["private_ip"] == "10.10.1.4"
    assert run.outputs["host_instance_id"] == "5f0c7a52-3c1e-4a59-9d61-0e3c2b7f4a11"
    assert run.outputs["host_private_key"] == PRIVATE_KEY


class TriggerMonitor(harness.RecordingMonitor):
    """Also keeps each registration's replacement_trigger (the harness does not record it)."""

    triggers: dict[str, object] = {}

    def RegisterResource(self, request):
        if request.HasField("replacement_trigger"):
            TriggerMonitor.triggers[request.name] = MessageToDict(request.replacement_trigger)
        return super().RegisterResource(request)


def test_vm_is_replaced_when_the_cloud_config_changes(built, monkeypatch):
    run, _ = built
    vm = run.one(VM)
    assert vm.delete_before_replace
    assert {"storageProfile.imageReference", "osProfile.adminUsername"} <= set(vm.replace_on_changes)
    monkeypatch.setattr(harness, "RecordingMonitor", TriggerMonitor)
    monkeypatch.setattr(TriggerMonitor, "triggers", {})
    other = CUSTOM_DATA + "# v2\n"
    run_pulumi(lambda: {"urn": AzureSpotGpuVm("a100", make_args(custom_data=other)).vm.urn}, mocks=CloudMocks())
    assert TriggerMonitor.triggers["a100-vm"] == hashlib.sha256(other.encode()).hexdigest()
