"""Random packed weights for the kernel tests and benchmark (the inverse of reference.py).

qwen2vl_quant.formats owns the real packing used by export; this small copy keeps
kernels/ free of imports from the rest of the package, and the tests check it
round-trips through reference.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layout import PackedFormat, pack_rows, resolve_group_size
from .reference import AWQ_PACK_ORDER


def _pack(codes: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """int codes [R, C] -> int32 words packed along dim (value i of a word at bits i*bits)."""
    if dim == 0:
        return pack_rows(codes, bits).contiguous()
    return pack_rows(codes.T, bits).T.contiguous()


def _awq_order(codes: torch.Tensor, bits: int) -> torch.Tensor:
    if bits != 4:
        return codes
    rows, cols = codes.shape
    order = torch.tensor(AWQ_PACK_ORDER, device=codes.device)
    return codes.reshape(rows, cols // 8, 8)[:, :, order].reshape(rows, cols)


@dataclass(frozen=True)
class RandomPacked:
    qweight: torch.Tensor
    qzeros: torch.Tensor
    scales: torch.Tensor
    g_idx: torch.Tensor | None
    group_size: int


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
        qweight = _pack(codes, bits, 0)
        stored = zeros - fmt.zero_offset
        qzeros = _pack(stored, bits, 1)
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
        qweight = _pack(_awq_order(codes, bits), bits, 1)
        qzeros = _pack(_awq_order(zeros, bits), bits, 1)
        g_idx = None
    return RandomPacked(
        qweight.to(device),
        qzeros.to(device),
        scales.to(scale_dtype).to(device),
        None if g_idx is None else g_idx.to(device),
        group_size,
    )
