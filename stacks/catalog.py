"""Facts about models and GPU machine sizes that settings are validated against.

The numbers come from the models' config.json and the cloud vendors' size tables
(see ../shared/FACTS.md). To serve another model or use another size, add its numbers here:
settings refuse what they cannot size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """Architecture numbers of one model, enough to size a deployment."""

    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    params_billion: float
    weights_gb: float  # bf16 weights on disk and in GPU memory
    native_context: int  # max_position_embeddings without rope scaling

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 KV cache bytes per token: 2 (K and V) x layers x kv heads x head dim x 2 bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


MODELS: dict[str, ModelSpec] = {
    "Qwen/Qwen2.5-14B-Instruct": ModelSpec(
        layers=48, attention_heads=40, kv_heads=8, head_dim=128,
        params_billion=14.77, weights_gb=29.5, native_context=32768,
    ),
    "Qwen/Qwen2.5-72B-Instruct": ModelSpec(
        layers=80, attention_heads=64, kv_heads=8, head_dim=128,
        params_billion=72.71, weights_gb=145.0, native_context=32768,
    ),
}


@dataclass(frozen=True)
class GpuSize:
    """A machine size with GPUs: how many, which, and how much memory each."""

    gpus: int
    gpu_model: str
    gpu_memory_gb: float
    hbm_gb_per_s: float


GPU_SIZES: dict[str, GpuSize] = {
    # Azure NC A100 v4 (PCIe A100 80 GB)
    "Standard_NC24ads_A100_v4": GpuSize(1, "A100 80GB PCIe", 80, 1935),
    "Standard_NC48ads_A100_v4": GpuSize(2, "A100 80GB PCIe", 80, 1935),
    "Standard_NC96ads_A100_v4": GpuSize(4, "A100 80GB PCIe", 80, 1935),
    # Azure NCads H100 v5 (H100 NVL 94 GB, 3,900 GB/s): fallback candidates of the preflight
    "Standard_NC40ads_H100_v5": GpuSize(1, "H100 NVL", 94, 3900),
    "Standard_NC80adis_H100_v5": GpuSize(2, "H100 NVL", 94, 3900),
    # Alibaba Cloud gn8is (L20 48 GB, no NVLink)
    "ecs.gn8is.4xlarge": GpuSize(1, "L20", 48, 864),
    "ecs.gn8is-2x.8xlarge": GpuSize(2, "L20", 48, 864),
    "ecs.gn8is-4x.16xlarge": GpuSize(4, "L20", 48, 864),
}
