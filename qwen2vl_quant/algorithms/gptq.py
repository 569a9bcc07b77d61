"""GPTQ: statistics (``HessianAccumulator``) apart from the solve (``gptq_quantize``).

A port of the reference implementation (IST-DASLab/gptq, gptq.py ``add_batch`` and
``fasterquant``) with the options AutoGPTQ added: act-order with and without static
groups, and GPTQModel's automatic damping increase. Pure tensor code: no modules, hooks,
devices or files.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Iterator

import torch

from .quantizer import Grid, fit_grid, quantize_codes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizedWeight:
    """Integer codes and grids of one Linear, independent of any packing.

    codes: uint8 [N, K]; scales: fp16 [G, N]; zeros: int32 [G, N] (the true zero point);
    g_idx: int32 [K], the group of each input channel. W[n, k] ~ (codes - zeros[g]) * scales[g].
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    bits: int
    group_size: int

    def dequantize(self) -> torch.Tensor:
        """Dense float32 weight [N, K]."""
        g = self.g_idx.long()
        return (self.codes.float() - self.zeros[g].T.float()) * self.scales[g].T.float()


@dataclass(frozen=True)
class GPTQResult:
    weight: QuantizedWeight
    # Per output row, the OBS objective sum_j (w - q)^2 / Hinv_jj^2 / 2. Rows are solved
    # independently given H, so Linears that share an input (q/k/v, gate/up) can be
    # stacked into one solve and their losses split afterwards.
    row_losses: torch.Tensor
    damp_percent: float  # damping that made the Hessian positive definite
    dead_channels: int  # input channels that were always zero in calibration


