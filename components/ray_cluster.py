"""RayCluster: a Ray cluster over a list of GPU hosts, in the serving image's containers.

The first host is the head. Each host first passes a readiness step (cloud-init done, GPUs in
nvidia-smi, docker's nvidia runtime, image present); then the head starts, workers join one
after another, and a last step waits until `ray status` shows every GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from components.parsers import parse_nvidia_smi_csv, parse_ray_status
from components.remote import GpuHost, remote_step

RAY_PORT = 6379


@dataclass
class RayClusterArgs:
    """hosts: the GPU hosts, head first. image: the pinned serving image (Ray and vLLM inside).
    model_root: host directory holding the weights, mounted read-only at the same path.
    private_interface: NIC of the private network (NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME).
    min_driver_version: the oldest NVIDIA driver the image runs on (e.g. "570"); node-ready fails on an older one.
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
    ``gpu_total`` (GPUs in `ray status`), ``ready`` (the last step, to depend on)."""

    def __init__(self, name: str, args: RayClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("qwen:serving:RayCluster", name, None, opts)
        if not args.hosts:
            raise ValueError("RayCluster needs at least one host")
        self.head = args.hosts[0]
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
                    "MIN_DRIVER_VERSION": args.min_driver_version,
                    "CLOUD_INIT_TIMEOUT": timeout,
                    "GPU_TIMEOUT": timeout,
                    "IMAGE_PULL_TIMEOUT": "3600",
                },
                parent=self,
                depends_on=list(host.ready),
            )

        def ray_env(host: GpuHost, role: str) -> dict:
            return {
                "RAY_ROLE": role,
                "IMAGE": args.image,
                "NODE_IP": host.private_ip,
                "HEAD_IP": self.head.private_ip,
                "RAY_PORT": str(RAY_PORT),
                "GPUS": str(host.gpu_count),
                "PRIVATE_INTERFACE": args.private_interface,
                "MODEL_ROOT": args.model_root,
            }

        self.head_step = remote_step(
            f"{name}-head", step="ray-head", host=self.head, script="ray_start.sh",
            env=ray_env(self.head, "head"), parent=self, depends_on=[ready_steps[self.head.name]],
        )
        previous = self.head_step
        self.worker_steps = []
        for host in args.hosts[1:]:
            # Workers join one after another, each after the head and the worker before it.
            previous = remote_step(
                f"{name}-worker-{host.name}", step="ray-worker", host=host, script="ray_start.sh",
                env=ray_env(host, "worker"), parent=self, depends_on=[ready_steps[host.name], previous],
            )
            self.worker_steps.append(previous)

        self.ready = remote_step(
            f"{name}-gpus", step="ray-wait-gpus", host=self.head, script="ray_wait_gpus.sh",
            env={"EXPECTED_GPUS": str(gpu_total), "RAY_TIMEOUT": str(args.join_timeout_minutes * 60)},
            parent=self, depends_on=[previous],
        )
        self.gpu_total = self.ready.stdout.apply(lambda out: parse_ray_status(out).get("GPU", 0.0))
        self.nodes = pulumi.Output.all(*[
            pulumi.Output.all(h.name, h.public_ip, h.private_ip, ready_steps[h.name].stdout).apply(
                lambda v: {"name": v[0], "publicIp": v[1], "privateIp": v[2], "gpus": parse_nvidia_smi_csv(v[3])}
            )
            for h in args.hosts
        ])
        self.register_outputs({"nodes": self.nodes, "gpu_total": self.gpu_total})
