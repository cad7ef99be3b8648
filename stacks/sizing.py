"""Sizing and roofline model: memory per device and the batch-1 speed limit of a model layout.

Pure arithmetic on stacks/catalog.py's numbers; no cloud, no GPU. Units: bytes, FLOPs, seconds;
GB means 1e9 bytes. The formula, as the README states it:

- weights per device = (stage's layers x layer bytes + embedding on the first stage + LM head on
  the last stage) / TP; layers use the weight format's bytes, embedding and LM head stay 16-bit.
- KV bytes per token per device = 2 x (layers / PP) x max(1, KV heads / TP) x head dim x KV bytes.
- KV tokens that fit = (memory x utilization - runtime reserve - weights per device) / KV bytes per
  token per device.
- prefill seconds = (2 x layer params x prompt + 2 x vocab x hidden) / (TP x peak of the weight
  format) + causal attention 2 x layers x prompt^2 x heads x head dim / (TP x 16-bit peak).
- decode seconds = sum over the (output - 1) decode steps of (bytes of layers + LM head + KV of the
  context so far) / (TP x bandwidth). Decode reads the KV cache of the whole growing context, so
  each step reads a little more than the last.
- tokens/s = output tokens / (prefill seconds + decode seconds).

Pipeline stages add up (one request visits them one after another) and tensor-parallel devices share
the bytes and FLOPs, so the limit depends on TP but not on PP. Communication, kernel launch and
scheduler time are left out: the roofline is an upper bound that a real server approaches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stacks.catalog import BYTES_PER_KV_ELEMENT, BYTES_PER_WEIGHT, Accelerator, GpuSize, ModelSpec

# GB per device that CUDA context, activations and graphs take besides weights and KV cache; the same
# figure stacks/settings.py reserves (GPU_RUNTIME_OVERHEAD_GB).
RUNTIME_RESERVE_GB = 2.0
EMBEDDING_BYTES_PER_WEIGHT = 2.0  # vLLM keeps the embedding and LM head in 16 bits under fp8 and AWQ


@dataclass(frozen=True)
class Layout:
    """How a model is laid out on devices: weight format, KV cache format, TP x PP."""

    weight_dtype: str  # key of BYTES_PER_WEIGHT: bf16, fp16, fp8, awq-int4
    tensor_parallel_size: int
    pipeline_parallel_size: int
    kv_cache_dtype: str = "auto"  # key of BYTES_PER_KV_ELEMENT: auto (16-bit) or fp8

    @property
    def devices(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size


@dataclass(frozen=True)
class RequestShape:
    """One request of a benchmark scenario: prompt and generated tokens."""

    input_tokens: int
    output_tokens: int


SEED_REQUEST = RequestShape(input_tokens=10_000, output_tokens=800)  # seed 000's measurement


@dataclass(frozen=True)
class Roofline:
    """The batch-1 limit of one request: prefill at peak FLOP/s, decode at memory bandwidth."""

    prefill_s: float
    decode_s: float
    output_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / (self.prefill_s + self.decode_s)


def stage_layers(model: ModelSpec, layout: Layout) -> int:
    """Layers of the largest pipeline stage (vLLM splits layers as evenly as it can)."""
    return math.ceil(model.layers / layout.pipeline_parallel_size)


def weight_bytes_per_device(model: ModelSpec, layout: Layout) -> float:
    """Weight bytes on the most loaded device. With one stage it holds the embedding and the LM head;
    with several, the first stage holds the embedding and the last the LM head (the larger of the two
    is counted, with the largest stage's layers)."""
    layer_bytes = model.body_params / model.layers * BYTES_PER_WEIGHT[layout.weight_dtype]
    matrix_bytes = model.embedding_params * EMBEDDING_BYTES_PER_WEIGHT
    one_stage = layout.pipeline_parallel_size == 1
    edge_bytes = matrix_bytes * (1 if model.tie_word_embeddings else 2) if one_stage else matrix_bytes
    stage_bytes = layer_bytes * stage_layers(model, layout) + edge_bytes
    return stage_bytes / layout.tensor_parallel_size


def kv_bytes_per_token_per_device(model: ModelSpec, layout: Layout) -> float:
    """KV cache bytes one token takes on each device of the largest stage. TP splits the KV heads;
    with more devices than KV heads each device keeps a copy of one head."""
    heads_per_device = max(1.0, model.kv_heads / layout.tensor_parallel_size)
    return (2 * stage_layers(model, layout) * heads_per_device * model.head_dim
            * BYTES_PER_KV_ELEMENT[layout.kv_cache_dtype])


def kv_tokens_that_fit(model: ModelSpec, layout: Layout, accelerator: Accelerator, memory_utilization: float,
                       reserve_gb: float = RUNTIME_RESERVE_GB) -> int:
    """Tokens of KV cache the deployment holds at once (all sequences together); 0 when the weights
    alone do not fit. Every device holds its share of every token, so the tightest device decides."""
    free_bytes = (accelerator.memory_gb * memory_utilization - reserve_gb) * 1e9 \
        - weight_bytes_per_device(model, layout)
    if free_bytes <= 0:
        return 0
    return int(free_bytes // kv_bytes_per_token_per_device(model, layout))


def decode_weight_bytes(model: ModelSpec, layout: Layout) -> float:
    """Weight bytes read for one generated token, over all devices: every layer and the LM head (the
    embedding is a one-row lookup)."""
    return (model.body_params * BYTES_PER_WEIGHT[layout.weight_dtype]
            + model.embedding_params * EMBEDDING_BYTES_PER_WEIGHT)


def kv_bytes_per_token(model: ModelSpec, layout: Layout) -> float:
    """KV cache bytes of one token over the whole model (all layers, all KV heads)."""
    return 2 * model.layers * model.kv_heads * model.head_dim * BYTES_PER_KV_ELEMENT[layout.kv_cache_dtype]


def prefill_linear_flops(model: ModelSpec, input_tokens: int) -> float:
    """Matrix-multiply FLOPs of the prompt: 2 per layer weight per token, plus the LM head once (vLLM
    computes logits for the last prompt token only)."""
    return 2 * model.body_params * input_tokens + 2 * model.embedding_params


def prefill_attention_flops(model: ModelSpec, input_tokens: int) -> float:
    """Causal attention FLOPs of the prompt: QK^T and AV each 2 x n^2/2 x heads x head dim per layer."""
    return 2 * model.layers * input_tokens ** 2 * model.attention_heads * model.head_dim


def roofline(model: ModelSpec, layout: Layout, accelerator: Accelerator, request: RequestShape) -> Roofline:
    """Batch-1 limit: the prompt at peak FLOP/s, then each decode step at memory bandwidth."""
    tp = layout.tensor_parallel_size
    prefill_s = (prefill_linear_flops(model, request.input_tokens) / (tp * accelerator.tflops_for(layout.weight_dtype) * 1e12)
                 + prefill_attention_flops(model, request.input_tokens) / (tp * accelerator.tflops_16bit * 1e12))
    # Prefill yields the first token; decode step k (1 .. output-1) reads the KV of input + k tokens.
    steps = request.output_tokens - 1
    context_tokens_read = steps * request.input_tokens + steps * (steps + 1) / 2
    decode_bytes = steps * decode_weight_bytes(model, layout) + context_tokens_read * kv_bytes_per_token(model, layout)
    decode_s = decode_bytes / (tp * accelerator.bandwidth_gb_per_s * 1e9)
    return Roofline(prefill_s=prefill_s, decode_s=decode_s, output_tokens=request.output_tokens)


# ---------------------------------------------------------------------------- layout advice


@dataclass(frozen=True)
class LayoutAdvice:
    """One way to lay a model out on whole machines of one size, with its memory and speed limit."""

    layout: Layout
    nodes: int
    gpus: int
    weight_gb_per_device: float
    kv_tokens: int  # KV cache tokens the deployment holds (0: the weights do not fit)
    roofline_tokens_per_second: float
    fits: bool  # the weights fit and the KV cache holds at least the required context
    note: str  # what to know before choosing it ("" when nothing)


def tensor_parallel_sizes(model: ModelSpec, gpus_per_node: int) -> list[int]:
    """TP sizes inside one node that split the attention heads evenly and either split the KV heads or
    replicate them evenly (vLLM's rule)."""
    return [tp for tp in range(1, gpus_per_node + 1)
            if gpus_per_node % tp == 0 and model.attention_heads % tp == 0
            and (model.kv_heads % tp == 0 or tp % model.kv_heads == 0)]


def _note(layout: Layout, accelerator: Accelerator) -> str:
    notes = []
    if layout.weight_dtype == "fp8" and not accelerator.tflops_fp8:
        notes.append("fp8 is weight-only here (Marlin): memory halves, compute stays 16-bit")
    if layout.weight_dtype == "fp8":
        notes.append("--quantization fp8 quantizes at load: check quality")
    if layout.weight_dtype == "awq-int4":
        notes.append("serve the published -AWQ checkpoint")
    if layout.kv_cache_dtype == "fp8" and not accelerator.tflops_fp8:
        notes.append("vLLM v0.11.0 cannot run an fp8 KV cache here (Triton compiles fp8 e4m3 for sm_89+ only)")
    elif layout.kv_cache_dtype == "fp8":
        notes.append("--kv-cache-dtype fp8 switches sm89 to the Triton attention backend")
    return "; ".join(notes)


def advise_layouts(model: ModelSpec, machine: GpuSize, node_counts: Iterable[int], memory_utilization: float = 0.9,
                   min_context_tokens: int = SEED_REQUEST.input_tokens + SEED_REQUEST.output_tokens,
                   request: RequestShape = SEED_REQUEST, kv_cache_dtypes: Sequence[str] = ("auto",)) -> list[LayoutAdvice]:
    """Every layout of the model on 1..n whole machines: each weight format the accelerator serves
    (fp16 only where there is no bf16: same numbers), TP inside a node, PP for the rest of the GPUs.
    Sorted by GPU count, then fitting first, then fastest."""
    accelerator = machine.accelerator
    dtypes = [d for d in accelerator.weight_dtypes if not (d == "fp16" and "bf16" in accelerator.weight_dtypes)]
    advice = []
    for nodes in node_counts:
        gpus = nodes * machine.gpus
        for weight_dtype in dtypes:
            for kv_cache_dtype in kv_cache_dtypes:
                for tp in tensor_parallel_sizes(model, machine.gpus):
                    pp = gpus // tp
                    if pp > model.layers:
                        continue
                    layout = Layout(weight_dtype, tp, pp, kv_cache_dtype)
                    kv_tokens = kv_tokens_that_fit(model, layout, accelerator, memory_utilization)
                    advice.append(LayoutAdvice(
                        layout=layout, nodes=nodes, gpus=gpus,
                        weight_gb_per_device=weight_bytes_per_device(model, layout) / 1e9,
                        kv_tokens=kv_tokens,
                        roofline_tokens_per_second=roofline(model, layout, accelerator, request).tokens_per_second,
                        fits=kv_tokens >= min_context_tokens,
                        note=_note(layout, accelerator),
                    ))
    return sorted(advice, key=lambda a: (a.gpus, not a.fits, -a.roofline_tokens_per_second))
