"""Facts about models, accelerators and machine sizes that settings and the sizing model work from.

The numbers come from the models' config.json and the vendors' data sheets (see ../shared/FACTS.md
and ../shared/ACCELERATORS.md). To serve another model or use another size, add its numbers here:
settings refuse what they cannot size.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes per weight in GPU memory, by weight format. AWQ is 4-bit with a 16-bit scale and a 4-bit
# zero point per group of 128 weights: 0.5 + 2/128 + 0.5/128 bytes.
BYTES_PER_WEIGHT: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,  # vLLM --quantization fp8: per-tensor scales, negligible
    "awq-int4": 0.5 + 2 / 128 + 0.5 / 128,
}

# Bytes per KV cache element, by --kv-cache-dtype ("auto" keeps the model's 16-bit dtype).
BYTES_PER_KV_ELEMENT: dict[str, float] = {"auto": 2.0, "fp8": 1.0}


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
    hidden_size: int  # width of the residual stream; the embedding and LM head are vocab x hidden
    vocab_size: int  # rows of the embedding and of the LM head (padded vocab of config.json)
    tie_word_embeddings: bool  # True: the LM head is the embedding matrix (one copy of vocab x hidden)

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 KV cache bytes per token: 2 (K and V) x layers x kv heads x head dim x 2 bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2

    @property
    def params(self) -> float:
        return self.params_billion * 1e9

    @property
    def embedding_params(self) -> int:
        """Parameters of one vocab x hidden matrix (the input embedding, or the LM head)."""
        return self.vocab_size * self.hidden_size

    @property
    def body_params(self) -> float:
        """Parameters of the transformer layers: everything but the embedding and the LM head.
        Quantization (fp8, AWQ) applies to these; vLLM keeps the embedding and LM head in 16 bits."""
        return self.params - self.embedding_params * (1 if self.tie_word_embeddings else 2)


MODELS: dict[str, ModelSpec] = {
    "Qwen/Qwen2.5-14B-Instruct": ModelSpec(
        layers=48, attention_heads=40, kv_heads=8, head_dim=128,
        params_billion=14.77, weights_gb=29.5, native_context=32768,
        hidden_size=5120, vocab_size=152064, tie_word_embeddings=False,
    ),
    # Serves on one 24 GB GPU (the local stack's default): 15.2 GB of bf16 weights.
    "Qwen/Qwen2.5-7B-Instruct": ModelSpec(
        layers=28, attention_heads=28, kv_heads=4, head_dim=128,
        params_billion=7.62, weights_gb=15.2, native_context=32768,
        hidden_size=3584, vocab_size=152064, tie_word_embeddings=False,
    ),
    "Qwen/Qwen2.5-72B-Instruct": ModelSpec(
        layers=80, attention_heads=64, kv_heads=8, head_dim=128,
        params_billion=72.71, weights_gb=145.0, native_context=32768,
        hidden_size=8192, vocab_size=152064, tie_word_embeddings=False,
    ),
}


@dataclass(frozen=True)
class Accelerator:
    """One GPU or NPU as the serving engine sees it: memory, bandwidth and peak dense tensor FLOP/s."""

    name: str
    memory_gb: float  # per device, nominal GB as sold (vLLM's utilization applies to it)
    bandwidth_gb_per_s: float  # device memory bandwidth from the vendor's sheet
    tflops_16bit: float  # peak dense bf16/fp16 tensor TFLOP/s (no sparsity)
    tflops_fp8: float | None  # peak dense fp8 tensor TFLOP/s; None: no native fp8 (A100: weight-only fp8 at 16-bit speed)
    weight_dtypes: tuple[str, ...]  # weight formats vLLM serves on it (keys of BYTES_PER_WEIGHT)

    def tflops_for(self, weight_dtype: str) -> float:
        """Peak dense TFLOP/s of the matrix multiplies for a weight format: fp8 runs at the fp8 rate
        where the hardware has it; weight-only formats (fp8 on A100, AWQ) compute in 16 bits."""
        if weight_dtype == "fp8" and self.tflops_fp8:
            return self.tflops_fp8
        return self.tflops_16bit


ACCELERATORS: dict[str, Accelerator] = {
    # NVIDIA A100 80GB PCIe sheet: 1,935 GB/s, BF16 312 TFLOP/s dense; no fp8 tensor cores.
    "A100 80GB PCIe": Accelerator("A100 80GB PCIe", 80, 1935, 312.0, None, ("bf16", "fp16", "fp8", "awq-int4")),
    # NVIDIA L20 (Ada, sm_89): 864 GB/s GDDR6, FP16/BF16 119.5, FP8 239 TFLOP/s (product brief; not re-checked).
    "L20": Accelerator("L20", 48, 864, 119.5, 239.0, ("bf16", "fp16", "fp8", "awq-int4")),
    # GeForce RTX 4090 (Ada whitepaper, FP32 accumulate): 1,008 GB/s, FP16/BF16 165.2, FP8 330.3 TFLOP/s.
    "RTX 4090": Accelerator("RTX 4090", 24, 1008, 165.2, 330.3, ("bf16", "fp16", "fp8", "awq-int4")),
    # H100 NVL (PCIe, 94 GB HBM3): 3,900 GB/s; BF16 1,671 and FP8 3,341 TFLOP/s with sparsity, half dense.
    "H100 NVL": Accelerator("H100 NVL", 94, 3900, 835.5, 1670.5, ("bf16", "fp16", "fp8", "awq-int4")),
    # One Ascend 310P3 chip, half an Atlas 300I Duo card (140 TFLOP/s fp16, 408 GB/s LPDDR4X per card);
    # ~44 GB usable per chip (npu-smi). No bf16: the model runs in float16 (ACCELERATORS.md).
    "Ascend 310P3": Accelerator("Ascend 310P3", 44, 204, 70.0, None, ("fp16",)),
}


@dataclass(frozen=True)
class GpuSize:
    """A machine size with GPUs: how many, and which accelerator."""

    gpus: int
    accelerator: Accelerator

    @property
    def gpu_model(self) -> str:
        return self.accelerator.name

    @property
    def gpu_memory_gb(self) -> float:
        return self.accelerator.memory_gb

    @property
    def hbm_gb_per_s(self) -> float:
        return self.accelerator.bandwidth_gb_per_s


_A100 = ACCELERATORS["A100 80GB PCIe"]
_L20 = ACCELERATORS["L20"]
_H100_NVL = ACCELERATORS["H100 NVL"]

# Cloud machine sizes, by the name the cloud's API takes.
GPU_SIZES: dict[str, GpuSize] = {
    # Azure NC A100 v4 (PCIe A100 80 GB)
    "Standard_NC24ads_A100_v4": GpuSize(1, _A100),
    "Standard_NC48ads_A100_v4": GpuSize(2, _A100),
    "Standard_NC96ads_A100_v4": GpuSize(4, _A100),
    # Azure NC H100 v5 (H100 NVL 94 GB)
    "Standard_NC40ads_H100_v5": GpuSize(1, _H100_NVL),
    "Standard_NC80adis_H100_v5": GpuSize(2, _H100_NVL),
    # Alibaba Cloud gn8is (L20 48 GB, no NVLink)
    "ecs.gn8is.4xlarge": GpuSize(1, _L20),
    "ecs.gn8is-2x.8xlarge": GpuSize(2, _L20),
    "ecs.gn8is-4x.16xlarge": GpuSize(4, _L20),
}

# Owned machines of seeds 004 and 001, for sizing and layout advice (no cloud API takes these names).
OWNED_MACHINES: dict[str, GpuSize] = {
    "workstation-2x-rtx4090": GpuSize(2, ACCELERATORS["RTX 4090"]),
    "atlas-300i-duo-x2": GpuSize(4, ACCELERATORS["Ascend 310P3"]),  # two cards, two 310P3 chips each
}

MACHINES: dict[str, GpuSize] = {**GPU_SIZES, **OWNED_MACHINES}
