"""The C++ CPU kernels (kernels/cpu_fused.py): built here, against reference.py, one copy of
the weight, the measured switch, and the clean fallback where no compiler is present."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from qwen2vl_quant.kernels import cpu_fused
from qwen2vl_quant.kernels.dispatch import available_paths, prepare, quantized_linear, resolve_path
from qwen2vl_quant.kernels.layout import PackedFormat
from qwen2vl_quant.kernels.reference import dequantize
from qwen2vl_quant.testing.packed import random_packed

from test_kernels import assert_close, reference

CASES = [
    # layout, bits, K, N, group, act_order
    ("gptq", 4, 256, 64, 64, False),
    ("gptq", 4, 256, 96, 64, True),  # act-order: x's columns permuted, qweight rows once
    ("gptq", 4, 384, 48, -1, False),
    ("gptq_v2", 4, 256, 80, 128, False),  # N not a multiple of 16 or of the 64-column tile
    ("awq", 4, 256, 64, 32, False),
    ("awq", 4, 224, 96, -1, False),
    ("gptq", 8, 192, 32, -1, False),
    ("gptq", 8, 256, 48, 128, True),
    ("awq", 8, 256, 48, 128, False),
    ("awq", 4, 128, 1032, 64, False),  # more than one 64-word AWQ tile, a ragged last one
    ("awq", 4, 256, 384, 128, False),  # N % 128 == 0: one row takes gemv_awq4_row
    # N % 128 == 0: prompts take the C++ gemm (AVX512-BF16), every format and segment kind
    ("gptq", 4, 512, 256, 128, True),
    ("gptq_v2", 4, 256, 128, 32, False),
    ("gptq", 8, 384, 128, -1, False),  # per channel: the group in segments of 128 rows
    ("awq", 8, 1152, 256, 64, False),  # more than one 512-row chunk, a ragged last one
]


@pytest.fixture(autouse=True)
def built():
    if cpu_fused.extension() is None:
        pytest.fail(f"the C++ CPU kernels did not build on this machine: {cpu_fused.failure}")


def _prepared(layout, bits, k, n, group, act_order):
    w = random_packed(layout, bits, k, n, group, act_order=act_order)
    return w, prepare(layout, bits, group, w.qweight, w.qzeros, w.scales, w.g_idx, "cpu")


@pytest.mark.parametrize("layout,bits,k,n,group,act_order", CASES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_paths_match_the_reference(layout, bits, k, n, group, act_order, dtype, monkeypatch):
    w, p = _prepared(layout, bits, k, n, group, act_order)
    assert {"cpu_gemv", "cpu_gemm", "cpu_dequant"} <= set(available_paths(p))
    # The gemm where the CPU has AVX512-BF16 and N % 128 == 0, per-thread dequantize + matmul elsewhere.
    assert (p.fused.gemm_tables is not None) == (cpu_fused.extension().has_gemm and n % 128 == 0)
    for m in (1, 2, 5, 6, 7, cpu_fused.FUSED_GEMV_MAX_M):  # the gemm's blocks of 6 rows, and tails
        x = torch.randn(m, k).to(dtype)
        for path in ("cpu_gemv", "cpu_gemm", "cpu_dequant"):
            # All round x to bf16 (for fp16) and sum in float32; the gemm's weight is exact
            # (codes and scales apart), the dequantized blocks' rounded to bf16 as the reference's.
            assert_close(quantized_linear(x, p, path=path), reference(layout, bits, w, x), dtype, tol=1.5e-2)
    assert resolve_path(p, 37) == "cpu_gemm"
    # Both GEMMs, whichever this CPU's dot_rates() picks: BF16 dot products (from 128 rows,
    # DEQUANTIZED_PANEL_ROWS, on its dequantized panel) and float32 FMAs. 133 = 22 blocks of 6 + 1.
    assert cpu_fused.DEQUANTIZED_PANEL_ROWS <= 133
    for float32 in (False, True):
        monkeypatch.setattr(cpu_fused, "_float32_gemm", {"chosen": float32})
        for m in (37, 133):
            x = torch.randn(m, k).to(dtype)
            assert_close(quantized_linear(x, p), reference(layout, bits, w, x), dtype, tol=1.5e-2)
    assert_close(quantized_linear(x, p, path="cpu_dequant"), reference(layout, bits, w, x), dtype, tol=1.5e-2)


@pytest.mark.parametrize("layout,bits", [("gptq", 4), ("awq", 4), ("gptq", 8)])
@pytest.mark.parametrize("k,strips", [(1024, (264, 264, 72)), (3072, (264, 12))])
def test_float32_gemm_runs_the_rows_in_strips(layout, bits, k, strips):
    """gemm_f32 takes the rows in strips of at most 264, each thread widening the strip's
    slice of x chunk by chunk: every row's output is the same whichever strip it falls in,
    and the reference's product."""
    if not cpu_fused.extension().has_gemm:
        pytest.skip("gemm_f32 needs AVX512-BF16 and VBMI")
    w, p = _prepared(layout, bits, k, 128, 128, False)
    f = p.fused

    def gemm(x):
        return cpu_fused.extension().gemm_f32(x, f.qweight, *f.gemm_tables, f.order, f.bits, f.along_k, f.group)

    assert gemm(torch.empty(0, k, dtype=torch.bfloat16)).shape == (0, 128)
    x = torch.randn(sum(strips), k).bfloat16()
    whole = gemm(x)
    assert torch.equal(whole, torch.cat([gemm(part) for part in x.split(list(strips))]))
    assert_close(whole, reference(layout, bits, w, x), torch.bfloat16, tol=1e-2)


