"""Split-K dequant-GEMV / skinny GEMM for decode: M = 1..16 rows.

Contract (decode_matmul):
    x        bf16 | fp16 [M, K], M <= 16, rows contiguous (any row stride)
    qweight  int32, layout per layout.py ("gptq"/"gptq_v2" packed along K, "awq" along N)
    qzeros   int32 [G, N/pack];  scales fp16 | bf16 | fp32 [G, N]; all contiguous
    groups   contiguous (row k in group k // group_size); act-order weights are permuted
             rows first (dispatch.prepare); group_size a multiple of 16 when G > 1
    returns  [M, N] in x's dtype
    K, N need not be multiples of the blocks (tails are masked); N % pack == 0.

With one token the GEMV has only N/BLOCK_N column blocks, far fewer than a GPU has
SMs, so K is split too (gemlite's GEMV_SPLITK, Marlin's "stripes"): program (k, n) walks
its own tile range of K for one column block and adds its partial sum into an fp32
buffer with atomics. Every packed weight word, scale and zero is read by exactly one
program (scales once per group and column block); only the small activation slice is
re-read, by the programs of other column blocks, from L2. The atomics make the last bits
of the sum order-dependent.
    block_m == 1: FMA form, an fp32 [BLOCK_K, BLOCK_N] accumulator reduced once at the end
                  (no tensor cores to waste on one row);
    block_m == 16: tl.dot with rows padded to 16, the smallest MMA tile.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import PROGRAMS_PER_SM, KernelConfig, decode_config, plan_k
from .launch import check_launch, dot_in_fp32, sm_count
from .layout import PackedFormat
from .tiles import dequant_tile, load_group


@triton.jit
def decode_kernel(
    x_ptr,
    qw_ptr,
    qz_ptr,
    s_ptr,
    acc_ptr,
    M,
    N,
    K,
    stride_xm,
    tiles_total,
    tiles_per_group,
    tiles_per_split,
    BITS: tl.constexpr,
    PACK_ALONG_K: tl.constexpr,
    AWQ_ORDER: tl.constexpr,
    ZERO_OFFSET: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    # Split index fastest: the programs sharing a column block (and its scales) run together.
    pid_k = tl.program_id(0)
    pid_n = tl.program_id(1)
    n0 = pid_n * BLOCK_N
    t_lo = pid_k * tiles_per_split
    t_hi = tl.minimum(t_lo + tiles_per_split, tiles_total)
    offs_m = tl.arange(0, BLOCK_M)
    if BLOCK_M == 1:
        acc2 = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # Outer loop over the groups this split touches, inner over its tiles in each group:
    # scales and zeros are loaded once per group.
    for group in range(t_lo // tiles_per_group, (t_hi + tiles_per_group - 1) // tiles_per_group):
        scale, zero = load_group(s_ptr, qz_ptr, group, n0, N, BLOCK_N, BITS, AWQ_ORDER, ZERO_OFFSET)
        t_begin = tl.maximum(t_lo, group * tiles_per_group)
        t_end = tl.minimum(t_hi, group * tiles_per_group + tiles_per_group)
        for t in range(t_begin, t_end):
            k0 = t * BLOCK_K
            w = dequant_tile(qw_ptr, k0, n0, K, N, scale, zero, BLOCK_K, BLOCK_N, BITS, PACK_ALONG_K, AWQ_ORDER)
            offs_k = k0 + tl.arange(0, BLOCK_K)
            if BLOCK_M == 1:
                xv = tl.load(x_ptr + offs_k, mask=offs_k < K, other=0.0).to(tl.float32)
                acc2 += xv[:, None] * w
            else:
                x_mask = (offs_m[:, None] < M) & (offs_k[None, :] < K)
                xt = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :], mask=x_mask, other=0.0)
                if DOT_FP32:
                    acc = tl.dot(xt.to(tl.float32), w, acc, input_precision="ieee")
                else:
                    acc = tl.dot(xt, w.to(xt.dtype), acc)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    if BLOCK_M == 1:
        acc = tl.sum(acc2, axis=0)[None, :]
    out_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.atomic_add(acc_ptr + offs_m[:, None] * N + offs_n[None, :], acc, mask=out_mask)


def decode_grid(m: int, k: int, n: int, group: int, config: KernelConfig, sm: int, split: int | None = None):
    """(KSplit plan, grid) of a launch; shared with traffic.py so the model is the launch."""
    n_blocks = triton.cdiv(n, config.block_n)
    plan = plan_k(k, group, config.block_k, n_blocks, sm * PROGRAMS_PER_SM, split)
    return plan, (plan.splits, n_blocks)


def decode_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    fmt: PackedFormat,
    group_size: int,
    *,
    config: KernelConfig | None = None,
    split: int | None = None,
    checked: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """y[M, N] = x @ dequant(W) for M <= 16 (see module docstring for the contract)."""
    if config is not None and (config.kernel != "decode" or config.block_m < x.shape[0]):
        raise ValueError(f"decode_matmul: config {config.name} cannot run M={x.shape[0]}")
    m, k, n, group = check_launch("decode_matmul", x, qweight, qzeros, scales, fmt, group_size, max_m=16,
                                  checked=checked)
    config = config or decode_config(m, n)
    plan, grid = decode_grid(m, k, n, group, config, sm_count(x.device), split)
    acc = torch.zeros((m, n), dtype=torch.float32, device=x.device)
    decode_kernel[grid](
        x, qweight, qzeros, scales, acc,
        m, n, k, x.stride(0), plan.tiles_total, plan.tiles_per_group, plan.tiles_per_split,
        **fmt.constexprs(),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=plan.block_k,
        DOT_FP32=dot_in_fp32(x),
        num_warps=config.num_warps, num_stages=config.num_stages, enable_fp_fusion=True,
    )  # fmt: skip
    return acc.to(x.dtype)
