"""VllmService: `vllm serve` on the head of a Ray cluster, on 127.0.0.1 behind the TLS proxy, with
its own API key check as a second line, health-checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from components.accelerators import container_env, device_args
from components.ray_cluster import RAY_PORT
from components.remote import GpuHost, Removal, remote_step

# vLLM's port on 127.0.0.1; only the TLS proxy (components/tls_proxy.py) and the benchmark, both on
# the head, reach it. Clear of Ray's fixed ports (6379, 8265, 10001, 52365), its worker ports
# (10002-19999) and the ephemeral range Ray's other ports come from; qwen:serving.port may not be it.
VLLM_LOCAL_PORT = 8001


@dataclass
class VllmServiceArgs:
    """head: the Ray head host. cluster_ready: resource after which all GPUs are in Ray.
    image: the serving image. model_root / model_dir: host directory mounted into the containers
    and the model directory inside it. model_revision: the weights' revision; serving waits for its
    completion marker and restarts when it changes. served_name: the model name clients send.
    port: vLLM's port, on 127.0.0.1 only (VLLM_LOCAL_PORT). tensor_parallel_size / pipeline_parallel_size: GPUs per node / nodes.
    max_model_len, gpu_memory_utilization: vLLM flags. private_interface: NIC for NCCL/Gloo.
    api_key: secret Output; reaches the host on stdin only. extra_args: more `vllm serve` flags.
    model_wait_timeout_minutes: how long to wait for the weights. health_timeout_minutes: for /health.
    executor: vLLM's distributed executor: mp on one host (no Ray), ray across hosts.
    The head's accelerator family adds its device arguments, env and required flags (310P: float16, eager)."""

    head: GpuHost
    cluster_ready: pulumi.Resource
    image: str
    model_root: str
    model_dir: str
    model_revision: str
    served_name: str
    port: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    private_interface: str
    api_key: pulumi.Input[str]
    extra_args: Sequence[str] = field(default_factory=tuple)
    model_wait_timeout_minutes: int = 90
    health_timeout_minutes: int = 40
    executor: str = "ray"


class VllmService(pulumi.ComponentResource):
    """Outputs: ``served_model``, ``models``
    (ids /v1/models lists), ``start`` (the serve step), ``ready`` (the health step) and
    ``fingerprint`` (changes whenever the serve command does; steps after it use it as a trigger)."""

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:serving:VllmService", name, None, opts)
        if args.executor not in ("mp", "ray"):
            raise ValueError(f"VllmService: executor must be mp or ray, got {args.executor!r}")
        head, family = args.head, args.head.accelerator
        self.start = remote_step(
            f"{name}-serve", step="vllm-serve", host=args.head, script="vllm_start.sh",
            env={
                "IMAGE": args.image,
                "MODEL_ROOT": args.model_root,
                "MODEL_DIR": args.model_dir,
                "MODEL_REVISION": args.model_revision,
                "SERVED_NAME": args.served_name,
                "PORT": str(args.port),
                "TP": str(args.tensor_parallel_size),
                "PP": str(args.pipeline_parallel_size),
                "MAX_MODEL_LEN": str(args.max_model_len),
                "GPU_MEMORY_UTILIZATION": str(args.gpu_memory_utilization),
                "NODE_IP": args.head.private_ip,
                "RAY_PORT": str(RAY_PORT),
                "EXTRA_ARGS": "\n".join([*family.serve_flags, *args.extra_args]),
                "MODEL_WAIT_TIMEOUT": str(args.model_wait_timeout_minutes * 60),
                "EXECUTOR": args.executor,
                "DEVICE_ARGS": device_args(family, head.gpu_count),
                "CONTAINER_ENV": container_env(family, head.gpu_count, head.container_env,
                                               across_hosts=args.executor == "ray",
                                               interface=head.private_interface or args.private_interface,
                                               node_ip=head.private_ip),
                "PRUNE_IMAGES": "0" if head.owned else "1",
            },
            stdin=args.api_key,
            parent=self,
            depends_on=[args.cluster_ready],
            removes=Removal(containers=("qwen-vllm",), paths=("/etc/qwen/secrets",)),
        )
        # Changes whenever the serve command does (image, flags, host): an edited `create` re-runs
        # the serve step in place, so its id alone would not tell the steps after it.
        self.fingerprint = self.start.create.apply(lambda create: hashlib.sha256((create or "").encode()).hexdigest()[:16])
        self.ready = remote_step(
            f"{name}-health", step="vllm-health", host=args.head, script="vllm_health.sh",
            env={"PORT": str(args.port), "SERVED_NAME": args.served_name,
                 "HEALTH_TIMEOUT": str(args.health_timeout_minutes * 60)},
            triggers=[self.fingerprint],
            parent=self,
            depends_on=[self.start],
        )
        self.served_model = pulumi.Output.from_input(args.served_name)
        self.models = self.ready.stdout.apply(lambda out: json.loads(out)["models"])
        self.register_outputs({"served_model": self.served_model, "models": self.models})
