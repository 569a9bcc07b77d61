"""CPU path: torch's own int4 / int8 weight-only matmul kernels, fed from our layouts.

torch 2.15 (checked in this build, aten schemas):
    _convert_weight_to_int4pack_for_cpu(Tensor self, int innerKTiles) -> Tensor
        int32 codes [N, K] in 0..15 -> uint8 [N, K/2] (a blocked layout; innerKTiles is unused
        on CPU); N % 16 == 0.
    _weight_int4pack_mm_for_cpu(Tensor self, Tensor mat2, int qGroupSize, Tensor qScaleAndZeros)
        x [M, K] @ W^T with W[n, k] = (q - 8) * scale + zero, a float zero per group;
        qGroupSize in {32, 64, 128, 256}; qScaleAndZeros [K/g, N, 2] in x's dtype (bf16,
        fp16 or fp32; only bf16 is vectorised: fp16 is ~100x slower at M=1 on 2 cores).
    _weight_int8pack_mm(Tensor self, Tensor mat2, Tensor scales)
        x [M, K] @ (int8 [N, K] * scales[N])^T: per output channel only; scales in x's dtype
        (again fast only for bf16).

Our layouts (reference.py) dequantize as W[k, n] = (q - z) * s. Rewriting for each op:
    int4:  (q - z) * s = (q - 8) * s + (8 - z) * s      -> zero_float = (8 - z) * s
    int8:  (q - z) * s = (q - 128) * s + (128 - z) * s  -> int8 weight q - 128 and, when the
           zeros are not all 128 (asymmetric), the exact rank-1 term sum_k(x) * (128 - z) * s.
The conversion runs once, at prepare time. Two rewrites widen what the ops accept:
    * act-order GPTQ (g_idx a permutation of contiguous groups, which is what GPTQ's
      desc_act produces): the weight's input rows are permuted once so the groups become
      contiguous, and each call permutes x's columns the same way (as Marlin and
      ExLlamaV2 do on GPU);
    * a group larger than 256 (or one group for all of K) is cut into sub-groups of 256,
      128, 64 or 32 rows that repeat its scale and zero.
The int8 op has no groups: a grouped 8-bit weight is stored as one int8 matrix per group
of input rows, [G, N, g], and a call sums G products in float32, each with its group's
per-channel scales (y = sum_g (x_g @ (q_g - 128)^T) * s_g), plus the zero term per group.
That reads every weight byte once, where dequantize + matmul (torch_dequant) re-expands the
whole weight on every call; it pays G op launches, so dispatch.py sends it only small M.

Rounding: both ops run in bf16, their only fast dtype: the tables are built in bf16 and
fp16 activations are converted to bf16 and the result back. The fp16 checkpoint scales
lose 3 mantissa bits (an error of at most s/32 per weight, about the size of rounding the
dequantized weight to bf16, as the reference path does for bf16 activations), far below
the 4-bit quantization error itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layout import PackedFormat, check_packed
from .reference import awq_unpack_cols, unpack_cols, unpack_rows

INT4_GROUPS = (256, 128, 64, 32)  # what _weight_int4pack_mm_for_cpu accepts


COMPUTE_DTYPE = torch.bfloat16  # the one dtype torch vectorises these ops for


@dataclass(frozen=True, eq=False)
class CpuInt4Weight:
    packed: torch.Tensor  # uint8 [N, K/2], torch's CPU int4 layout
    scales_and_zeros: torch.Tensor  # bf16 [K/group, N, 2]: scale, (8 - z) * scale
    group: int  # in INT4_GROUPS


@dataclass(frozen=True, eq=False)
class CpuInt8Weight:
    weight: torch.Tensor  # int8 [G, N, g] = q - 128, one matrix per group of g input rows
    scales: torch.Tensor  # bf16 [G, N]
    zero_term: torch.Tensor | None  # fp32 [G, N] = (128 - z) * s; None when every zero is 128

    @property
    def groups(self) -> int:
        return self.weight.shape[0]


def act_order_perm(g_idx: torch.Tensor | None, k: int, group: int) -> tuple[torch.Tensor | None, bool]:
    """(perm, ok): rows in perm order have contiguous groups (perm None: already contiguous).

    ok is False when g_idx is no permutation of contiguous groups of `group` rows; then
    only the reference path can use the weight.
    """
    contiguous = torch.arange(k, device="cpu", dtype=torch.int64) // group
    if g_idx is None:
        return None, True
    g = g_idx.to("cpu", torch.int64)
    if g.shape != (k,):
        return None, False
    if torch.equal(g, contiguous):
        return None, True
    perm = torch.argsort(g, stable=True)
    if not torch.equal(g[perm], contiguous):
        return None, False
    return perm, True


def unpack_codes(fmt: PackedFormat, qweight: torch.Tensor, qzeros: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes int32 [K, N], true zeros int32 [G, N]) per reference.py."""
    if fmt.pack_along_k:
        codes, zeros = unpack_rows(qweight, fmt.bits), unpack_cols(qzeros, fmt.bits)
    else:
        codes, zeros = awq_unpack_cols(qweight, fmt.bits), awq_unpack_cols(qzeros, fmt.bits)
    return codes, zeros + fmt.zero_offset  # v1: stored + 1, not wrapped (reference.py)