class HessianAccumulator:
    """Running H = 2/n * sum(x x^T) over the real (unpadded) tokens seen so far."""

    def __init__(self, columns: int, device: torch.device | str = "cpu") -> None:
        self.hessian = torch.zeros(columns, columns, dtype=torch.float32, device=device)
        self.tokens = 0

    def add_batch(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> None:
        """x: [..., K] inputs of the Linear; token_mask: bool [...] marking real tokens."""
        x = x.reshape(-1, x.shape[-1])
        if token_mask is not None:
            x = x[token_mask.reshape(-1).to(x.device)]
        count = x.shape[0]
        if count == 0:
            return
        exact_bf16 = x.dtype == torch.bfloat16 and self.hessian.device.type == "cpu"
        x = x.to(self.hessian.device, torch.float32)
        # Rescale the running mean instead of summing then dividing: keeps the magnitude
        # stable over hundreds of thousands of tokens (reference add_batch).
        self.hessian *= self.tokens / (self.tokens + count)
        self.tokens += count
        if exact_bf16:
            # bf16 activations times bf16 activations are exact in float32, so oneDNN may
            # multiply them as bf16 (AMX on recent CPUs) and accumulate in float32: the same
            # sums, 2x faster, as accurate (tests). Scaling comes after, as alpha, so that
            # the inputs stay bf16-exact.
            with _bf16_products():
                self.hessian.addmm_(x.T, x, alpha=2.0 / self.tokens)
        else:
            x = x * math.sqrt(2.0 / self.tokens)
            self.hessian.addmm_(x.T, x)


@contextlib.contextmanager
def _bf16_products() -> Iterator[None]:
    """Let CPU float32 matmuls round their inputs to bf16 (exact for bf16-valued inputs)."""
    settings = torch.backends.mkldnn.matmul
    previous = settings.fp32_precision
    settings.fp32_precision = "bf16"
    try:
        yield
    finally:
        settings.fp32_precision = previous


def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    *,
    bits: int,
    group_size: int,
    sym: bool,
    desc_act: bool = False,
    static_groups: bool = False,
    damp_percent: float = 0.01,
    damp_auto_increment: float = 0.0025,
    block_size: int = 128,
    min_zero: int = 1,
    overwrite_hessian: bool = False,
) -> GPTQResult:
    """Quantize ``weight`` [N, K] given the Hessian [K, K] of its inputs.

    The Hessian is not modified unless ``overwrite_hessian`` (saves a K x K copy when the
    caller is done with it). Computation is in float32 on the weight's device.
    min_zero 1 keeps every zero point storable in GPTQ v1 checkpoints (quantizer.fit_grid).
    """
    rows, columns = weight.shape
    # The solve walks input channels one by one: work on the transposed weight [K, N] so
    # that each channel's weights are one contiguous row, read and updated in place.
    WT = torch.empty((columns, rows), dtype=torch.float32, device=weight.device)
    WT.copy_(weight.detach().T)
    H = hessian.detach().to(WT.device, torch.float32)
    if not overwrite_hessian and H.data_ptr() == hessian.data_ptr():
        H = H.clone()
    if H.shape != (columns, columns):
        raise ValueError(f"Hessian shape {tuple(H.shape)} does not match weight columns {columns}")
    group = columns if group_size == -1 else group_size
    if columns % group:
        raise ValueError(f"group size {group} does not divide the input size {columns}")

    # Channels that never fired carry no information: pin their Hessian diagonal and
    # zero their weights so they quantize exactly (reference fasterquant).
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    WT[dead] = 0

    static_grids: list[Grid] = []
    if static_groups:
        static_grids = [fit_grid(WT[g : g + group].T, bits, sym, min_zero) for g in range(0, columns, group)]

    perm = None
    if desc_act:
        perm = torch.argsort(torch.diag(H), descending=True)
        WT = WT[perm]
        H = H[perm][:, perm]

    live = ~dead if perm is None else ~dead[perm]
    Hinv, damp_used = _damped_inverse_cholesky(H, damp_percent, damp_auto_increment, live)
    del H  # its storage now holds Hinv's data

    codes_t = torch.empty((columns, rows), dtype=torch.uint8, device=WT.device)  # 1/4 of a float copy
    losses = torch.zeros(rows, device=WT.device)
    # grids[j] is the grid of the j-th group in solve order (static: original order).
    grids: list[Grid] = list(static_grids)
    grid = static_grids[0] if static_grids else None
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        # The reference clones the block and writes it back; updating WT in place gives the
        # same numbers: the rows of later blocks are only touched by the block update below.
        W1 = WT[i1:i2]
        Err1 = torch.empty_like(W1)
        Hrows = Hinv.rows(i1, i2)  # Hinv[i1:i2, i1:]
        Hinv1 = Hrows[:, : i2 - i1]
        for i in range(i2 - i1):
            col = i1 + i
            if static_groups:
                original = perm[col].item() if perm is not None else col
                grid = static_grids[original // group]
            elif col % group == 0:
                # Fit on the current, error-updated weights of the whole group (rows of this
                # block carry the errors so far, later rows not yet: as the reference).
                grid = fit_grid(WT[col : col + group].T, bits, sym, min_zero)
                grids.append(grid)
            w = W1[i]
            q_codes = quantize_codes(w, grid)
            codes_t[col] = q_codes
            err = Err1[i]
            torch.sub(w, (q_codes - grid.zero).mul_(grid.scale), out=err)
            err.div_(Hinv1[i, i])
            losses.addcmul_(err, err, value=0.5)  # (w - q)^2 / d^2 / 2
            W1[i + 1 :].addr_(Hinv1[i, i + 1 :], err, alpha=-1)
        WT[i2:].addmm_(Hrows[:, i2 - i1 :].T, Err1, alpha=-1)
    codes = codes_t.T

    if perm is not None:
        invperm = torch.argsort(perm)
        codes = codes[:, invperm]
        if static_groups:
            g_idx = torch.arange(columns, device=WT.device) // group
        else:
            g_idx = invperm // group
    else:
        g_idx = torch.arange(columns, device=WT.device) // group

    qweight = QuantizedWeight(
        codes=codes.contiguous(),
        scales=torch.stack([g.scale for g in grids]).to(torch.float16),
        zeros=torch.stack([g.zero for g in grids]).to(torch.int32),
        g_idx=g_idx.to(torch.int32),
        bits=bits,
        group_size=group_size,
    )
    return GPTQResult(qweight, losses, damp_used, int(dead.sum()))


class InverseCholesky:
    """The upper Cholesky factor U of H^-1 (H^-1 = U^T U) that GPTQ's solve reads row block
    by row block, stored as L^-1 where P H P = L L^T (P reverses the channel order).

    Then U = P L^-1 P: U is upper triangular with a positive diagonal, so it is the factor.
    This takes one Cholesky factorization and one triangular inverse instead of the
    reference's cholesky -> cholesky_inverse -> cholesky (3-4x slower on CPU: LAPACK's potri
    is slow), and U is never formed: ``rows`` flips the block the solve asks for.
    """

    def __init__(self, lower_inverse: torch.Tensor) -> None:
        self.lower_inverse = lower_inverse
        self.size = lower_inverse.shape[0]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """U[start:stop, start:], a new tensor."""
        n = self.size
        return self.lower_inverse[n - stop : n - start, : n - start].flip(0, 1).contiguous()

    def dense(self) -> torch.Tensor:
        """U as one matrix (tests)."""
        return self.lower_inverse.flip(0, 1)


def _damped_inverse_cholesky(H: torch.Tensor, damp_percent: float, increment: float,
                             live: torch.Tensor) -> tuple[InverseCholesky, float]:
    """H^-1's upper Cholesky factor after adding damp * mean(diag(H)) to the diagonal.

    The damping grows by ``increment`` until the factorization succeeds, as GPTQModel's
    damp_auto_increment does; without it GPTQ fails on rank-deficient Hessians (few tokens).
    The mean is over live channels only (the reference includes the dead ones, pinned at 1):
    then zero-padded channels (tensor-parallel padding) leave the live weights' solve exactly
    as it was, since H is block diagonal between live and dead channels.

    H must be the caller's private copy: it is damped in place and, on success, its storage
    is reused for the result. At most two K x K float32 matrices exist at any time, which
    matters for a 29568-wide down_proj (72B), where each is 3.5 GB.
    """
    mean_diag = torch.mean(torch.diag(H)[live]) if live.any() else torch.ones((), device=H.device)
    diagonal = H.diagonal()
    original_diagonal = diagonal.clone()
    damp = damp_percent
    info = torch.empty((), dtype=torch.int32, device=H.device)
    while True:
        diagonal.copy_(original_diagonal + damp * mean_diag)
        # torch's CPU linear algebra works on column-major matrices and copies row-major
        # ones: hand it transposed views (P H P is symmetric, so its transpose is itself).
        flipped = H.flip(0, 1)  # P H P
        L = flipped.mT
        torch.linalg.cholesky_ex(L, out=(L, info))  # in place
        if info == 0:
            inverse = H  # H is not needed any more: L^-1 goes into its storage
            _lower_triangular_inverse(L, inverse)
            del L, flipped
            if bool(torch.isfinite(inverse.diagonal()).all()):
                if damp != damp_percent:
                    logger.info("Hessian needed damp_percent %.4f to be positive definite", damp)
                return InverseCholesky(inverse), damp
            raise RuntimeError("the inverse of the damped Hessian is not finite; use a larger damp_percent")
        del L, flipped
        if increment <= 0 or damp + increment >= 1.0:
            raise RuntimeError(
                f"Hessian is not positive definite even with damp_percent {damp:.4f}; "
                "use more calibration samples or a larger damp_percent"
            )
        damp += increment


def _lower_triangular_inverse(L: torch.Tensor, out: torch.Tensor, base: int = 1024, chunk: int = 1024) -> None:
    """out = L^-1 for a lower triangular L, in place in ``out`` (which must not overlap L).

    Blocked like LAPACK's trtri: [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]], the
    off-diagonal block by matrix products a chunk of rows at a time, so that temporaries
    stay at chunk x K/2. torch has no trtri; solve_triangular(L, I) does 1.5x the
    multiply-adds at a lower rate and was 2x slower on an 8960-wide Hessian.
    """
    n = L.shape[0]
    if n <= base:
        out.copy_(torch.linalg.solve_triangular(L, torch.eye(n, dtype=L.dtype, device=L.device), upper=False))
        return
    h = n // 2
    _lower_triangular_inverse(L[:h, :h], out[:h, :h], base, chunk)
    _lower_triangular_inverse(L[h:, h:], out[h:, h:], base, chunk)
    out[:h, h:].zero_()
    for start in range(h, n, chunk):
        rows = slice(start, min(start + chunk, n))
        out[rows, :h] = (out[rows, h:] @ L[h:, :h]) @ out[:h, :h]
        out[rows, :h].neg_()

