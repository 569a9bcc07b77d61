"""Packing integer codes into int32 words: the exact inverse of kernels/reference.py."""

from __future__ import annotations

import torch

from ..kernels.reference import AWQ_PACK_ORDER, values_per_word


def _to_int32(words: torch.Tensor) -> torch.Tensor:
    # Words are built in int64 and wrapped into the int32 range explicitly: a code in the
    # top bits makes the word negative, which is how every loader reads it.
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def pack_rows(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, C] in [0, 2**bits) -> int32 [R / pack, C], packed along dim 0."""
    pack = values_per_word(bits)
    rows, cols = codes.shape
    if rows % pack:
        raise ValueError(f"{rows} rows cannot be packed {pack} per int32")
    grouped = codes.to(torch.int64).reshape(rows // pack, pack, cols)
    shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=codes.device).view(1, pack, 1)
    return _to_int32((grouped << shifts).sum(dim=1))


def pack_cols(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, C] -> int32 [R, C / pack], packed along dim 1."""
    return pack_rows(codes.T.contiguous(), bits).T.contiguous()


def awq_pack_cols(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, C] -> int32 [R, C / pack] in AutoAWQ's interleaved column order."""
    if bits == 4:
        rows, cols = codes.shape
        order = torch.tensor(AWQ_PACK_ORDER, device=codes.device)
        codes = codes.reshape(rows, cols // 8, 8)[:, :, order].reshape(rows, cols)
    return pack_cols(codes, bits)
