"""Azure stack: one Spot GPU VM (AzureSpotGpuVm) serving the model from its OS disk."""

from __future__ import annotations

import pulumi

import cloudinit
from components.azure_spot_gpu_vm import AzureSpotGpuVm, AzureSpotGpuVmArgs
from components.ssh_key import SshKey, SshKeyArgs
from stacks.outputs import StackOutputs
from stacks.serving import serve_and_measure, stack_outputs
from stacks.settings import Settings

# Weights live on the persistent OS disk (the NVMe and temp disks are wiped on eviction).
MODEL_ROOT = "/var/lib/qwen/models"


def build(settings: Settings) -> StackOutputs:
    az = settings.azure
    assert az is not None, "settings put every Azure stack's qwen:azure section in place"
    assert az.location is not None and az.vm_size is not None and az.gpu is not None, \
        "the preflight places the VM (location and vmSize) before the composition"
    model_dir = f"{MODEL_ROOT}/{settings.model.dir_name}"
    key = SshKey("ssh", SshKeyArgs(settings.access.ssh_public_key, settings.access.ssh_private_key))
    custom_data = cloudinit.gpu_node(toolkit_repo=settings.serving.container_toolkit_repo)
    vm = AzureSpotGpuVm("gpu", AzureSpotGpuVmArgs(
        location=az.location, resource_group_name=az.resource_group_name,
        vnet_name=az.vnet_name, vnet_cidr=az.vnet_cidr, subnet_name=az.subnet_name, subnet_cidr=az.subnet_cidr,
        nsg_name=az.nsg_name, public_ip_name=az.public_ip_name, nic_name=az.nic_name, vm_name=az.vm_name,
        vm_size=az.vm_size, gpu_count=az.gpu.gpus, os_disk_size_gb=az.os_disk_size_gb, os_disk_type=az.os_disk_type,
        admin_username=az.admin_username, ssh_public_key=key.public_key, ssh_private_key=key.private_key,
        allowed_cidrs=settings.access.allowed_cidrs, inbound_ports=[22, settings.serving.port],
        custom_data=custom_data,
        image={"publisher": az.image.publisher, "offer": az.image.offer, "sku": az.image.sku, "version": az.image.version},
        driver_type_handler_version=az.nvidia_driver.type_handler_version, driver_settings=az.nvidia_driver.settings,
        spot_max_price=az.spot_max_price, eviction_policy=az.eviction_policy, tags={"stack": settings.stack},
        priority=az.priority, zone=az.zone,  # the preflight's placement (issue 11)
    ))
    serving = serve_and_measure(settings, [vm.host], MODEL_ROOT, model_dir, prefetch_model=True)
    return stack_outputs(
        settings, serving, public_ip=vm.public_ip,
        ssh_command=pulumi.Output.concat("ssh -i ", settings.access.ssh_key_file, " ", az.admin_username, "@", vm.public_ip),
        generated_ssh_private_key=key.private_key if key.generated else None,
    )
