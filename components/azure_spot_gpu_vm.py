"""AzureSpotGpuVm: a Spot GPU VM with its network, NSG, public IP, accelerated NIC and NVIDIA driver.

Everything a second region or size would change is an argument. The order on the VM is:
create -> wait for cloud-init (its apt work) -> NvidiaGpuDriverLinux extension, so the extension's
apt never races cloud-init's (the known dpkg-lock failure). The ``host`` output is what the
serving layer runs on.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import compute, network, resources

from components.remote import GpuHost, remote_step


@dataclass
class AzureSpotGpuVmArgs:
    """location: Azure region. resource_group_name .. vm_name: the resource names.
    vnet_cidr / subnet_cidr: address ranges. vm_size: a GPU size; gpu_count: its GPUs.
    os_disk_size_gb / os_disk_type: the OS disk (it keeps the weights across evictions).
    admin_username, ssh_public_key, ssh_private_key (secret): login, key only.
    spot_max_price: -1 pays up to the on-demand price. eviction_policy: Deallocate keeps the disk.
    priority: Spot, or Regular (on-demand: no eviction, no max price); zone: an availability zone or
    None (regional). A change of either replaces the VM.
    image: {publisher, offer, sku, version}. allowed_cidrs / inbound_ports: who may reach which TCP
    ports from outside the VNet (nothing else is open). custom_data: the #cloud-config document.
    driver_type_handler_version / driver_settings: the NvidiaGpuDriverLinux extension."""

    location: str
    resource_group_name: str
    vnet_name: str
    vnet_cidr: str
    subnet_name: str
    subnet_cidr: str
    nsg_name: str
    public_ip_name: str
    nic_name: str
    vm_name: str
    vm_size: str
    gpu_count: int
    os_disk_size_gb: int
    os_disk_type: str
    admin_username: str
    ssh_public_key: pulumi.Input[str]
    ssh_private_key: pulumi.Input[str]
    allowed_cidrs: Sequence[str]
    inbound_ports: Sequence[int]
    custom_data: str
    image: compute.ImageReferenceArgsDict
    driver_type_handler_version: str
    driver_settings: Mapping[str, object]
    spot_max_price: float = -1
    eviction_policy: str = "Deallocate"
    priority: str = "Spot"
    zone: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def security_rules(allowed_cidrs: Sequence[str], ports: Sequence[int]) -> list[network.SecurityRuleArgsDict]:
    """Inbound allow rules, one per port, from the allowed CIDRs only. Azure's default rules deny
    everything else from the internet and allow the VNet, which is where Ray's ports stay."""
    if not allowed_cidrs:
        raise ValueError("security_rules: allowed_cidrs is empty")
    return [
        {
            "name": f"allow-tcp-{port}",
            "priority": 1000 + i * 10,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "Tcp",
            "source_address_prefixes": list(allowed_cidrs),
            "source_port_range": "*",
            "destination_address_prefix": "*",
            "destination_port_range": str(port),
        }
        for i, port in enumerate(ports)
    ]