def int4_group(group: int) -> int | None:
    """The sub-group size the int4 op can run a `group`-row group as, or None."""
    return next((g for g in INT4_GROUPS if group % g == 0), None)


def int4_unsupported(fmt: PackedFormat, k: int, n: int, group: int) -> str | None:
    """Why the int4 op cannot take this weight, or None."""
    if fmt.bits != 4:
        return "int4 op needs 4-bit weights"
    if n % 16:
        return f"int4 op needs N % 16 == 0, N={n}"
    if int4_group(group) is None:
        return f"int4 op needs groups of a multiple of 32 rows, group {group}"
    return None


def int8_unsupported(fmt: PackedFormat, k: int, n: int, group: int) -> str | None:
    """Why the int8 op cannot take this weight, or None."""
    if fmt.bits != 8:
        return "int8 op needs 8-bit weights"
    return None


def prepare_int4(
    fmt: PackedFormat,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    perm: torch.Tensor | None,
) -> CpuInt4Weight:
    """Convert once to torch's int4 CPU format (rows in perm order when perm is given)."""
    k, n, group = check_packed(fmt, qweight, qzeros, scales, group_size)
    reason = int4_unsupported(fmt, k, n, group)
    if reason:
        raise ValueError(reason)
    codes, zeros = unpack_codes(fmt, qweight.cpu(), qzeros.cpu())
    if perm is not None:
        codes = codes[perm]
    sub = int4_group(group)
    s = scales.cpu().to(torch.float32).repeat_interleave(group // sub, dim=0)
    z = zeros.to(torch.float32).repeat_interleave(group // sub, dim=0)
    scales_and_zeros = torch.stack([s, (8.0 - z) * s], dim=-1).to(COMPUTE_DTYPE).contiguous()
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.T.contiguous(), 1)
    return CpuInt4Weight(packed, scales_and_zeros, sub)


def prepare_int8(
    fmt: PackedFormat,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    perm: torch.Tensor | None = None,
) -> CpuInt8Weight:
    """Convert once to torch's int8 CPU format, one matrix per group (rows in perm order
    when perm is given)."""
    k, n, group = check_packed(fmt, qweight, qzeros, scales, group_size)
    reason = int8_unsupported(fmt, k, n, group)
    if reason:
        raise ValueError(reason)
    codes, zeros = unpack_codes(fmt, qweight.cpu(), qzeros.cpu())
    if perm is not None:
        codes = codes[perm]
    groups = k // group
    # [K, N] -> [G, g, N] -> [G, N, g]: each group's rows contiguous, as the op reads them.
    weight = (codes - 128).to(torch.int8).reshape(groups, group, n).transpose(1, 2).contiguous()
    s = scales.cpu().to(torch.float32)
    zero_term = None if bool((zeros == 128).all()) else (128.0 - zeros.to(torch.float32)) * s
    return CpuInt8Weight(weight, s.to(COMPUTE_DTYPE), zero_term)


def int4_matmul(x: torch.Tensor, w: CpuInt4Weight) -> torch.Tensor:
    """x [M, K] (columns already permuted if the weight was) -> [M, N] in x's dtype."""
    xb = x.to(COMPUTE_DTYPE).contiguous()
    return torch.ops.aten._weight_int4pack_mm_for_cpu(xb, w.packed, w.group, w.scales_and_zeros).to(x.dtype)


def int8_matmul(x: torch.Tensor, w: CpuInt8Weight) -> torch.Tensor:
    """x [M, K] (columns already permuted if the weight was) -> [M, N] in x's dtype."""
    xb = x.to(COMPUTE_DTYPE).contiguous()
    g = w.weight.shape[2]
    y = torch.ops.aten._weight_int8pack_mm(xb[:, :g], w.weight[0], w.scales[0]).float()
    for i in range(1, w.groups):
        y += torch.ops.aten._weight_int8pack_mm(xb[:, i * g : (i + 1) * g], w.weight[i], w.scales[i])
    if w.zero_term is not None:
        sums = x.float().reshape(x.shape[0], w.groups, g).sum(dim=-1)  # [M, G]
        y.addmm_(sums, w.zero_term)
    return y.to(x.dtype)
