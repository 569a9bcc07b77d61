"""Random packed weights for the kernel tests and benchmarks, packed by kernels/reference.py
(the one definition of every layout)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..kernels.layout import PackedFormat, resolve_group_size
from ..kernels.reference import awq_pack_cols, pack_cols, pack_rows


@dataclass(frozen=True)
class RandomPacked:
    qweight: torch.Tensor
    qzeros: torch.Tensor
    scales: torch.Tensor
    g_idx: torch.Tensor | None
    group_size: int  # as asked for (-1: one group)
    group: int  # input rows per group, resolved


def random_packed(
    layout: str,
    bits: int,
    k: int,
    n: int,
    group_size: int,
    *,
    act_order: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    scale_dtype: torch.dtype = torch.float16,
) -> RandomPacked:
    """Uniform random codes and zeros, scales ~ 1/(2**bits * sqrt(K)) so outputs stay O(1)."""
    fmt = PackedFormat(layout, bits)
    group = resolve_group_size(group_size, k)
    groups = k // group
    gen = torch.Generator().manual_seed(seed)
    top = 1 << bits
    codes = torch.randint(0, top, (k, n), generator=gen, dtype=torch.int32)
    # True zeros 0..2**bits-1, or 1..2**bits for GPTQ v1, which cannot store a zero of 0
    # (reference.py).
    zeros = torch.randint(0, top, (groups, n), generator=gen, dtype=torch.int32) + fmt.zero_offset
    scales = (torch.rand(groups, n, generator=gen) + 0.5) * (2.0 / (top * k**0.5))
    if fmt.pack_along_k:
        qweight = pack_rows(codes, bits)
        qzeros = pack_cols(zeros - fmt.zero_offset, bits)
        if act_order:
            # GPTQ's desc_act: groups are formed over a permutation of the rows.
            perm = torch.randperm(k, generator=gen)
            g_idx = torch.empty(k, dtype=torch.int32)
            g_idx[perm] = (torch.arange(k) // group).to(torch.int32)
        else:
            g_idx = (torch.arange(k) // group).to(torch.int32)
    else:
        if act_order:
            raise ValueError("AWQ has no act-order")
        qweight = awq_pack_cols(codes, bits)
        qzeros = awq_pack_cols(zeros, bits)
        g_idx = None
    return RandomPacked(
        qweight.to(device),
        qzeros.to(device),
        scales.to(scale_dtype).to(device),
        None if g_idx is None else g_idx.to(device),
        group_size,
        group,
    )