def test_the_gemm_takes_float32_where_fmas_are_clearly_faster(monkeypatch):
    """float32_gemm() decides from dot_rates() once per process: the Xeon here (float32 FMAs
    twice the BF16 dot products' multiply-adds), a core whose dot products do twice an FMA's
    work (as AVX512-BF16 intends), and two within FLOAT32_CLEAR_WIN of each other."""
    if not cpu_fused.extension().has_gemm:
        pytest.skip("the GEMMs need AVX512-BF16 and VBMI")
    bf16, f32 = cpu_fused.extension().dot_rates(2000, 2)
    assert bf16 > 1e9 and f32 > 1e9  # multiply-adds per second of one thread
    calls = []

    class Rates:  # the measurement faked, the rule real
        has_gemm = True

        def __init__(self, bf16, f32):
            self.rates = (bf16, f32)

        def dot_rates(self, iters, rounds):
            calls.append(self.rates)
            return self.rates

    for rates, chosen in [((45e9, 89e9), True), ((64e9, 32e9), False), ((50e9, 60e9), False)]:
        monkeypatch.setattr(cpu_fused, "_float32_gemm", {})  # as in a fresh process
        monkeypatch.setattr(cpu_fused, "extension", lambda: Rates(*rates))
        assert cpu_fused.float32_gemm() is chosen
        assert cpu_fused.float32_gemm() is chosen and calls.count(rates) == 1  # measured once
    assert cpu_fused.gemm_kind() == ("BF16 dot products (gemm) (one thread: 60 G multiply-adds/s in float32 FMAs,"
                                     " 50 G in BF16 dot products)")


@pytest.mark.parametrize("layout,bits", [("gptq", 4), ("gptq", 8), ("awq", 4), ("awq", 8)])
def test_dequantized_blocks_are_the_reference_weight_in_bf16(layout, bits):
    k, n = 256, 320
    w = random_packed(layout, bits, k, n, 64)
    fused = cpu_fused.prepare_fused(PackedFormat(layout, bits), w.qweight, w.qzeros, w.scales, 64)
    dense = dequantize(layout, w.qweight, w.qzeros, w.scales, 64, bits, w.g_idx, dtype=torch.float32)
    block = torch.empty(k, n, dtype=torch.bfloat16)
    for n0, n1 in ((0, n), (64, 128), (256, 320)):  # whole, middle, last columns
        cpu_fused.extension().dequant(fused.qweight, fused.scales, fused.zeros, fused.order, bits, fused.along_k,
                                      64, n0, n1, block)
        assert torch.equal(block[:, : n1 - n0], dense[:, n0:n1].to(torch.bfloat16))
    # The fallback's per-thread blocks: several of columns (a ragged last one) and of rows
    # (summed with addmm) give what one block gives.
    x = torch.randn(40, k).bfloat16()
    ext = cpu_fused.extension()
    args = (x, fused.qweight, fused.scales, fused.zeros, fused.order, bits, fused.along_k, 64)
    whole = ext.dequant_mm(*args, 320, k)
    assert_close(whole, x.float() @ dense, torch.bfloat16, tol=1e-2)
    assert_close(ext.dequant_mm(*args, 128, 64), whole.float(), torch.bfloat16, tol=1e-2)


