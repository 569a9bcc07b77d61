"""Kernels without running Triton: layouts, the CPU path, dispatch, launcher contracts, tiling.

The Triton kernels themselves run under the interpreter in test_kernels_triton.py and
are cross-compiled in test_kernels_compile.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from qwen2vl_quant.kernels import configs
from qwen2vl_quant.kernels.cpu import act_order_perm, int4_group
from qwen2vl_quant.kernels.decode import decode_matmul
from qwen2vl_quant.kernels.dequant import triton_dequantize
from qwen2vl_quant.kernels.dispatch import (
    CPU_INT4_MAX_M,
    CPU_INT8_GROUPED_MAX_M,
    CPU_INT8_MAX_M,
    PATHS,
    available_paths,
    prepare,
    quantized_linear,
    resolve_path,
)
from qwen2vl_quant.kernels.gemm import gemm_matmul
from qwen2vl_quant.kernels.layout import PackedFormat, check_packed
from qwen2vl_quant.kernels.reference import (
    awq_pack_cols,
    awq_unpack_cols,
    dequantize,
    pack_cols,
    pack_rows,
    reference_matmul,
    unpack_cols,
    unpack_rows,
)
from qwen2vl_quant.kernels.torch_dequant import dequantize_torch
from qwen2vl_quant.testing.packed import random_packed
from qwen2vl_quant.kernels.traffic import model_launch

FORMATS = [("gptq", 4), ("gptq", 8), ("awq", 4), ("awq", 8), ("gptq_v2", 4)]
DTYPES = [torch.bfloat16, torch.float16]
TOL = {torch.bfloat16: 1.5e-2, torch.float16: 3e-3}


def reference(layout, bits, w, x):
    """x @ W in float32, W dequantized by reference.py (the checkpoint's g_idx as given)."""
    return x.float() @ dequantize(layout, w.qweight, w.qzeros, w.scales, w.group, bits, w.g_idx, dtype=torch.float32)


def assert_close(y, ref, dtype, tol=None):
    assert y.dtype == dtype
    err = (y.float() - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= (tol or TOL[dtype]) * scale, f"max error {err:.3g} vs max |ref| {scale:.3g}"


# ---------------------------------------------------------------- layouts and packing


@pytest.mark.parametrize("bits", [4, 8])
def test_packing_round_trips_through_reference(bits):
    codes = torch.randint(0, 2**bits, (64, 32), dtype=torch.int32)
    assert torch.equal(unpack_rows(pack_rows(codes, bits), bits), codes)
    assert torch.equal(unpack_cols(pack_cols(codes, bits), bits), codes)
    assert torch.equal(awq_unpack_cols(awq_pack_cols(codes, bits), bits), codes)


def spelled_out(layout, bits, qweight, qzeros, scales, group):
    """W[k][n] from the format's definition (kernels/reference.py docstring), one element at
    a time in plain Python: an oracle that shares no code with reference.py."""
    pack, mask = 32 // bits, (1 << bits) - 1
    awq_position = {c: i for i, c in enumerate((0, 2, 4, 6, 1, 3, 5, 7))}
    qw, qz, sc = qweight.tolist(), qzeros.tolist(), scales.float().tolist()
    k = len(qw) * pack if layout != "awq" else len(qw)
    n = len(sc[0])

    def nibble(word, i):
        return ((word & 0xFFFFFFFF) >> (bits * i)) & mask

    def column_code(row, col):  # AWQ: packed along N, 4-bit words interleaved
        position = awq_position[col % 8] if bits == 4 else col % pack
        return nibble(row[col // pack], position)

    dense = [[0.0] * n for _ in range(k)]
    for kk in range(k):
        g = kk // group
        for nn in range(n):
            if layout == "awq":
                q, z = column_code(qw[kk], nn), column_code(qz[g], nn)
            else:
                q = nibble(qw[kk // pack][nn], kk % pack)
                z = nibble(qz[g][nn // pack], nn % pack) + (1 if layout == "gptq" else 0)
            dense[kk][nn] = (q - z) * sc[g][nn]
    return torch.tensor(dense)


@pytest.mark.parametrize("layout,bits", FORMATS + [("awq", 8)])
def test_reference_dequantization_is_the_format_spelled_out(layout, bits):
    w = random_packed(layout, bits, 64, 16, 32, seed=5)
    dense = dequantize(layout, w.qweight, w.qzeros, w.scales, 32, bits, dtype=torch.float32)
    assert torch.equal(dense, spelled_out(layout, bits, w.qweight, w.qzeros, w.scales, 32))
    x = torch.randn(3, 64).bfloat16()
    y = reference_matmul(x, layout, w.qweight, w.qzeros, w.scales, 32, bits)
    assert y.dtype == torch.bfloat16 and torch.equal(y, (x.float() @ dense).bfloat16())


def test_awq_order_is_the_interleaved_one():
    # One word with nibble i = i: AWQ's column order [0, 2, 4, 6, 1, 3, 5, 7] puts
    # nibble 1 in column 2, nibble 4 in column 1.
    word = sum(i << (4 * i) for i in range(8))
    word = torch.tensor([[word - 2**32 if word >= 2**31 else word]], dtype=torch.int32)
    assert awq_unpack_cols(word, 4).tolist() == [[0, 4, 1, 5, 2, 6, 3, 7]]


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda w: {"qweight": w.qweight.to(torch.int64)}, "qweight must be int32"),
        (lambda w: {"qzeros": w.qzeros[:, :-1].contiguous()}, "qzeros must be"),
        (lambda w: {"scales": w.scales[:1].contiguous()}, "scales must be"),
        (lambda w: {"scales": w.scales.to(torch.int32)}, "scales must be one of"),
        (lambda w: {"qweight": w.qweight.T.contiguous().T}, "qweight must be contiguous"),
        (lambda w: {"group_size": 48}, "does not divide"),
    ],
)
def test_check_packed_rejects(mutate, message):
    w = random_packed("gptq", 4, 64, 32, 32)
    args = {"qweight": w.qweight, "qzeros": w.qzeros, "scales": w.scales, "group_size": 32}
    args.update(mutate(w))
    with pytest.raises(ValueError, match=message):
        check_packed(PackedFormat("gptq", 4), **args)


def test_unknown_layout_and_bits():
    with pytest.raises(ValueError, match="layout"):
        PackedFormat("marlin", 4)
    with pytest.raises(ValueError, match="bits"):
        PackedFormat("gptq", 3)


# ---------------------------------------------------------------- torch dequantize


@pytest.mark.parametrize("layout,bits", FORMATS)
@pytest.mark.parametrize("group_size", [32, -1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_torch_matches_reference(layout, bits, group_size, dtype):
    k, n = 192, 48
    w = random_packed(layout, bits, k, n, group_size, seed=3)
    dense = dequantize_torch(PackedFormat(layout, bits), w.qweight, w.qzeros, w.scales, group_size, dtype)
    ref = reference(layout, bits, w, torch.eye(k))
    assert dense.dtype == dtype and dense.shape == (k, n)
    # One rounding of the scale and one of the product: within 2 units in the last place.
    ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    assert ((dense.float() - ref).abs() <= 2 * ulp * ref.abs() + 1e-7).all()


# ---------------------------------------------------------------- CPU path and dispatch


def _prepared(layout, bits, k, n, group_size, act_order=False, seed=0):
    w = random_packed(layout, bits, k, n, group_size, act_order=act_order, seed=seed)
    return w, prepare(layout, bits, group_size, w.qweight, w.qzeros, w.scales, w.g_idx, "cpu")


CPU_CASES = [
    # layout, bits, K, N, group, act_order, the CPU op expected
    ("gptq", 4, 256, 64, 64, False, "cpu_int4"),
    ("gptq", 4, 256, 64, 64, True, "cpu_int4"),
    ("gptq", 4, 384, 48, -1, False, "cpu_int4"),  # one group of 384 runs as 3 x 128
    ("gptq", 4, 512, 32, 512, True, "cpu_int4"),  # group 512 -> sub-groups of 256
    ("gptq_v2", 4, 256, 32, 128, True, "cpu_int4"),
    ("awq", 4, 256, 64, 32, False, "cpu_int4"),
    ("awq", 4, 224, 96, -1, False, "cpu_int4"),  # Qwen2-VL-7B kv shape / 16
    ("gptq", 8, 192, 32, -1, False, "cpu_int8"),
    ("gptq", 8, 192, 32, -1, True, "cpu_int8"),
    ("awq", 8, 192, 48, -1, False, "cpu_int8"),
    ("gptq", 8, 192, 32, 64, True, "cpu_int8"),  # grouped 8-bit: the op once per group
    ("awq", 8, 256, 48, 128, False, "cpu_int8"),
    ("gptq", 4, 256, 40, 64, False, "torch_dequant"),  # N % 16 != 0
    ("gptq", 4, 240, 32, 48, False, "torch_dequant"),  # group 48: not a multiple of 32
]


@pytest.mark.parametrize("layout,bits,k,n,group,act_order,path", CPU_CASES)
@pytest.mark.parametrize("m", [1, 3, 17])
def test_cpu_auto_path_matches_reference(layout, bits, k, n, group, act_order, path, m, torch_cpu_ops):
    """Where the C++ kernels cannot be built (test_cpu_fused.py covers them)."""
    w, p = _prepared(layout, bits, k, n, group, act_order)
    x = torch.randn(m, k).bfloat16()
    grouped_int8 = path == "cpu_int8" and group not in (-1, k)
    if grouped_int8 and m > CPU_INT8_GROUPED_MAX_M:
        path = "torch_dequant"  # G launches of the int8 op stop paying off
    assert resolve_path(p, m) == path
    assert_close(quantized_linear(x, p), reference(layout, bits, w, x), torch.bfloat16)


@pytest.mark.parametrize("layout,bits,k,n,group,act_order,path", CPU_CASES[:4] + CPU_CASES[7:12])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_cpu_path_matches_reference(layout, bits, k, n, group, act_order, path, dtype):
    w, p = _prepared(layout, bits, k, n, group, act_order)
    x = torch.randn(2, 3, k).to(dtype)  # leading dims are kept (6 rows: cpu_gemv takes them)
    bias = torch.randn(n).to(dtype)
    ref = reference(layout, bits, w, x) + bias.float()
    paths = [q for q in available_paths(p) if not q.startswith("triton")]
    assert path in paths and "reference" in paths and "torch_dequant" in paths
    for q in paths:
        y = quantized_linear(x, p, bias, path=q)
        assert y.shape == (2, 3, n)
        # torch's int4/int8 CPU ops run in bf16 whatever x's dtype (cpu.py).
        assert_close(y, ref, dtype, tol=TOL[torch.bfloat16] if q.startswith("cpu") else None)


def test_int8_asymmetric_zero_term_and_symmetric_fast_case(torch_cpu_ops):
    # Symmetric 8-bit (every zero 128) needs no rank-1 correction.
    w = random_packed("gptq", 8, 128, 32, -1)
    sym = torch.full((1, 32), 128 - 1, dtype=torch.int32)  # v1 stores zero - 1
    qzeros = pack_cols(sym, 8)
    p = prepare("gptq", 8, -1, w.qweight, qzeros, w.scales, None, "cpu")
    assert p.cpu_op_weight().zero_term is None
    x = torch.randn(3, 128).bfloat16()
    w_sym = type(w)(w.qweight, qzeros, w.scales, None, -1, 128)
    assert_close(quantized_linear(x, p), reference("gptq", 8, w_sym, x), torch.bfloat16)
    _, p_asym = _prepared("gptq", 8, 128, 32, -1)
    assert p_asym.cpu_op_weight().zero_term is not None


def test_auto_routes_by_m_on_cpu(torch_cpu_ops):
    _, p = _prepared("gptq", 4, 256, 64, 64)
    assert resolve_path(p, 1) == "cpu_int4"
    assert resolve_path(p, CPU_INT4_MAX_M) == "cpu_int4"
    assert resolve_path(p, CPU_INT4_MAX_M + 1) == "torch_dequant"
    assert resolve_path(p, 1, "reference") == "reference"
    assert available_paths(p) == ("cpu_int4", "torch_dequant", "reference")


def test_grouped_int8_keeps_the_op_longer_for_large_weights(torch_cpu_ops):
    """G launches of the int8 op beat re-expanding a large weight up to M = 64
    (2B gate/up and down), a small one only up to CPU_INT8_GROUPED_MAX_M."""
    _, large = _prepared("gptq", 8, 4096, 2048, 128)
    assert resolve_path(large, CPU_INT8_MAX_M) == "cpu_int8"
    assert resolve_path(large, CPU_INT8_MAX_M + 1) == "torch_dequant"
    _, small = _prepared("gptq", 8, 512, 256, 128)
    assert resolve_path(small, CPU_INT8_GROUPED_MAX_M) == "cpu_int8"
    assert resolve_path(small, CPU_INT8_GROUPED_MAX_M + 1) == "torch_dequant"


def test_act_order_perm():
    g_idx = torch.tensor([1, 0, 1, 0, 2, 2], dtype=torch.int32)
    perm, ok = act_order_perm(g_idx, 6, 2)
    assert ok and perm.tolist() == [1, 3, 0, 2, 4, 5]
    assert act_order_perm(torch.arange(6) // 2, 6, 2) == (None, True)
    assert act_order_perm(None, 6, 2) == (None, True)
    _, ok = act_order_perm(torch.tensor([0, 0, 0, 1, 2, 2]), 6, 2)  # unequal groups
    assert not ok


def test_unsortable_g_idx_leaves_only_the_reference_path():
    w = random_packed("gptq", 4, 128, 32, 32)
    g_idx = torch.zeros(128, dtype=torch.int32)
    g_idx[:10] = 3  # group 3 gets 42 rows: no permutation makes groups of 32
    p = prepare("gptq", 4, 32, w.qweight, w.qzeros, w.scales, g_idx, "cpu")
    assert available_paths(p) == ("reference",)
    x = torch.randn(2, 128).bfloat16()
    w_odd = dataclasses.replace(w, g_idx=g_idx)
    assert_close(quantized_linear(x, p), reference("gptq", 4, w_odd, x), torch.bfloat16)
    with pytest.raises(ValueError, match="not a permutation"):
        quantized_linear(x, p, path="cpu_int4")


def test_dispatch_contract_errors():
    w, p = _prepared("gptq", 4, 128, 32, 32)
    x = torch.randn(2, 128).bfloat16()
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        quantized_linear(x.float(), p)
    with pytest.raises(ValueError, match="K=128"):
        quantized_linear(torch.randn(2, 64).bfloat16(), p)
    with pytest.raises(ValueError, match="bias"):
        quantized_linear(x, p, torch.zeros(31).bfloat16())
    with pytest.raises(ValueError, match="unknown path"):
        quantized_linear(x, p, path="marlin")
    with pytest.raises(ValueError, match="cannot run"):
        quantized_linear(x, p, path="cpu_int8")
    a = random_packed("awq", 4, 128, 32, 32)
    with pytest.raises(ValueError, match="AWQ has no g_idx"):
        prepare("awq", 4, 32, a.qweight, a.qzeros, a.scales, torch.zeros(128, dtype=torch.int32))
    with pytest.raises(ValueError, match="g_idx must be"):
        prepare("gptq", 4, 32, w.qweight, w.qzeros, w.scales, torch.zeros(64, dtype=torch.int32))
    assert set(available_paths(p)) <= set(PATHS)
    assert quantized_linear(torch.empty(0, 128).bfloat16(), p).shape == (0, 32)


# ---------------------------------------------------------------- launcher contracts


LAUNCHERS = [
    lambda x, w, f, g: decode_matmul(x, w.qweight, w.qzeros, w.scales, f, g),
    lambda x, w, f, g: gemm_matmul(x, w.qweight, w.qzeros, w.scales, f, g),
    lambda x, w, f, g: triton_dequantize(w.qweight, w.qzeros, w.scales, f, g, x.dtype),
]


@pytest.mark.parametrize("launch", LAUNCHERS, ids=["decode", "gemm", "dequant"])
def test_launcher_contract_errors(launch):
    fmt = PackedFormat("gptq", 4)
    w = random_packed("gptq", 4, 128, 64, 32)
    x = torch.randn(4, 128).bfloat16()
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        launch(x.float(), w, fmt, 32)
    with pytest.raises(ValueError, match="qzeros must be"):
        launch(x, dataclasses.replace(w, qzeros=w.qzeros[:2].contiguous(), g_idx=None), fmt, 32)
    with pytest.raises(ValueError, match="multiple of 16"):
        bad = random_packed("gptq", 4, 120, 64, 40)
        launch(torch.randn(4, 120).bfloat16(), bad, fmt, 40)
    # A valid call on CPU tensors without the interpreter: a clear error, not a crash.
    with pytest.raises(ValueError, match="CUDA"):
        launch(x, w, fmt, 32)


def test_matmul_launcher_shape_errors():
    fmt = PackedFormat("awq", 4)
    w = random_packed("awq", 4, 128, 64, 32)
    for launch in (decode_matmul, gemm_matmul):
        with pytest.raises(ValueError, match="K=128"):
            launch(torch.randn(2, 64).bfloat16(), w.qweight, w.qzeros, w.scales, fmt, 32)
        with pytest.raises(ValueError, match="2-D"):
            launch(torch.randn(2, 2, 128).bfloat16(), w.qweight, w.qzeros, w.scales, fmt, 32)
        with pytest.raises(ValueError, match="contiguous"):
            launch(torch.randn(128, 2).bfloat16().T, w.qweight, w.qzeros, w.scales, fmt, 32)
    with pytest.raises(ValueError, match="exceeds 16"):
        decode_matmul(torch.randn(17, 128).bfloat16(), w.qweight, w.qzeros, w.scales, fmt, 32)
    with pytest.raises(ValueError, match="not a GEMM config"):
        gemm_matmul(
            torch.randn(2, 128).bfloat16(), w.qweight, w.qzeros, w.scales, fmt, 32, config=configs.DEQUANT_CONFIG
        )


# ---------------------------------------------------------------- configs and traffic


def test_config_tables_cover_their_ranges():
    for m in range(1, configs.DECODE_MAX_M + 1):
        assert configs.decode_config(m, 4096).block_m >= m
    for m in range(configs.DECODE_MAX_M + 1, configs.GEMM_MAX_M + 1):
        assert configs.gemm_config(m, 4096).kernel == "gemm"
    with pytest.raises(ValueError):
        configs.decode_config(configs.DECODE_MAX_M + 1, 64)
    assert len(set(configs.SHIPPED)) == len(configs.SHIPPED)


@pytest.mark.parametrize(
    "k,group,n_blocks",
    [(1536, 128, 24), (1536, 1536, 24), (8960, 128, 24), (18944, 18944, 56), (3584, 32, 296), (224, 32, 1)],
)
def test_plan_k_splits_cover_k_once_and_respect_groups(k, group, n_blocks):
    plan = configs.plan_k(k, group, 64, n_blocks, 528)
    assert plan.block_k <= 64 and (k // group == 1 or group % plan.block_k == 0)
    covered = [
        t
        for s in range(plan.splits)
        for t in range(s * plan.tiles_per_split, min((s + 1) * plan.tiles_per_split, plan.tiles_total))
    ]
    assert covered == list(range(plan.tiles_total))
    assert plan.tiles_total * plan.block_k >= k > (plan.tiles_total - 1) * plan.block_k
    if k // group > 1:  # a split holds whole groups or divides one evenly
        tpg = plan.tiles_per_group
        assert plan.tiles_per_split % tpg == 0 or tpg % plan.tiles_per_split == 0


# Linear shapes (K, N) of Qwen2-VL-2B and -7B: q/o, k/v, gate/up, down.
QWEN_SHAPES = [
    (1536, 1536),
    (1536, 256),
    (1536, 8960),
    (8960, 1536),
    (3584, 3584),
    (3584, 512),
    (3584, 18944),
    (18944, 3584),
]


def _routed_config(m, n):
    if m <= configs.DECODE_MAX_M:
        return configs.decode_config(m, n)
    if m <= configs.GEMM_MAX_M:
        return configs.gemm_config(m, n)
    return configs.DEQUANT_CONFIG


@pytest.mark.parametrize("layout,bits", [("gptq", 4), ("gptq", 8), ("awq", 4)])
def test_every_shipped_config_reads_within_5_percent_of_ideal(layout, bits):
    fmt = PackedFormat(layout, bits)
    seen = set()
    for k, n in QWEN_SHAPES:
        for group in (128, k):
            for m in (1, 3, 16, 17, 100, 255, 2048):
                config = _routed_config(m, n)
                seen.add(config)
                t = model_launch(config, fmt, m, k, n, group)
                assert t.ratio <= 1.05, t.as_dict()
    assert seen == set(configs.SHIPPED)


def test_traffic_model_sees_redundant_reads():
    # Without an L2 every row block of a GEMM re-reads the weight: the model must say so.
    fmt = PackedFormat("gptq", 4)
    config = configs.gemm_config(255, 8960)
    t = model_launch(config, fmt, 255, 1536, 8960, 128, l2_bytes=0)
    assert t.by_operand["qweight"] == 4 * (1536 * 8960 // 8) * 4  # 4 row blocks of 64
    assert t.ratio > 3
    # A split-K decode reads each packed word exactly once even with no cache at all.
    t = model_launch(configs.decode_config(1, 8960), fmt, 1, 1536, 8960, 128, l2_bytes=0)
    assert t.by_operand["qweight"] == 4 * (1536 * 8960 // 8)


def test_int4_sub_groups():
    assert int4_group(128) == 128 and int4_group(1536) == 256 and int4_group(96) == 32 and int4_group(48) is None