class AzureSpotGpuVm(pulumi.ComponentResource):
    """Outputs: ``public_ip``, ``private_ip``, ``host`` (GpuHost, ready once the driver is in),
    ``vm``, ``driver`` (the extension), ``resource_group``."""

    def __init__(self, name: str, args: AzureSpotGpuVmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:azure:AzureSpotGpuVm", name, None, opts)
        # Named resources cannot coexist with their replacement: delete first.
        named = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        tags = {"managed-by": "pulumi", "component": name, **args.tags}

        self.resource_group = resources.ResourceGroup(
            f"{name}-rg", resource_group_name=args.resource_group_name, location=args.location, tags=tags, opts=named,
        )
        rg_name = self.resource_group.name
        # Rules inline only (never also as SecurityRule resources: the two delete each other).
        nsg = network.NetworkSecurityGroup(
            f"{name}-nsg", network_security_group_name=args.nsg_name, resource_group_name=rg_name,
            location=args.location, security_rules=security_rules(args.allowed_cidrs, args.inbound_ports),
            tags=tags, opts=named,
        )
        # The subnet is a separate resource only (the VNet declares no inline subnets).
        vnet = network.VirtualNetwork(
            f"{name}-vnet", virtual_network_name=args.vnet_name, resource_group_name=rg_name, location=args.location,
            address_space={"address_prefixes": [args.vnet_cidr]}, tags=tags, opts=named,
        )
        subnet = network.Subnet(
            f"{name}-subnet", subnet_name=args.subnet_name, resource_group_name=rg_name,
            virtual_network_name=vnet.name, address_prefix=args.subnet_cidr, opts=named,
        )
        public_ip = network.PublicIPAddress(
            f"{name}-pip", public_ip_address_name=args.public_ip_name, resource_group_name=rg_name,
            location=args.location, sku={"name": "Standard", "tier": "Regional"},
            public_ip_allocation_method="Static", public_ip_address_version="IPv4", tags=tags, opts=named,
        )
        nic = network.NetworkInterface(
            f"{name}-nic", network_interface_name=args.nic_name, resource_group_name=rg_name, location=args.location,
            enable_accelerated_networking=True,
            network_security_group={"id": nsg.id},
            ip_configurations=[{
                "name": "ipconfig1",
                "primary": True,
                "subnet": {"id": subnet.id},
                "public_ip_address": {"id": public_ip.id},
                "private_ip_allocation_method": "Dynamic",
            }],
            tags=tags, opts=named,
        )
        custom_data = base64.b64encode(args.custom_data.encode()).decode()
        self.vm = compute.VirtualMachine(
            f"{name}-vm", vm_name=args.vm_name, resource_group_name=rg_name, location=args.location,
            hardware_profile={"vm_size": args.vm_size},
            priority=args.priority,
            # Eviction terms exist for Spot only; Azure refuses them on a Regular VM.
            eviction_policy=args.eviction_policy if args.priority == "Spot" else None,
            billing_profile={"max_price": args.spot_max_price} if args.priority == "Spot" else None,
            zones=[args.zone] if args.zone else None,
            storage_profile={
                "image_reference": args.image,
                "os_disk": {
                    "create_option": "FromImage",
                    "disk_size_gb": args.os_disk_size_gb,
                    "managed_disk": {"storage_account_type": args.os_disk_type},
                    "caching": compute.CachingTypes.READ_WRITE,
                    "delete_option": "Delete",
                },
            },
            os_profile={
                "computer_name": args.vm_name,
                "admin_username": args.admin_username,
                "custom_data": custom_data,
                "linux_configuration": {
                    "disable_password_authentication": True,
                    "ssh": {"public_keys": [{
                        "path": f"/home/{args.admin_username}/.ssh/authorized_keys",
                        "key_data": args.ssh_public_key,
                    }]},
                },
            },
            network_profile={"network_interfaces": [{"id": nic.id, "primary": True}]},
            # Secure Boot makes the driver extension hang (unsigned DKMS module): both off.
            security_profile={
                "security_type": "TrustedLaunch",
                "uefi_settings": {"secure_boot_enabled": False, "v_tpm_enabled": False},
            },
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                # Azure refuses in-place changes of these; replace the VM instead.
                replace_on_changes=["storageProfile.imageReference", "osProfile.adminUsername",
                                    "osProfile.linuxConfiguration", "securityProfile",
                                    # a new placement (issue 11): Azure cannot change priority or zone in
                                    # place, and a resize across GPU families needs a deallocated VM
                                    "priority", "zones", "hardwareProfile.vmSize"],
                # GET VM never returns customData, so after a refresh it would look changed and
                # replace the VM: ignore it, and replace on a change of its hash instead.
                ignore_changes=["osProfile.customData"],
                replacement_trigger=hashlib.sha256(args.custom_data.encode()).hexdigest(),
            ),
        )
        self.public_ip = public_ip.ip_address.apply(lambda ip: ip or "")
        self.private_ip = nic.ip_configurations.apply(lambda cfgs: (cfgs[0].private_ip_address or "") if cfgs else "")

        boot_host = GpuHost(
            name=args.vm_name, public_ip=self.public_ip, private_ip=self.private_ip, user=args.admin_username,
            private_key=args.ssh_private_key, gpu_count=args.gpu_count, instance_id=self.vm.vm_id, ready=[self.vm],
        )
        cloud_init = remote_step(
            f"{name}-cloud-init", step="cloud-init", host=boot_host, script="wait_cloud_init.sh",
            env={"CLOUD_INIT_TIMEOUT": "2700"}, parent=self, depends_on=[self.vm],
        )
        self.driver = compute.VirtualMachineExtension(
            f"{name}-nvidia-driver", vm_extension_name="NvidiaGpuDriverLinux", vm_name=self.vm.name,
            resource_group_name=rg_name, location=args.location,
            publisher="Microsoft.HpcCompute", type="NvidiaGpuDriverLinux",
            type_handler_version=args.driver_type_handler_version, auto_upgrade_minor_version=True,
            settings=dict(args.driver_settings),
            # Deleting the VM deletes its extensions; deleting the extension alone needs a running VM,
            # so `pulumi destroy` of an evicted (deallocated) VM would fail on it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cloud_init], deleted_with=self.vm),
        )
        self.host = GpuHost(
            name=args.vm_name, public_ip=self.public_ip, private_ip=self.private_ip, user=args.admin_username,
            private_key=args.ssh_private_key, gpu_count=args.gpu_count, instance_id=self.vm.vm_id,
            booted=[self.vm], ready=[self.driver],
        )
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip, "vm_id": self.vm.vm_id})