def test_one_copy_of_the_weight_and_the_measured_switch(monkeypatch):
    monkeypatch.setattr(cpu_fused, "_dense_switch", {})  # as in a fresh process
    w, p = _prepared("gptq", 4, 512, 256, 128, False)
    assert p.fused.qweight.data_ptr() == p.qweight.data_ptr()  # the checkpoint tensor, not a copy
    assert 0 <= p.gemv_max_m <= cpu_fused.FUSED_GEMV_MAX_M
    key = (512, 256, 4, True, 128, torch.get_num_threads())
    assert cpu_fused._switch[key] == p.gemv_max_m  # measured once, cached for the process
    for m in (1, 3, 8, 9):
        quantized_linear(torch.randn(m, 512).bfloat16(), p)
    assert not cpu_fused._dense_switch  # decoding and short prompts never probe the dense switch
    for m in (300, 2048):
        quantized_linear(torch.randn(m, 512).bfloat16(), p)
    dense = cpu_fused._dense_switch[torch.get_num_threads()]  # measured once per process
    assert dense in cpu_fused.DENSE_PROBE_M + (None,)
    for m in (1, 3, 8, 9, 300, 2048):
        want = "cpu_gemv" if m <= p.gemv_max_m else "cpu_dequant" if m >= (dense or 10**9) else "cpu_gemm"
        assert resolve_path(p, m) == want
    assert not p._op_tables  # torch's int4 tables (a second copy) were never built
    # Calibration keeps its dequantize-once cache for the layer's many samples.
    assert resolve_path(p, 300, calibrating=True) == "torch_dequant"
    with pytest.raises(ValueError, match="at most"):
        quantized_linear(torch.randn(9, 512).bfloat16(), p, path="cpu_gemv")


@pytest.mark.parametrize("layout,bits,group", [("gptq", 4, 128), ("awq", 4, 64), ("gptq", 8, -1)])
def test_dense_blocks_give_the_whole_weight_product(layout, bits, group):
    """cpu_dequant in column blocks (the last one ragged) gives what one block gives, and
    that is x times the reference weight in bf16."""
    k, n = 256, 640
    w = random_packed(layout, bits, k, n, group)
    fused = cpu_fused.prepare_fused(PackedFormat(layout, bits), w.qweight, w.qzeros, w.scales, w.group)
    x = torch.randn(70, k).bfloat16()
    whole = cpu_fused.dense_matmul(x, fused)
    dense = dequantize(layout, w.qweight, w.qzeros, w.scales, w.group, bits, w.g_idx, dtype=torch.bfloat16)
    assert torch.equal(whole, x @ dense)
    blocks = cpu_fused.dense_matmul(x, fused, block_bytes=2 * k * 256)  # 256 + 256 + 128 columns
    assert_close(blocks, whole.float(), torch.bfloat16, tol=1e-2)


def test_the_dense_switch_follows_the_measurement(monkeypatch):
    """The probe's decision from its timings (a fake clock: real timings of two close paths
    would make this a coin flip): where torch's matmul is clearly ahead of ours (as with AMX
    tiles) it switches at the fewest rows where it is; where the two are close, never."""
    seconds: dict[tuple[str, int], float] = {}
    last: list[tuple[str, int]] = []

    def path(name):
        return lambda x, w: last.append((name, x.shape[0]))

    def best_of(fn, repeats=3):
        fn()
        return seconds[last[-1]]

    monkeypatch.setattr(cpu_fused, "matmul", path("gemm"))
    monkeypatch.setattr(cpu_fused, "dense_matmul", path("dense"))
    monkeypatch.setattr(cpu_fused, "_best_of", best_of)
    few, many = cpu_fused.DENSE_PROBE_M
    for gemm, dense, switch in [((3.0, 12.0), (1.0, 4.0), few),  # far ahead from the fewest rows
                                ((1.0, 5.0), (1.2, 3.0), many),  # ahead only with more rows
                                ((1.0, 4.0), (1.25, 3.2), None)]:  # within noise (here): never
        seconds.update({("gemm", few): gemm[0], ("gemm", many): gemm[1],
                        ("dense", few): dense[0], ("dense", many): dense[1]})
        assert cpu_fused._measure_dense_switch() == switch


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads Linux's /proc/cpuinfo")
def test_the_build_is_keyed_by_the_cpu_model_and_flags():
    """-march=native code runs only on the CPU it was built for: the extension's name hashes
    the CPU's model and flags, read once (kernels/cpu_info.py, shared with AWQ and the
    benchmark reports)."""
    from qwen2vl_quant.kernels.cpu_info import cpu_flags, cpu_model

    text = open("/proc/cpuinfo").read()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if model is None or flags is None:
        pytest.skip("this /proc/cpuinfo names no model or flags (not x86)")
    assert cpu_model() == model and cpu_flags() == frozenset(flags)
    assert model in cpu_fused._cpu_signature() and all(flag in cpu_fused._cpu_signature() for flag in flags)


