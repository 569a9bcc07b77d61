"""Tiled dequant-GEMM for prefill-sized M (17..255 rows by default, configs.GEMM_TABLE).

Contract (gemm_matmul):
    x        bf16 | fp16 [M, K], rows contiguous (any row stride)
    qweight  int32, layout per layout.py; qzeros int32 [G, N/pack];
    scales   fp16 | bf16 | fp32 [G, N]; all contiguous
    groups   contiguous (row k in group k // group_size); group_size a multiple of 16 when G > 1
    returns  [M, N] in x's dtype
    K, N need not be multiples of the blocks (tails are masked); N % pack == 0.

Each program owns one [BLOCK_M, BLOCK_N] output tile and walks all of K, dequantizing
the [BLOCK_K, BLOCK_N] weight tile in registers right after its packed load and feeding
tl.dot with x's dtype and an fp32 accumulator (the structure of gemlite's GEMM and of
the AutoAWQ/vLLM awq_gemm Triton kernel). Row blocks vary fastest over program ids, so
the programs that share a weight tile run together and it is fetched from DRAM once,
the L2 serving the others (traffic.py models exactly this).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import KernelConfig, gemm_config, plan_k
from .launch import check_launch, dot_in_fp32
from .layout import PackedFormat
from .tiles import dequant_tile, load_group


@triton.jit
def gemm_kernel(
    x_ptr,
    qw_ptr,
    qz_ptr,
    s_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_xm,
    tiles_total,
    tiles_per_group,
    BITS: tl.constexpr,
    PACK_ALONG_K: tl.constexpr,
    AWQ_ORDER: tl.constexpr,
    ZERO_OFFSET: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    pid = tl.program_id(0)
    m_blocks = tl.cdiv(M, BLOCK_M)
    pid_m = pid % m_blocks
    pid_n = pid // m_blocks
    n0 = pid_n * BLOCK_N
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    n_groups = (tiles_total + tiles_per_group - 1) // tiles_per_group
    for group in range(n_groups):
        # Scales and zeros once per group (tiles.py contract: a tile never straddles groups).
        scale, zero = load_group(s_ptr, qz_ptr, group, n0, N, BLOCK_N, BITS, AWQ_ORDER, ZERO_OFFSET)
        t_end = tl.minimum(tiles_total, group * tiles_per_group + tiles_per_group)
        for t in range(group * tiles_per_group, t_end):
            k0 = t * BLOCK_K
            w = dequant_tile(qw_ptr, k0, n0, K, N, scale, zero, BLOCK_K, BLOCK_N, BITS, PACK_ALONG_K, AWQ_ORDER)
            offs_k = k0 + tl.arange(0, BLOCK_K)
            x_mask = (offs_m[:, None] < M) & (offs_k[None, :] < K)
            xt = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :], mask=x_mask, other=0.0)
            if DOT_FP32:
                acc = tl.dot(xt.to(tl.float32), w, acc, input_precision="ieee")
            else:
                acc = tl.dot(xt, w.to(xt.dtype), acc)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    out_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(out_ptr.dtype.element_ty), mask=out_mask)


def gemm_grid(m: int, k: int, n: int, group: int, config: KernelConfig):
    """(KSplit plan, grid) of a launch; shared with traffic.py so the model is the launch."""
    plan = plan_k(k, group, config.block_k, 1, None)
    return plan, (triton.cdiv(m, config.block_m) * triton.cdiv(n, config.block_n),)


def gemm_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    fmt: PackedFormat,
    group_size: int,
    *,
    config: KernelConfig | None = None,
    checked: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """y[M, N] = x @ dequant(W) (see module docstring for the contract)."""
    if config is not None and (config.kernel != "gemm" or config.block_m < 16):
        raise ValueError(f"gemm_matmul: {config.name} is not a GEMM config (tl.dot needs BLOCK_M >= 16)")
    m, k, n, group = check_launch("gemm_matmul", x, qweight, qzeros, scales, fmt, group_size, checked=checked)
    config = config or gemm_config(m, n)
    plan, grid = gemm_grid(m, k, n, group, config)
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    gemm_kernel[grid](
        x, qweight, qzeros, scales, out,
        m, n, k, x.stride(0), plan.tiles_total, plan.tiles_per_group,
        **fmt.constexprs(),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=plan.block_k,
        DOT_FP32=dot_in_fp32(x),
        num_warps=config.num_warps, num_stages=config.num_stages, enable_fp_fusion=True,
    )  # fmt: skip
    return out
