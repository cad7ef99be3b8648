"""Sizing and roofline arithmetic against hand-computed numbers, and the issue's three hand checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.catalog import ACCELERATORS, BYTES_PER_WEIGHT, GPU_SIZES, MACHINES, MODELS, Accelerator, ModelSpec
from stacks.sizing import (
    SEED_REQUEST,
    Layout,
    RequestShape,
    advise_layouts,
    kv_bytes_per_token_per_device,
    kv_tokens_that_fit,
    roofline,
    tensor_parallel_sizes,
    weight_bytes_per_device,
)

Q14 = MODELS["Qwen/Qwen2.5-14B-Instruct"]
Q72 = MODELS["Qwen/Qwen2.5-72B-Instruct"]
A100 = ACCELERATORS["A100 80GB PCIe"]
L20 = ACCELERATORS["L20"]

# A toy model small enough to compute by hand: embedding 100 x 32 = 3,200 params, untied, so the
# 16,400 params leave 10,000 in 4 layers (2,500 each). KV: 2 heads x 8 dims.
TOY = ModelSpec(layers=4, attention_heads=4, kv_heads=2, head_dim=8, params_billion=16_400e-9, weights_gb=0.0000328,
                native_context=64, hidden_size=32, vocab_size=100, tie_word_embeddings=False)
# 1 MB of memory, 1 MB/s, 1,000 FLOP/s in 16 bits and 2,000 in fp8.
TOY_DEVICE = Accelerator("toy", memory_gb=1e-3, bandwidth_gb_per_s=1e-3, tflops_16bit=1e-9, tflops_fp8=2e-9,
                         weight_dtypes=("bf16", "fp8"))


def test_toy_weights_per_device():
    # TP2 x PP2: a stage holds 2 layers x 2,500 x 2 bytes = 10,000 plus one 3,200 x 2 = 6,400 edge matrix; / TP 2.
    assert weight_bytes_per_device(TOY, Layout("bf16", 2, 2)) == pytest.approx(8_200)
    # fp8, one device: 4 layers x 2,500 x 1 byte + embedding and LM head in 16 bits (2 x 6,400).
    assert weight_bytes_per_device(TOY, Layout("fp8", 1, 1)) == pytest.approx(22_800)


def test_toy_kv_per_token_and_tokens_that_fit():
    # 2 (K, V) x 2 layers per stage x (2 KV heads / TP 2) x 8 dims x 2 bytes = 64 B.
    assert kv_bytes_per_token_per_device(TOY, Layout("bf16", 2, 2)) == 64
    # fp8 KV halves it; TP 4 > 2 KV heads: one replicated head per device, not half a head.
    assert kv_bytes_per_token_per_device(TOY, Layout("bf16", 2, 2, "fp8")) == 32
    assert kv_bytes_per_token_per_device(TOY, Layout("bf16", 4, 1)) == 2 * 4 * 1 * 8 * 2
    # (1e6 B x 0.5 - 8,200) / 64 = 7,684.4 -> 7,684 tokens.
    assert kv_tokens_that_fit(TOY, Layout("bf16", 2, 2), TOY_DEVICE, 0.5, reserve_gb=0) == 7_684
    # The weights alone do not fit: no KV at all.
    assert kv_tokens_that_fit(TOY, Layout("bf16", 2, 2), TOY_DEVICE, 0.008, reserve_gb=0) == 0


def test_toy_roofline():
    limit = roofline(TOY, Layout("bf16", 2, 2), TOY_DEVICE, RequestShape(input_tokens=10, output_tokens=5))
    # Prefill: linear 2 x 10,000 x 10 + LM head once 2 x 3,200 = 206,400 FLOPs; attention
    # 2 x 4 layers x 10^2 x 4 heads x 8 = 25,600; both / (TP 2 x 1,000 FLOP/s) = 103.2 + 12.8 s.
    assert limit.prefill_s == pytest.approx(116.0)
    # Decode: 4 steps read 10,000 x 2 + 3,200 x 2 = 26,400 weight bytes each, and the KV of 11..14
    # tokens (50 in all) x 256 B (2 x 4 x 2 x 8 x 2); (105,600 + 12,800) / (2 x 1e6 B/s).
    assert limit.decode_s == pytest.approx(0.0592)
    assert limit.tokens_per_second == pytest.approx(5 / 116.0592)
    # Pipeline stages add up: PP changes nothing for one request; TP divides.
    assert roofline(TOY, Layout("bf16", 2, 1), TOY_DEVICE, RequestShape(10, 5)) == limit
    # fp8 weights: linear FLOPs at the fp8 rate (206,400 / 2,000), attention stays 16-bit (25,600 / 1,000).
    assert roofline(TOY, Layout("fp8", 1, 1), TOY_DEVICE, RequestShape(10, 5)).prefill_s == pytest.approx(128.8)


def test_qwen14b_a100_tp2_by_hand():
    limit = roofline(Q14, Layout("bf16", 2, 1), A100, SEED_REQUEST)
    # Layer params: 14.77e9 - 2 x 152,064 x 5,120 = 13,212,864,640.
    # Prefill: (2 x 13,212,864,640 x 10,000 + 2 x 778,567,680) / 624e12 = 0.42349 s
    #        + 2 x 48 x 10,000^2 x 40 x 128 / 624e12 = 0.07877 s.
    assert limit.prefill_s == pytest.approx(0.50226, rel=1e-4)
    # Decode: 799 steps x 27,982,864,640 B + (799 x 10,000 + 799 x 800 / 2) tokens x 196,608 B, / 3,870e9 B/s.
    assert limit.decode_s == pytest.approx((799 * 27_982_864_640 + 8_309_600 * 196_608) / 3_870e9, rel=1e-9)
    assert limit.decode_s == pytest.approx(6.1995, rel=1e-4)
    assert limit.tokens_per_second == pytest.approx(800 / 6.7018, rel=1e-4)


# The issue's hand checks (bandwidths from the vendors' sheets).
def test_check_qwen14b_bf16_tp2_on_two_a100_pcie():
    assert 100 <= roofline(Q14, Layout("bf16", 2, 1), A100, SEED_REQUEST).tokens_per_second <= 130


def test_check_qwen72b_bf16_tp2_pp2_on_four_l20():
    assert 9 <= roofline(Q72, Layout("bf16", 2, 2), L20, SEED_REQUEST).tokens_per_second <= 12


def test_check_qwen72b_fp8_tp2_on_one_l20_node():
    layout = Layout("fp8", 2, 1)
    assert roofline(Q72, layout, L20, SEED_REQUEST).tokens_per_second > 18
    # and it fits: about 37.6 GB of weights per 48 GB L20, room for the seed request's KV.
    assert weight_bytes_per_device(Q72, layout) / 1e9 == pytest.approx(37.6, abs=0.05)
    assert kv_tokens_that_fit(Q72, layout, L20, 0.9) >= SEED_REQUEST.input_tokens + SEED_REQUEST.output_tokens


def test_catalog_weights_agree_with_params():
    for spec in MODELS.values():
        assert spec.params * BYTES_PER_WEIGHT["bf16"] / 1e9 == pytest.approx(spec.weights_gb, rel=0.01)
        assert spec.kv_bytes_per_token == kv_bytes_per_token_per_device(spec, Layout("bf16", 1, 1))
    assert GPU_SIZES["Standard_NC80adis_H100_v5"].gpus == 2
    assert GPU_SIZES["Standard_NC40ads_H100_v5"].gpu_memory_gb == 94
    assert set(GPU_SIZES) < set(MACHINES)


def test_tensor_parallel_sizes_follow_the_heads():
    assert tensor_parallel_sizes(Q72, 4) == [1, 2, 4]
    # 40 attention heads: 3 does not divide them.
    assert tensor_parallel_sizes(Q14, 6) == [1, 2]


def test_advice_72b_on_l20_nodes():
    advice = advise_layouts(Q72, MACHINES["ecs.gn8is-2x.8xlarge"], [1, 2])
    by_key = {(a.layout.weight_dtype, a.layout.tensor_parallel_size, a.layout.pipeline_parallel_size): a for a in advice}
    one_node_bf16 = by_key[("bf16", 2, 1)]
    assert not one_node_bf16.fits and one_node_bf16.kv_tokens == 0  # 72.7 GB per 48 GB GPU
    one_node_fp8, two_node_bf16 = by_key[("fp8", 2, 1)], by_key[("bf16", 2, 2)]
    assert one_node_fp8.fits and one_node_fp8.gpus == 2 and one_node_fp8.nodes == 1
    assert two_node_bf16.fits and two_node_bf16.gpus == 4 and two_node_bf16.nodes == 2
    # Half the GPUs, about twice the batch-1 limit.
    assert one_node_fp8.roofline_tokens_per_second / two_node_bf16.roofline_tokens_per_second == pytest.approx(1.9, abs=0.1)
    # Fewer GPUs first; within a GPU count, fitting then fastest first.
    assert [a.gpus for a in advice] == sorted(a.gpus for a in advice)
    two_gpu = [a for a in advice if a.gpus == 2]
    assert [a.fits for a in two_gpu] == sorted((a.fits for a in two_gpu), reverse=True)


def test_advice_ascend_serves_fp16_only():
    advice = advise_layouts(Q14, MACHINES["atlas-300i-duo-x2"], [1], memory_utilization=0.5)
    assert {a.layout.weight_dtype for a in advice} == {"fp16"}
    tp4 = next(a for a in advice if a.layout.tensor_parallel_size == 4)
    assert tp4.fits and tp4.roofline_tokens_per_second == pytest.approx(26.2, abs=0.1)


def test_readme_hand_checks_match_the_model():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for model, layout in ((Q14, Layout("bf16", 2, 1)), (Q72, Layout("bf16", 2, 2)), (Q72, Layout("fp8", 2, 1))):
        device = A100 if model is Q14 else L20
        limit = roofline(model, layout, device, SEED_REQUEST)
        assert f"**{limit.tokens_per_second:.1f} tok/s** | {limit.prefill_s:.2f} s + {limit.decode_s:.2f} s" in readme