def test_torch_ops_remain_by_name_and_switched_off(monkeypatch):
    w, p = _prepared("gptq", 4, 256, 64, 64, False)
    x = torch.randn(3, 256).bfloat16()
    assert_close(quantized_linear(x, p, path="cpu_int4"), reference("gptq", 4, w, x), torch.bfloat16)
    assert p._op_tables  # built on that first cpu_int4 call
    monkeypatch.setenv(cpu_fused.DISABLE_ENV, "1")
    _, off = _prepared("gptq", 4, 256, 64, 64, False)
    assert resolve_path(off, 1) == "cpu_int4" and "cpu_gemv" not in available_paths(off)


def test_without_a_compiler_the_torch_paths_run_and_one_line_says_why(tmp_path):
    """A machine without a C++ compiler: the build fails once, a warning says so, the CPU
    paths are torch's, and the results are still right."""
    script = textwrap.dedent("""
        import logging, torch
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
        from qwen2vl_quant.kernels.dispatch import prepare, quantized_linear, resolve_path
        from qwen2vl_quant.kernels.reference import dequantize
        from qwen2vl_quant.testing.packed import random_packed
        w = random_packed("gptq", 4, 256, 64, 64)
        p = prepare("gptq", 4, 64, w.qweight, w.qzeros, w.scales, w.g_idx, "cpu")
        x = torch.randn(3, 256).bfloat16()
        ref = x.float() @ dequantize("gptq", w.qweight, w.qzeros, w.scales, 64, 4, w.g_idx, dtype=torch.float32)
        err = (quantized_linear(x, p).float() - ref).abs().max() / ref.abs().max()
        print("PATHS", resolve_path(p, 1), resolve_path(p, 300), float(err))
    """)
    env = dict(os.environ, CXX=str(tmp_path / "no-such-compiler"), TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"))
    env.pop(cpu_fused.DISABLE_ENV, None)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "C++ CPU kernels unavailable" in line]
    assert len(warnings) == 1, run.stderr[-3000:]
    paths = next(line for line in run.stdout.splitlines() if line.startswith("PATHS")).split()
    assert paths[1:3] == ["cpu_int4", "torch_dequant"]
    assert float(paths[3]) < 1.5e-2


def test_the_portable_loops_build_and_match_the_reference(tmp_path, monkeypatch):
    """The plain-loop versions, which CPUs without AVX512-BF16 run (-march=native takes the
    AVX-512 code here, so they are otherwise never compiled on this machine): built for
    x86-64-v3 (AVX2), every kernel against the reference."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64-v3 is an x86 target")
    from torch.utils.cpp_extension import load

    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    portable = load(name="qwen2vl_quant_cpu_portable_test", sources=[str(cpu_fused.SOURCE)],
                    extra_cflags=["-O3", "-march=x86-64-v3", "-fopenmp"], extra_ldflags=["-fopenmp"],
                    build_directory=str(tmp_path), verbose=False)
    assert not portable.has_gemm
    monkeypatch.setattr(cpu_fused, "_extension", portable)
    monkeypatch.setattr(cpu_fused, "_tried", True)
    for layout, bits, k, n, group in (("gptq", 4, 256, 256, 64), ("gptq", 4, 512, 200, 128), ("awq", 4, 256, 384, 128),
                                      ("awq", 4, 256, 72, 64), ("gptq", 8, 256, 128, 128), ("awq", 8, 256, 96, 64)):
        w = random_packed(layout, bits, k, n, group)
        fused = cpu_fused.prepare_fused(PackedFormat(layout, bits), w.qweight, w.qzeros, w.scales, group)
        assert fused.gemm_tables is None
        for m in (1, 3, cpu_fused.FUSED_GEMV_MAX_M, 20):
            x = torch.randn(m, k).bfloat16()
            want = reference(layout, bits, w, x)
            assert_close(cpu_fused.matmul(x, fused), want, torch.bfloat16, tol=1.5e-2)
            if m <= cpu_fused.FUSED_GEMV_MAX_M:
                assert_close(cpu_fused.fused_gemv(x, fused), want, torch.bfloat16, tol=1.5e-2)
