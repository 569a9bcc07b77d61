"""CPU kernels that read the checkpoint's packed tensors as they are: one copy of every weight.

torch's int4 / int8 CPU ops (cpu.py) need the weight converted to their own layout, a second
copy next to the checkpoint tensors, and lose to a BF16 linear from M = 16 rows on (their cost
grows with M; benchmarks/results/kernels.md). Dequantizing with torch ops (torch_dequant.py)
makes several passes over a dense weight per call. No torch path reaches the issue 17 targets
on this CPU (measured in benchmarks/results/kernels.md and the closing note of issue 17), so
this module builds a small C++ kernel (cpu_fused.cpp) at first use through torch's extension
loader, for the CPU it runs on (-march=native), cached by torch under
$TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions):

    fused_gemv     M <= FUSED_GEMV_MAX_M rows: decode each packed word once, use it for every
                   row, in float32 (one row of 4-bit: BF16 dot products); scales and zeros
                   applied once per group.
    matmul         more rows (prompts): on CPUs with AVX512-BF16, a GEMM whose weight panel is
                   the codes themselves as bf16 (4-bit: 128 + c, a bit operation; 8-bit: c),
                   decoded once per 512 x 128 tile into L2 and read by every row with BF16
                   dot products, scales and zeros applied once per group (from
                   DEQUANTIZED_PANEL_ROWS rows: the panel turned into bf16 weights once,
                   no scaling per group); on CPUs whose float32 FMAs do clearly more
                   multiply-adds per second than their BF16 dot products (float32_gemm(),
                   measured once per process: the Xeon here, twice as many), the same GEMM
                   with the panel dequantized to float32 and FMAs (gemm_f32); elsewhere,
                   every thread dequantizes its own blocks of columns and multiplies them
                   with a single-threaded matmul. No dense copy of the weight in any.
    dense_matmul   prompts from dense_switch() rows, on CPUs whose bf16 matmul is clearly
                   faster than our GEMM (neither machine measured here): the weight
                   dequantized to bf16 in column blocks of at most DENSE_BLOCK_BYTES, each
                   multiplied by torch's matmul
                   (oneDNN; AMX tiles where the CPU has them). The block is a transient
                   working set, freed after the call.

Where the build fails (no compiler, headers missing, QWEN2VL_QUANT_NO_CPP=1), ``extension()``
returns None once, with one log line, and dispatch.py keeps torch's paths.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .cpu_info import cpu_flags, cpu_model
from .layout import PackedFormat, check_packed
from .reference import AWQ_PACK_ORDER, awq_unpack_cols, unpack_cols

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("cpu_fused.cpp")
FUSED_GEMV_MAX_M = 8  # what the C++ gemv is instantiated for
GEMM_TILE_N = 128  # the C++ gemm's tile of columns: it needs N to be a multiple
DISABLE_ENV = "QWEN2VL_QUANT_NO_CPP"

_extension = None
_tried = False
failure: str | None = None  # why the extension is not there, once tried


def _cpu_signature() -> str:
    """The CPU's model and flags: -march=native code is only valid on the CPU it was built for."""
    return f"{platform.processor()} {cpu_model()} {' '.join(sorted(cpu_flags()))}"


def extension():
    """The built module (gemv, gemm, dequant_mm, ...), or None if it cannot be built here or
    QWEN2VL_QUANT_NO_CPP=1 switches it off (checked on every call: tests switch it)."""
    global _extension, _tried, failure
    if os.environ.get(DISABLE_ENV) == "1":
        if failure != f"{DISABLE_ENV}=1":
            log.info("C++ CPU kernels switched off (%s=1); using torch's CPU ops", DISABLE_ENV)
        failure = f"{DISABLE_ENV}=1"
        return None
    if not _tried:
        _tried = True
        _extension, failure = _build()
    elif _extension is not None:
        failure = None
    return _extension


def _build():
    digest = hashlib.sha256(SOURCE.read_bytes() + _cpu_signature().encode() + torch.__version__.encode())
    name = f"qwen2vl_quant_cpu_{digest.hexdigest()[:12]}"
    path = os.environ.get("PATH", "")
    try:
        from torch.utils.cpp_extension import load

        # torch builds with ninja, found on PATH; the ninja wheel (a dependency) sits next to
        # this interpreter, which is not on PATH when a venv's python is run directly.
        if shutil.which("ninja") is None:
            os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), path])
        from torch.utils.cpp_extension import _get_build_directory

        built = os.path.exists(os.path.join(_get_build_directory(name, verbose=False), f"{name}.so"))
        log.log(logging.DEBUG if built else logging.INFO,
                "%s the C++ CPU kernels%s", "loading" if built else "building",
                "" if built else " (once per machine and torch version: about a minute)")
        return load(name=name, sources=[str(SOURCE)], extra_cflags=["-O3", "-march=native", "-fopenmp"],
                    extra_ldflags=["-fopenmp"], verbose=False), None
    except Exception as exc:  # no compiler, no headers, a failed build: torch's paths remain
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        why = f"{type(exc).__name__}: {first[:200]}"
        log.warning("C++ CPU kernels unavailable (%s); using torch's CPU ops", why)
        return None, why
    finally:
        os.environ["PATH"] = path


