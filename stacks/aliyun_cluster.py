"""Aliyun stack: GPU nodes + a downloader on one VPC, the weights on a NAS mounted by all of them."""

from __future__ import annotations

import pulumi

import cloudinit
from components.aliyun_gpu_cluster import AliyunGpuCluster, AliyunGpuClusterArgs
from components.prefetch import registry_probe_urls
from components.ssh_key import SshKey, SshKeyArgs
from stacks.outputs import StackOutputs
from stacks.serving import serve_and_measure, stack_outputs
from stacks.settings import Settings


def build(settings: Settings) -> StackOutputs:
    ali = settings.aliyun
    assert ali is not None, "settings put every Aliyun stack's qwen:aliyun section in place"
    model_root = ali.nas.mount_dir
    model_dir = f"{model_root}/{ali.nas.models_subdir}/{settings.model.dir_name}"
    key = SshKey("ssh", SshKeyArgs(settings.access.ssh_public_key, settings.access.ssh_private_key))

    def gpu_user_data(nas_domain: str) -> str:
        return cloudinit.gpu_node(
            nvidia_driver_package=ali.nvidia_driver_package, nas=cloudinit.NasMount(nas_domain, ali.nas.mount_dir),
            toolkit_repo=settings.serving.container_toolkit_repo,
        )

    def downloader_user_data(nas_domain: str) -> str:
        return cloudinit.downloader_node(
            model_id=settings.model.id, model_revision=settings.model.revision, model_dir=model_dir,
            modelscope_version=ali.modelscope_version, nas=cloudinit.NasMount(nas_domain, ali.nas.mount_dir),
        )

    cluster = AliyunGpuCluster("cluster", AliyunGpuClusterArgs(
        name_prefix=ali.name_prefix, vpc_cidr=ali.vpc_cidr, vswitch_cidr=ali.vswitch_cidr,
        gpu_instance_type=ali.gpu_instance_type, gpu_node_count=ali.gpu_node_count, gpus_per_node=ali.gpu.gpus,
        gpu_system_disk_gb=ali.gpu_system_disk_gb, downloader_instance_type=ali.downloader_instance_type,
        downloader_system_disk_gb=ali.downloader_system_disk_gb, system_disk_category=ali.system_disk_category,
        internet_max_bandwidth_out=ali.internet_max_bandwidth_out, image_name_regex=ali.image_name_regex,
        image_id=ali.image_id, allowed_cidrs=list(settings.access.allowed_cidrs),
        inbound_ports=[22, settings.serving.port], ssh_public_key=key.public_key, ssh_private_key=key.private_key,
        nas_storage_type=ali.nas.storage_type, nas_mount_dir=ali.nas.mount_dir, model_dir=model_dir,
        model_id=settings.model.id, model_revision=settings.model.revision, stop_downloader=ali.stop_downloader,
        gpu_user_data=gpu_user_data, downloader_user_data=downloader_user_data,
        download_timeout_hours=ali.download_timeout_hours, tags={"stack": settings.stack},
        # Docker Hub and GitHub Pages can be unreachable from mainland China regions.
        preflight_urls=[*dict.fromkeys([*registry_probe_urls(settings.serving.image),
                                        *registry_probe_urls(settings.serving.proxy_image)]),
                        f"{settings.serving.container_toolkit_repo}/gpgkey"],
        preflight_hint="Point qwen:serving.image or qwen:serving.proxyImage at a registry mirror of the same tag, or "
                       "qwen:serving.containerToolkitRepo at a mirror of NVIDIA's apt repository.",
    ))
    # The weights are on the NAS already: the prefetch pulls only the image.
    serving = serve_and_measure(settings, cluster.gpu_hosts, model_root, model_dir, prefetch_model=False)
    head = cluster.gpu_hosts[0]
    downloader = cluster.downloader_host
    downloader_node = pulumi.Output.all(downloader.name, downloader.public_ip, downloader.private_ip).apply(
        lambda v: {"name": v[0], "publicIp": v[1], "privateIp": v[2], "gpus": []}
    )
    return stack_outputs(
        settings, serving, public_ip=head.public_ip,
        ssh_command=pulumi.Output.concat("ssh -i ", settings.access.ssh_key_file, " root@", head.public_ip),
        nodes=pulumi.Output.all(serving.ray.nodes, downloader_node).apply(lambda v: [*v[0], v[1]]),
        generated_ssh_private_key=key.private_key if key.generated else None,
    )
