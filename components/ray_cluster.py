"""RayCluster: the hosts made ready for serving, joined in a Ray cluster when there are several.

The first host is the head. Each host first passes a readiness step (cloud-init or the host setup
done, its accelerators visible, docker able to hand them to containers, image present). One host
needs no Ray: vLLM's `mp` executor serves on it. With several, the head starts Ray in the serving
image's container, workers join one after another, and a last step waits until `ray status` shows
every device under the accelerator's Ray resource (GPU, or NPU on Ascend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.accelerators import container_env, device_args, node_ready_env
from components.parsers import parse_nvidia_smi_csv, parse_ray_status
from components.remote import GpuHost, Removal, remote_step

RAY_PORT = 6379


@dataclass
class RayClusterArgs:
    """hosts: the GPU hosts, head first. image: the pinned serving image (Ray and vLLM inside).
    model_root: host directory holding the weights, mounted read-only at the same path.
    private_interface: NIC of the private network (NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME).
    min_driver_version: the oldest NVIDIA driver the image runs on (e.g. "570"); node-ready fails on an older one
    (other accelerator families' minimum is in their catalog entry).
    gpu_timeout_minutes: how long a host may take to show its GPUs (driver install included).
    join_timeout_minutes: how long the workers may take to appear in `ray status`."""

    hosts: Sequence[GpuHost]
    image: str
    model_root: str
    private_interface: str
    min_driver_version: str
    gpu_timeout_minutes: int = 60
    join_timeout_minutes: int = 15


class RayCluster(pulumi.ComponentResource):
    """Outputs: ``head`` (the head GpuHost), ``nodes`` (list of {name, publicIp, privateIp, gpus}),
    ``gpu_total`` (devices in `ray status`, or on the one host), ``ready`` (the last step, to depend
    on), ``uses_ray`` (False for one host: vLLM runs with the mp executor)."""

    def __init__(self, name: str, args: RayClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:serving:RayCluster", name, None, opts)
        if not args.hosts:
            raise ValueError("RayCluster needs at least one host")
        self.head = args.hosts[0]
        self.uses_ray = len(args.hosts) > 1
        gpu_total = sum(h.gpu_count for h in args.hosts)
        timeout = str(args.gpu_timeout_minutes * 60)

        ready_steps = {}
        for host in args.hosts:
            ready_steps[host.name] = remote_step(
                f"{name}-{host.name}-node-ready",
                step="node-ready",
                host=host,
                script="node_ready.sh",
                env={
                    "EXPECTED_GPUS": str(host.gpu_count),
                    "IMAGE": args.image,
                    # An owned machine has no cloud-init: its host-setup step wrote the bootstrap marker.
                    "CLOUD_INIT_TIMEOUT": "0" if host.owned else timeout,
                    "GPU_TIMEOUT": timeout,
                    "IMAGE_PULL_TIMEOUT": "3600",
                    **node_ready_env(host.accelerator, host.gpu_count, owned=host.owned,
                                     nvidia_minimum=args.min_driver_version),
                },
                parent=self,
                depends_on=list(host.ready),
            )

        self.nodes = pulumi.Output.all(*[
            pulumi.Output.all(h.name, h.public_ip, h.private_ip, ready_steps[h.name].stdout).apply(
                lambda v: {"name": v[0], "publicIp": v[1], "privateIp": v[2], "gpus": parse_nvidia_smi_csv(v[3])}
            )
            for h in args.hosts
        ])
        self.worker_steps = []
        if not self.uses_ray:
            self.head_step = None
            self.ready = ready_steps[self.head.name]
            self.gpu_total = self.ready.stdout.apply(lambda out: float(len(parse_nvidia_smi_csv(out))))
            self.register_outputs({"nodes": self.nodes, "gpu_total": self.gpu_total})
            return

        def ray_env(host: GpuHost, role: str) -> dict:
            family = host.accelerator
            return {
                "RAY_ROLE": role,
                "IMAGE": args.image,
                "NODE_IP": host.private_ip,
                "HEAD_IP": self.head.private_ip,
                "RAY_PORT": str(RAY_PORT),
                "RAY_RESOURCE_ARGS": "\n".join(family.ray_resource_args(host.gpu_count)),
                "MODEL_ROOT": args.model_root,
                "DEVICE_ARGS": device_args(family, host.gpu_count),
                "CONTAINER_ENV": container_env(family, host.gpu_count, host.container_env, across_hosts=True,
                                               interface=host.private_interface or args.private_interface,
                                               node_ip=host.private_ip),
            }

        removes = Removal(containers=("qwen-ray",))
        self.head_step = remote_step(
            f"{name}-head", step="ray-head", host=self.head, script="ray_start.sh",
            env=ray_env(self.head, "head"), parent=self, depends_on=[ready_steps[self.head.name]], removes=removes,
        )
        previous = self.head_step
        for host in args.hosts[1:]:
            # Workers join one after another, each after the head and the worker before it.
            previous = remote_step(
                f"{name}-worker-{host.name}", step="ray-worker", host=host, script="ray_start.sh",
                env=ray_env(host, "worker"), parent=self, depends_on=[ready_steps[host.name], previous], removes=removes,
            )
            self.worker_steps.append(previous)

        self.ready = remote_step(
            f"{name}-gpus", step="ray-wait-gpus", host=self.head, script="ray_wait_gpus.sh",
            env={"EXPECTED_GPUS": str(gpu_total), "RAY_RESOURCE": self.head.accelerator.ray_resource,
                 "RAY_TIMEOUT": str(args.join_timeout_minutes * 60)},
            parent=self, depends_on=[previous],
        )
        resource = self.head.accelerator.ray_resource
        self.gpu_total = self.ready.stdout.apply(lambda out: parse_ray_status(out).get(resource, 0.0))
        self.register_outputs({"nodes": self.nodes, "gpu_total": self.gpu_total})
