"""Dequantize with a few vectorised torch ops, for the CPU's large-M path (dequant + matmul).

Contract (dequantize_torch):
    qweight  int32, layout per layout.py; qzeros int32 [G, N/pack]; scales [G, N]
    groups   contiguous (row k in group k // group): act-order weights permuted first
    dtype    bf16 | fp16
    returns  dense W [K, N] in dtype, within one rounding of reference.py's weight

reference.py is written to be read, not to be fast: it unpacks through int64 shifts and
gathers scales and zeros per row through g_idx, ~200 ms for a 1536 x 8960 weight on
2 cores. Here the int32 words are viewed as bytes (little-endian, as on every platform
torch runs on) so a 4-bit code is one `& 15` or `>> 4` of a uint8 written straight into
the output, and the groups are an in-place broadcast over a [G, g, N] view instead of a
gather. The arithmetic runs in
dtype: q - z is exact there (|q - z| <= 256), the scale and the product are rounded once
each, so a weight may differ from the reference's by one unit in the last place.
"""

from __future__ import annotations

import sys

import torch

from .layout import PackedFormat, check_packed
from .reference import AWQ_PACK_ORDER, awq_unpack_cols, unpack_cols

if sys.byteorder != "little":  # the byte view below assumes little-endian words
    raise ImportError("torch_dequant assumes a little-endian platform")


def dequantize_torch(
    fmt: PackedFormat,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Dense W [K, N] in dtype (see module docstring)."""
    k, n, group = check_packed(fmt, qweight, qzeros, scales, group_size)
    pack = fmt.pack
    w = torch.empty((k, n), dtype=dtype, device=qweight.device)
    # Value j of a word sits in byte j // (pack // 4): the low nibble for even j, the high
    # for odd j at 4 bits; the whole byte at 8 bits.
    words = qweight.view(torch.uint8).view(*qweight.shape, 4)
    # Write each value position straight into its strided slice of w: the only large
    # allocation is w itself (fresh multi-MB temporaries cost page faults on every call).
    slots = w.view(k // pack, pack, n) if fmt.pack_along_k else w.view(k, n // pack, pack)
    for j in range(pack):
        byte = words[..., j // (pack // 4)]
        value = byte if fmt.bits == 8 else (byte & 15 if j % 2 == 0 else byte >> 4)
        if fmt.pack_along_k:
            slots[:, j, :].copy_(value)
        else:
            slots[:, :, AWQ_PACK_ORDER[j] if fmt.awq_order else j].copy_(value)
    zeros = unpack_cols(qzeros, fmt.bits) if fmt.pack_along_k else awq_unpack_cols(qzeros, fmt.bits)
    zeros = (zeros + fmt.zero_offset).to(dtype)  # v1: stored + 1, not wrapped (reference.py)
    grouped = w.view(k // group, group, n)
    grouped.sub_(zeros[:, None, :]).mul_(scales.to(dtype)[:, None, :])
    return w