def reset() -> None:
    """Forget the build attempt, so that the next use tries again."""
    global _extension, _tried, failure
    _extension, _tried, failure = None, False, None


@dataclass(frozen=True, eq=False)
class FusedWeight:
    """What the C++ kernels read besides the checkpoint's qweight (which is not copied)."""

    qweight: torch.Tensor  # the checkpoint tensor itself (rows in act-order perm order if permuted)
    scales: torch.Tensor  # float32 [G, N]
    zeros: torch.Tensor  # float32 [G, N], true zeros
    zero_scales: torch.Tensor  # float32 [G, N] = zeros * scales
    order: torch.Tensor  # int32 [pack]: AWQ column of each value of a word (natural for GPTQ)
    bits: int
    along_k: bool
    group: int
    # Tables of the one-row kernels (cpu_fused.cpp), None where they do not apply: 4-bit AWQ
    # with N % 128 == 0, scales and (zeros + 128) x scales in the words' value order
    # (gemv_awq4_row); 4-bit GPTQ, scales and (zeros + 128) x scales (gemv_gptq4_row).
    row_tables: tuple[torch.Tensor, torch.Tensor] | None = None
    # Tables of the prompt GEMM (cpu_fused.cpp gemm), None where it does not apply (no
    # AVX512-BF16, N % 128, the group): scales and (zeros + base) x scales in its panel's
    # order, base 128 for 4-bit (the row tables) and 0 for 8-bit (scales, zero_scales).
    gemm_tables: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def out_features(self) -> int:
        return self.scales.shape[1]

    @property
    def in_features(self) -> int:
        return self.qweight.shape[0] * (32 // self.bits) if self.along_k else self.qweight.shape[0]


def prepare_fused(fmt: PackedFormat, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                  group_size: int) -> FusedWeight:
    """Small float tables next to the packed weight (about 12 bytes per group and column)."""
    k, n, group = check_packed(fmt, qweight, qzeros, scales, group_size)
    zeros = unpack_cols(qzeros, fmt.bits) if fmt.pack_along_k else awq_unpack_cols(qzeros, fmt.bits)
    zeros = (zeros + fmt.zero_offset).to(torch.float32)
    s = scales.to(torch.float32).contiguous()
    order = AWQ_PACK_ORDER if fmt.awq_order else tuple(range(fmt.pack))
    zero_scales = (zeros * s).contiguous()
    row_tables = None
    if fmt.awq_order and n % 128 == 0:
        # position b*128 + j*16 + lane holds column 8 * (16 b + lane) + order[j]
        b, j, lane = torch.meshgrid(torch.arange(n // 128), torch.arange(8), torch.arange(16), indexing="ij")
        columns = (8 * (16 * b + lane) + torch.tensor(order)[j]).reshape(-1)
        row_tables = (s[:, columns].contiguous(), ((zeros + 128) * s)[:, columns].contiguous())
    elif fmt.pack_along_k and fmt.bits == 4:
        row_tables = (s, ((zeros + 128) * s).contiguous())
    gemm_tables = None
    ext = extension()
    if ext is not None and ext.has_gemm and n % GEMM_TILE_N == 0 and ext.gemm_segment(group) > 0:
        gemm_tables = row_tables if fmt.bits == 4 else (s, zero_scales)
    return FusedWeight(qweight.contiguous(), s, zeros.contiguous(), zero_scales,
                       torch.tensor(order, dtype=torch.int32), fmt.bits, fmt.pack_along_k, group, row_tables,
                       gemm_tables)


def fused_gemv(x: torch.Tensor, w: FusedWeight) -> torch.Tensor:
    """x [M, K], M <= FUSED_GEMV_MAX_M -> [M, N] in x's dtype."""
    if x.shape[0] == 1 and w.row_tables is not None:
        # BF16 dot products: x is rounded to bf16 (an fp16 model's activations lose 3 bits,
        # as on torch's int4 op; a bf16 model's are bf16 already).
        xb = x.to(torch.bfloat16).contiguous()
        if w.along_k:
            y = extension().gemv_gptq4_row(xb, w.qweight, *w.row_tables, w.group)
        else:
            y = extension().gemv_awq4_row(xb, w.qweight, *w.row_tables, w.order, w.group)
        return y.to(x.dtype)
    y = extension().gemv(x.float().contiguous(), w.qweight, w.scales, w.zero_scales, w.order, w.bits, w.along_k,
                         w.group)
    return y.to(x.dtype)


def dequant_blocks(w: FusedWeight) -> tuple[int, int]:
    """Columns and rows of the per-thread bf16 block of the dequantize + matmul fallback: a
    few hundred KB to 2 MB, multiples of 64 columns and of the group's rows (per channel:
    all rows). Best of 128-1024 columns x 1536-8960 rows on the 2B shapes, measured here."""
    k_rows = w.in_features if w.group > 4096 else max(w.group, 4096 // w.group * w.group)
    return (512 if w.in_features <= 2048 else 256), min(k_rows, w.in_features)


# From this many rows the GEMM turns its panel of codes into bf16 weights once per chunk and
# runs every row down the chunk without the per-group scaling (cpu_fused.cpp, its GEMM
# comment). On the 2B shapes, all formats (A/B of alternating calls): even at 64 rows; at 128
# the dequantized panel ahead or within 1 % (ahead by 8-11 % on k/v); at 256, 1024 and 2048
# ahead on every shape and format, by 3-29 %.
DEQUANTIZED_PANEL_ROWS = 128


# gemm_f32 (float32 FMAs on the dequantized weights) replaces the BF16-dot GEMM where one
# thread's float32 FMAs do at least this many times the multiply-adds per second of its BF16
# dot products (dot_rates). The Xeon here (model 207): 89 against 45 G/s, 2.0; and gemm_f32
# at 1.08-1.75x a BF16 linear from 64 rows on the 2B and 7B shapes (kernel benchmark, all 96
# entries), where the BF16-dot GEMM was at 0.76-1.16x. Where the dot product does twice an
# FMA's work per instruction at the same rate (what AVX512-BF16 promises), the ratio is 0.5
# and the BF16-dot GEMM stays.
FLOAT32_CLEAR_WIN = 1.25
_float32_gemm: dict[str, bool | float] = {}  # chosen, and the two rates it was chosen from


def float32_gemm() -> bool:
    """Whether prompts take gemm_f32 on this CPU: dot_rates() measured once per process (about
    3 ms, one thread, the two instruction streams alternated, best of 5 each), at the first
    GEMM call: in a model, when its first weight's GEMV switch is measured at load."""
    if "chosen" not in _float32_gemm:
        bf16, f32 = extension().dot_rates(20000, 5)
        _float32_gemm.update(chosen=f32 >= FLOAT32_CLEAR_WIN * bf16, bf16=bf16, f32=f32)
        log.debug("%s", gemm_kind())
    return _float32_gemm["chosen"]


def gemm_kind() -> str:
    """Which GEMM prompts take here and why, for logs and benchmark reports."""
    if extension() is None or not extension().has_gemm:
        return "per-thread dequantized blocks x torch's matmul (no AVX512-BF16 GEMM on this CPU)"
    chosen = float32_gemm()
    rates = _float32_gemm  # filled by the measurement (a test may have set only the choice)
    measured = (f" (one thread: {rates['f32'] / 1e9:.0f} G multiply-adds/s in float32 FMAs,"
                f" {rates['bf16'] / 1e9:.0f} G in BF16 dot products)") if "f32" in rates else ""
    return ("float32 FMAs (gemm_f32)" if chosen else "BF16 dot products (gemm)") + measured


def matmul(x: torch.Tensor, w: FusedWeight) -> torch.Tensor:
    """x [M, K] -> [M, N] in x's dtype, for prompts (x rounded to bf16, as torch's ops do)."""
    ext = extension()
    xb = x.to(torch.bfloat16).contiguous()
    if w.gemm_tables is not None and float32_gemm():
        y = ext.gemm_f32(xb, w.qweight, *w.gemm_tables, w.order, w.bits, w.along_k, w.group)
    elif w.gemm_tables is not None:
        dequantized_panel = xb.shape[0] >= DEQUANTIZED_PANEL_ROWS
        y = ext.gemm(xb, w.qweight, *w.gemm_tables, w.order, w.bits, w.along_k, w.group, dequantized_panel)
    else:
        y = ext.dequant_mm(xb, w.qweight, w.scales, w.zeros, w.order, w.bits, w.along_k, w.group, *dequant_blocks(w))
    return y.to(x.dtype)


DENSE_BLOCK_BYTES = 32 << 20  # the transient bf16 block of dense_matmul: 2B gate/up (27.5 MB) whole
DENSE_PROBE_M = (64, 256)  # rows at which dense_switch() compares the two, fewest first
# dense_matmul's time over matmul's that counts as clearly ahead. The probe runs once, at the
# first prompt, when the machine may be busy (when it ran at the first load, with 0.9, one
# fresh process of an end-to-end benchmark run, of 16, switched on noise). Where torch's bf16
# matmul has AMX tiles it should be several times faster than our GEMM, far past this.
DENSE_CLEAR_WIN = 0.7


def dense_matmul(x: torch.Tensor, w: FusedWeight, block_bytes: int = DENSE_BLOCK_BYTES) -> torch.Tensor:
    """x [M, K] -> [M, N] in x's dtype: bf16 blocks of W (the reference's numbers) times x."""
    ext = extension()
    xb = x.to(torch.bfloat16).contiguous()
    k, n = w.in_features, w.out_features
    columns = min(n, max(GEMM_TILE_N, block_bytes // (2 * k) // GEMM_TILE_N * GEMM_TILE_N))
    block = torch.empty(k, columns, dtype=torch.bfloat16)
    y = torch.empty(xb.shape[0], n, dtype=torch.bfloat16) if columns < n else None
    for n0 in range(0, n, columns):
        n1 = min(n, n0 + columns)
        ext.dequant(w.qweight, w.scales, w.zeros, w.order, w.bits, w.along_k, w.group, n0, n1, block)
        product = xb @ block[:, : n1 - n0]
        if y is None:  # one block: its product is the output, no copy
            return product.to(x.dtype)
        y[:, n0:n1] = product
    return y.to(x.dtype)


_dense_switch: dict[int, int | None] = {}


def dense_switch() -> int | None:
    """The fewest rows from which dense_matmul replaces matmul on this machine (None: never),
    measured once per process and thread count (about 50 ms), when the first prompt that
    could switch arrives (dispatch.py: at least DENSE_PROBE_M[0] rows), so decoding alone
    never pays for it.

    Measured on 2 threads, A/B of alternating calls, 2B and 7B shapes. Zen 4 (AVX512-BF16,
    no AMX): matmul ahead at 64 rows (the probe's ratio 1.2-1.3), at 256 (0.94-1.01x a BF16
    linear against 0.77-1.03x) and even at 2048 (0.89-1.01x against 0.86-1.03x). Xeon
    (Emerald Rapids, AMX hidden by the VM): dense_matmul behind at 16 and 64 rows
    (0.55-0.95x). dense_matmul also holds a transient bf16 block of up to 32 MB. So where the
    two are close, never. A CPU whose bf16 matmul is far faster than our GEMM (AMX tiles;
    neither machine exposed them) shows dense_matmul clearly ahead (DENSE_CLEAR_WIN) at 64
    or 256 rows, and switches there.
    """
    threads = torch.get_num_threads()
    if threads not in _dense_switch:
        _dense_switch[threads] = _measure_dense_switch()
        log.debug("cpu_dequant from %d rows (%d threads)", _dense_switch[threads], threads)
    return _dense_switch[threads]


def _measure_dense_switch(k: int = 1536, n: int = 1536, group: int = 128) -> int | None:
    gen = torch.Generator().manual_seed(0)
    words = lambda *shape: torch.randint(-(2**31), 2**31 - 1, shape, generator=gen, dtype=torch.int32)  # noqa: E731
    scales = (torch.rand(k // group, n, generator=gen) + 0.5).to(torch.float16) / 256
    w = prepare_fused(PackedFormat("gptq", 4), words(k // 8, n), words(k // group, n // 8), scales, group)
    with torch.no_grad():
        for m in DENSE_PROBE_M:
            x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
            dense = _best_of(lambda: dense_matmul(x, w), repeats=5)
            if dense < DENSE_CLEAR_WIN * _best_of(lambda: matmul(x, w), repeats=5):
                return m
    return None


_switch: dict[tuple, int] = {}


def gemv_switch(w: FusedWeight) -> int:
    """The most rows for which fused_gemv beats matmul on this machine and shape
    (0: never), measured once per shape and thread count and cached for the process."""
    key = (w.in_features, w.out_features, w.bits, w.along_k, w.group, torch.get_num_threads())
    if key not in _switch:
        _switch[key] = _measure_switch(w)
        log.debug("cpu_gemv up to %d rows for %s", _switch[key], key)
    return _switch[key]


def _best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up: first-touch of the output, caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _measure_switch(w: FusedWeight) -> int:
    # gemv's cost grows with the rows (every row multiplies every weight in float32);
    # matmul's barely does below a few dozen rows. So the switch is the last M at which gemv
    # is still ahead. A few milliseconds per shape.
    switch = 0
    with torch.no_grad():
        for m in (1, 2, 4, FUSED_GEMV_MAX_M):
            x = torch.randn(m, w.in_features, dtype=torch.bfloat16)
            if _best_of(lambda: fused_gemv(x, w)) > _best_of(lambda: matmul(x, w)):
                break
            switch = m
    return switch
