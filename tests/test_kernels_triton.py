"""Every Triton kernel against the plain-torch reference, under the Triton interpreter.

Triton picks the interpreter when @triton.jit runs, i.e. when the kernel modules are
imported, from TRITON_INTERPRET=1. Other test modules import the kernels compiled for a
GPU (test_kernels_compile.py needs exactly that), so in a normal pytest run this module
holds a single test that re-runs this file in a child pytest with TRITON_INTERPRET=1 set
from the start; in that child the real cases below are defined and run.

Interpreter caveats (DESIGN.md section 4) the kernels already respect: no bf16
arithmetic, no bf16 tl.dot, no int->bf16 casts; the launchers keep tl.dot operands in
fp32 for CPU tensors.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"

if not INTERPRETING:

    def test_triton_kernels_under_the_interpreter():
        env = dict(os.environ, TRITON_INTERPRET="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", __file__]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert run.returncode == 0, f"interpreter tests failed:\n{run.stdout[-8000:]}\n{run.stderr[-4000:]}"

else:
    import torch

    from qwen2vl_quant.kernels.configs import KernelConfig
    from qwen2vl_quant.kernels.decode import decode_matmul
    from qwen2vl_quant.kernels.dequant import dequant_matmul, triton_dequantize
    from qwen2vl_quant.kernels.dispatch import TRITON_PATHS, available_paths, prepare, quantized_linear
    from qwen2vl_quant.kernels.gemm import gemm_matmul
    from qwen2vl_quant.kernels.layout import PackedFormat
    from qwen2vl_quant.kernels.reference import dequantize as dequantize_reference
    from qwen2vl_quant.testing.packed import random_packed

    FORMATS = [("gptq", 4), ("gptq", 8), ("awq", 4), ("awq", 8)]
    TOL = {torch.bfloat16: 1.5e-2, torch.float16: 3e-3}

    # Qwen2-VL-2B/7B Linear shapes (K, N) scaled down for the interpreter, plus awkward
    # ones: K not a multiple of BLOCK_K (200, one group), N not a multiple of BLOCK_N (72,
    # 1120/8), groups that force a smaller BLOCK_K (160 -> 32).
    SHAPES = {
        "2b_q": (192, 192, 64),  # 1536 x 1536 / 8, group 64
        "2b_kv": (192, 32, 32),  # 1536 x 256 / 8
        "2b_gate": (192, 1120, -1),  # 1536 x 8960 / 8, one group
        "2b_down": (1120, 192, 160),  # 8960 x 1536 / 8, group 160
        "7b_kv": (224, 32, 32),  # 3584 x 512 / 16
        "odd": (200, 72, -1),
    }

    def reference(layout, bits, w, x):
        """x @ W in float32, W dequantized by reference.py (the checkpoint's g_idx as given)."""
        return x.float() @ dequantize_reference(layout, w.qweight, w.qzeros, w.scales, w.group, bits, w.g_idx,
                                                dtype=torch.float32)

    def assert_close(y, ref, dtype):
        assert y.dtype == dtype and y.shape == ref.shape
        err = (y.float() - ref).abs().max().item()
        scale = ref.abs().max().item()
        assert err <= TOL[dtype] * scale, f"max error {err:.3g} vs max |ref| {scale:.3g}"

    def case(layout, bits, shape, m, dtype=torch.bfloat16, seed=0):
        k, n, group = SHAPES[shape]
        w = random_packed(layout, bits, k, n, group, seed=seed)
        x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed)).to(dtype)
        return PackedFormat(layout, bits), w, x

    @pytest.mark.parametrize("layout,bits", FORMATS)
    @pytest.mark.parametrize(
        "shape,m", [("2b_q", 1), ("2b_kv", 3), ("2b_down", 16), ("odd", 1), ("odd", 3), ("7b_kv", 16)]
    )
    def test_decode(layout, bits, shape, m):
        fmt, w, x = case(layout, bits, shape, m)
        y = decode_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size)
        assert_close(y, reference(layout, bits, w, x), x.dtype)

    @pytest.mark.parametrize("layout,bits", [("gptq", 4), ("awq", 4)])
    @pytest.mark.parametrize("split", [1, 3, 100])
    @pytest.mark.parametrize("block_m", [1, 16])
    def test_decode_split_k_and_both_forms(layout, bits, split, block_m):
        fmt, w, x = case(layout, bits, "2b_down", 1, seed=split)
        config = KernelConfig("decode", block_m, 64, 64, 4, 3)
        y = decode_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size, config=config, split=split)
        assert_close(y, reference(layout, bits, w, x), x.dtype)

    @pytest.mark.parametrize("layout,bits", FORMATS)
    @pytest.mark.parametrize("shape,m", [("2b_q", 17), ("2b_kv", 100), ("odd", 17), ("2b_down", 40)])
    def test_gemm(layout, bits, shape, m):
        fmt, w, x = case(layout, bits, shape, m)
        y = gemm_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size)
        assert_close(y, reference(layout, bits, w, x), x.dtype)

    @pytest.mark.parametrize(
        "config",
        [KernelConfig("gemm", 32, 64, 64, 4, 3), KernelConfig("gemm", 64, 128, 64, 8, 3)],
        ids=lambda c: c.name,
    )
    def test_gemm_configs_with_masked_tails(config):
        fmt, w, x = case("gptq", 4, "odd", 100)
        y = gemm_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size, config=config)
        assert_close(y, reference("gptq", 4, w, x), x.dtype)

    @pytest.mark.parametrize("layout,bits", FORMATS)
    @pytest.mark.parametrize("shape", ["2b_q", "odd", "2b_down"])
    def test_dequant(layout, bits, shape):
        fmt, w, x = case(layout, bits, shape, 3)
        k = x.shape[1]
        ref = reference(layout, bits, w, torch.eye(k))
        # The kernel's fp32 weight, converted once on the store: exactly the reference's in
        # fp16; in bf16 within one unit in the last place, as the interpreter's
        # fp32 -> bf16 conversion truncates where a GPU rounds to nearest.
        dense = triton_dequantize(w.qweight, w.qzeros, w.scales, fmt, w.group_size, torch.float16, split=2)
        assert dense.dtype == torch.float16 and torch.equal(dense, ref.to(torch.float16))
        dense = triton_dequantize(w.qweight, w.qzeros, w.scales, fmt, w.group_size, torch.bfloat16, split=2)
        assert dense.dtype == torch.bfloat16
        assert ((dense.float() - ref).abs() <= 2.0**-7 * ref.abs()).all()
        assert_close(
            dequant_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size), reference(layout, bits, w, x), x.dtype
        )

    @pytest.mark.parametrize("layout,bits", [("gptq", 4), ("awq", 4), ("gptq", 8)])
    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
    def test_fp16_and_bf16_activations(layout, bits, dtype):
        fmt, w, x = case(layout, bits, "2b_q", 17, dtype=dtype)
        ref = reference(layout, bits, w, x)
        assert_close(gemm_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size), ref, dtype)
        assert_close(decode_matmul(x[:5], w.qweight, w.qzeros, w.scales, fmt, w.group_size), ref[:5], dtype)
        assert_close(dequant_matmul(x, w.qweight, w.qzeros, w.scales, fmt, w.group_size), ref, dtype)

    def test_bf16_scales_and_row_strided_x():
        fmt = PackedFormat("gptq", 4)
        w = random_packed("gptq", 4, 128, 64, 32, scale_dtype=torch.bfloat16)
        big = torch.randn(3, 256).bfloat16()
        x = big[:, :128]  # rows contiguous, row stride 256
        assert_close(decode_matmul(x, w.qweight, w.qzeros, w.scales, fmt, 32), reference("gptq", 4, w, x), x.dtype)

    @pytest.mark.parametrize("layout,bits", [("gptq", 4), ("gptq", 8), ("gptq_v2", 4)])
    @pytest.mark.parametrize("m", [1, 17, 100])
    def test_act_order_through_dispatch(layout, bits, m):
        # desc_act g_idx: the Triton paths run on the row-permuted weight and permuted x.
        k, n, group = 256, 96, 64
        w = random_packed(layout, bits, k, n, group, act_order=True, seed=m)
        p = prepare(layout, bits, group, w.qweight, w.qzeros, w.scales, w.g_idx, "cpu")
        assert p.perm is not None and set(TRITON_PATHS) <= set(available_paths(p))
        x = torch.randn(2, m, k).bfloat16()
        bias = torch.randn(n).bfloat16()
        ref = reference(layout, bits, w, x) + bias.float()
        for path in TRITON_PATHS:
            if path == "triton_decode" and 2 * m > 16:
                continue
            assert_close(quantized_linear(x, p, bias, path=path), ref, x.dtype)

    # -- the traffic model (kernels/traffic.py) is the kernels' own loads ---------------------

    def count_loads(operands: dict, run) -> dict:
        """Bytes each operand gives the kernel's masked loads while ``run()`` runs, read off
        the interpreter's own load instruction (every element a masked-in load touches)."""
        from triton.runtime import interpreter

        ranges = [(name, t.data_ptr(), t.data_ptr() + t.numel() * t.element_size(), t.element_size())
                  for name, t in operands.items()]
        counted = dict.fromkeys(operands, 0)
        original = interpreter.InterpreterBuilder.create_masked_load

        def counting(self, ptrs, mask, other, *rest):
            addresses = ptrs.data[mask.data]
            for name, lo, hi, size in ranges:
                counted[name] += int(((addresses >= lo) & (addresses < hi)).sum()) * size
            return original(self, ptrs, mask, other, *rest)

        interpreter.InterpreterBuilder.create_masked_load = counting
        try:
            run()
        finally:
            interpreter.InterpreterBuilder.create_masked_load = original
        return {name: nbytes for name, nbytes in counted.items() if nbytes}

    @pytest.mark.parametrize("layout,bits", [("gptq", 4), ("gptq", 8), ("awq", 4)])
    @pytest.mark.parametrize("kernel,m", [("decode", 1), ("decode", 3), ("gemm", 40), ("dequant", 0)])
    def test_traffic_model_counts_what_the_kernel_loads(layout, bits, kernel, m):
        """The byte model that the "within 5 % of ideal" test trusts (test_kernels.py) must
        replay the loads the kernels really issue: with no cache, its bytes per operand equal
        the bytes the interpreted kernel loads. A redundant tile load in a kernel (DESIGN.md:
        a broadcast packed address reloads each word 8 times) makes the two differ."""
        from qwen2vl_quant.kernels import configs
        from qwen2vl_quant.kernels.traffic import model_launch

        k, n, group = 512, 192, 128
        fmt = PackedFormat(layout, bits)
        w = random_packed(layout, bits, k, n, group, seed=1)
        x = torch.randn(max(m, 1), k).bfloat16()
        operands = {"qweight": w.qweight, "zeros": w.qzeros, "scales": w.scales}  # traffic.py names
        if kernel == "decode":
            config = configs.decode_config(m, n)
            run = lambda: decode_matmul(x, w.qweight, w.qzeros, w.scales, fmt, group, config=config)  # noqa: E731
        elif kernel == "gemm":
            config = configs.gemm_config(m, n)
            run = lambda: gemm_matmul(x, w.qweight, w.qzeros, w.scales, fmt, group, config=config)  # noqa: E731
        else:
            config = configs.DEQUANT_CONFIG
            run = lambda: triton_dequantize(w.qweight, w.qzeros, w.scales, fmt, group, torch.bfloat16)  # noqa: E731
        if kernel != "dequant":
            operands["x"] = x
        modelled = model_launch(config, fmt, m, k, n, group, l2_bytes=0).by_operand
        assert count_loads(operands, run) == modelled
