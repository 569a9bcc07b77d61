"""Dequantize a packed weight to a dense [K, N] matrix, for large M: dequant + torch.matmul.

Contract (triton_dequantize / dequant_matmul):
    qweight  int32, layout per layout.py; qzeros int32 [G, N/pack];
    scales   fp16 | bf16 | fp32 [G, N]; all contiguous, on a CUDA device (or CPU under
             TRITON_INTERPRET=1)
    groups   contiguous (row k in group k // group_size); group_size a multiple of 16 when G > 1
    dtype    bf16 | fp16: the dense weight's dtype (x's dtype in dequant_matmul)
    returns  dense W [K, N] (triton_dequantize) or x @ W [M, N] in x's dtype (dequant_matmul)

From a few hundred rows a GEMM is compute-bound and cuBLAS beats a Triton dequant-GEMM,
so the weight is expanded once per call (K*N*2 bytes written and read back, small next
to the matmul) and handed to torch.matmul; vLLM's AWQ Triton path does the same from 256
tokens (awq_triton.py). The weight is not cached: that would cost the full BF16 memory
the quantization saved. Programs are laid out as the decode kernel's (split over K tile
ranges aligned to groups, column blocks), so each packed word is read once and each
group's scales once per column block.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import DEQUANT_CONFIG, PROGRAMS_PER_SM, KernelConfig, plan_k
from .launch import ACTIVATION_DTYPES, check_launch, sm_count
from .layout import PackedFormat, packed_shape
from .tiles import dequant_tile, load_group


@triton.jit
def dequant_kernel(
    qw_ptr,
    qz_ptr,
    s_ptr,
    w_ptr,
    N,
    K,
    tiles_total,
    tiles_per_group,
    tiles_per_split,
    BITS: tl.constexpr,
    PACK_ALONG_K: tl.constexpr,
    AWQ_ORDER: tl.constexpr,
    ZERO_OFFSET: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_k = tl.program_id(0)
    pid_n = tl.program_id(1)
    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    t_lo = pid_k * tiles_per_split
    t_hi = tl.minimum(t_lo + tiles_per_split, tiles_total)
    for group in range(t_lo // tiles_per_group, (t_hi + tiles_per_group - 1) // tiles_per_group):
        scale, zero = load_group(s_ptr, qz_ptr, group, n0, N, BLOCK_N, BITS, AWQ_ORDER, ZERO_OFFSET)
        t_begin = tl.maximum(t_lo, group * tiles_per_group)
        t_end = tl.minimum(t_hi, group * tiles_per_group + tiles_per_group)
        for t in range(t_begin, t_end):
            k0 = t * BLOCK_K
            w = dequant_tile(qw_ptr, k0, n0, K, N, scale, zero, BLOCK_K, BLOCK_N, BITS, PACK_ALONG_K, AWQ_ORDER)
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask = (offs_k[:, None] < K) & (offs_n[None, :] < N)
            # fp32 -> bf16/fp16 on the store: the interpreter gets this cast right (DESIGN.md 4).
            tl.store(w_ptr + offs_k[:, None] * N + offs_n[None, :], w.to(w_ptr.dtype.element_ty), mask=mask)


def dequant_grid(k: int, n: int, group: int, config: KernelConfig, sm: int, split: int | None = None):
    """(KSplit plan, grid) of a launch; shared with traffic.py so the model is the launch."""
    n_blocks = triton.cdiv(n, config.block_n)
    plan = plan_k(k, group, config.block_k, n_blocks, sm * PROGRAMS_PER_SM, split)
    return plan, (plan.splits, n_blocks)


def triton_dequantize(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    fmt: PackedFormat,
    group_size: int,
    dtype: torch.dtype,
    *,
    config: KernelConfig = DEQUANT_CONFIG,
    split: int | None = None,
    checked: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """Dense W [K, N] in dtype (see module docstring for the contract; ``checked`` as in
    launch.check_launch)."""
    if dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"triton_dequantize: dtype must be bfloat16 or float16, got {dtype}")
    if config.kernel != "dequant":
        raise ValueError(f"triton_dequantize: {config.name} is not a dequant config")
    # The checks of check_launch, with a stand-in x of one row.
    probe = torch.empty((1, packed_shape(fmt, qweight)[0]), dtype=dtype, device=qweight.device)
    _, k, n, group = check_launch("triton_dequantize", probe, qweight, qzeros, scales, fmt, group_size,
                                  checked=checked)
    plan, grid = dequant_grid(k, n, group, config, sm_count(qweight.device), split)
    w = torch.empty((k, n), dtype=dtype, device=qweight.device)
    dequant_kernel[grid](
        qweight, qzeros, scales, w,
        n, k, plan.tiles_total, plan.tiles_per_group, plan.tiles_per_split,
        **fmt.constexprs(),
        BLOCK_N=config.block_n, BLOCK_K=plan.block_k,
        num_warps=config.num_warps, num_stages=config.num_stages, enable_fp_fusion=True,
    )  # fmt: skip
    return w


def dequant_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    fmt: PackedFormat,
    group_size: int,
    *,
    config: KernelConfig = DEQUANT_CONFIG,
    checked: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """x [M, K] @ triton_dequantize(...) [K, N] -> [M, N] in x's dtype."""
    _, k, n, group = check_launch("dequant_matmul", x, qweight, qzeros, scales, fmt, group_size, checked=checked)
    w = triton_dequantize(qweight, qzeros, scales, fmt, group_size, x.dtype, config=config, checked=(k, n, group))
    return torch.matmul(x, w)
