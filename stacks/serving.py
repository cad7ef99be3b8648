"""The serving path both stacks share: Ray over the hosts, vLLM on the head, then the benchmarks.

One change here shows up on every stack; the stacks differ only in how they make the hosts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_random as random

from components.benchmark import Benchmark, BenchmarkArgs
from components.prefetch import Prefetch, PrefetchArgs
from components.ray_cluster import RayCluster, RayClusterArgs
from components.remote import GpuHost
from components.tls_proxy import TlsProxy, TlsProxyArgs
from components.vllm_service import VLLM_LOCAL_PORT, VllmService, VllmServiceArgs
from stacks.outputs import StackOutputs
from stacks.performance import cost_per_million_tokens, efficiency, seed_roofline_tokens_per_second
from stacks.settings import SEED_SCENARIO, Settings


@dataclass
class Serving:
    prefetch: Prefetch
    ray: RayCluster
    service: VllmService
    proxy: TlsProxy
    benchmark: Benchmark
    api_key: pulumi.Output[str]


def serve_and_measure(settings: Settings, hosts: Sequence[GpuHost], model_root: str, model_dir: str,
                      prefetch_model: bool, listen_address: str = "0.0.0.0", api_host: str | None = None) -> Serving:
    """hosts: GPU hosts, head first. model_root: host directory with the weights; model_dir: the
    model in it. prefetch_model: download the weights to each host (False: a shared store has them).
    listen_address: where the API (the TLS proxy) listens on the head; api_host: the address or name
    clients use (default: the head's public IP). One host serves with vLLM's mp executor and no Ray;
    several form a Ray cluster."""
    serving = settings.serving
    api_key = random.RandomPassword("vllm-api-key", length=40, special=False)
    prefetch = Prefetch("prefetch", PrefetchArgs(
        hosts=hosts, image=serving.image, image_disk_gb=math.ceil(serving.image_pull_disk_gb),
        prefetch_model=prefetch_model, model_id=settings.model.id, model_revision=settings.model.revision,
        model_root=model_root, model_dir=model_dir,
    ))
    # Nothing starts on a host before it has been told what to prefetch.
    hosts = [replace(h, ready=[*h.ready, prefetch.steps[h.name]]) for h in hosts]
    ray = RayCluster("ray", RayClusterArgs(
        hosts=hosts, image=serving.image, model_root=model_root, private_interface=serving.private_interface,
        min_driver_version=serving.min_driver_version,
    ))
    service = VllmService("vllm", VllmServiceArgs(
        head=ray.head, cluster_ready=ray.ready, image=serving.image, model_root=model_root, model_dir=model_dir,
        model_revision=settings.model.revision,
        served_name=settings.model.served_name, port=VLLM_LOCAL_PORT,
        tensor_parallel_size=settings.layout.tensor_parallel_size, pipeline_parallel_size=serving.pipeline_parallel_size,
        max_model_len=settings.model.max_model_len, gpu_memory_utilization=serving.gpu_memory_utilization,
        private_interface=serving.private_interface, api_key=api_key.result, extra_args=serving.vllm_args,
        model_wait_timeout_minutes=serving.model_wait_timeout_minutes,
        health_timeout_minutes=serving.health_timeout_minutes,
        executor="ray" if ray.uses_ray else "mp",
    ))
    # The only public door: TLS and the key on every path but /health, the OpenAI routes only.
    proxy = TlsProxy("proxy", TlsProxyArgs(
        head=ray.head, service_ready=service.ready, service_fingerprint=service.fingerprint, image=serving.proxy_image,
        port=serving.port, upstream_port=VLLM_LOCAL_PORT, api_key=api_key.result, served_name=settings.model.served_name,
        listen_address=listen_address, api_host=api_host,
    ))
    # The benchmark measures vLLM itself on 127.0.0.1, after the smoke check (never beside it).
    benchmark = Benchmark("bench", BenchmarkArgs(
        head=ray.head, service_ready=proxy.ready, service_fingerprint=service.fingerprint, image=serving.image,
        model_root=model_root, model_dir=model_dir, served_name=settings.model.served_name, port=VLLM_LOCAL_PORT,
        scenarios=settings.benchmark.scenarios, headline=SEED_SCENARIO, run_id=settings.benchmark.run_id,
        timeout_minutes=settings.benchmark.timeout_minutes,
    ))
    return Serving(prefetch, ray, service, proxy, benchmark, api_key.result)  # RandomPassword.result is secret


@dataclass
class SeedPerformance:
    """The seed scenario against this deployment's limit and price: the outputs `rooflineTokensPerSecond`,
    `efficiency` and `costPerMillionTokens` (None without `qwen:cost.hourlyUsd`)."""

    roofline_tokens_per_second: float
    efficiency: pulumi.Output[float]
    cost_per_million_tokens: pulumi.Output[float] | None


def seed_performance(settings: Settings, tokens_per_second: pulumi.Output[float]) -> SeedPerformance:
    """The roofline of the configured layout (weights and KV cache formats included), and what the measured
    seed tokens/s make of it."""
    layout = settings.layout
    roofline = seed_roofline_tokens_per_second(
        settings.model.id, settings.machine, layout.tensor_parallel_size, layout.pipeline_parallel_size,
        settings.serving.quantization, layout.kv_cache_dtype)
    hourly_usd = settings.cost.hourly_usd

    def cost(tokens_per_second: float) -> float:
        value = cost_per_million_tokens(hourly_usd, tokens_per_second)
        assert value is not None  # only called when a price is set
        return value

    return SeedPerformance(
        roofline_tokens_per_second=roofline,
        efficiency=tokens_per_second.apply(lambda tps: efficiency(tps, roofline)),
        cost_per_million_tokens=None if hourly_usd is None else tokens_per_second.apply(cost),
    )


def stack_outputs(settings: Settings, serving: Serving, *, public_ip: pulumi.Input[str], ssh_command: pulumi.Input[str],
                  nodes: pulumi.Input[list] | None = None,
                  generated_ssh_private_key: pulumi.Input[str] | None = None) -> StackOutputs:
    """The outputs contract, built once for every composition: each passes only what its machines decide
    (the head's address, how to SSH to it, extra nodes such as the downloader, a generated key)."""
    performance = seed_performance(settings, serving.benchmark.tokens_per_second)
    return StackOutputs(
        endpoint=serving.proxy.endpoint,
        served_model=serving.service.served_model,
        api_key=serving.api_key,
        ca_certificate=serving.proxy.ca_certificate,
        public_ip=public_ip,
        ssh_command=ssh_command,
        nodes=serving.ray.nodes if nodes is None else nodes,
        tokens_per_second=serving.benchmark.tokens_per_second,
        benchmark=serving.benchmark.results,
        roofline_tokens_per_second=performance.roofline_tokens_per_second,
        efficiency=performance.efficiency,
        cost_per_million_tokens=performance.cost_per_million_tokens,
        generated_ssh_private_key=generated_ssh_private_key,
    )
