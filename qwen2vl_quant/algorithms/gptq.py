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

from ..kernels.layout import resolve_group_size
from .quantizer import Grid, fit_grid
from .weights import QuantizedWeight

logger = logging.getLogger(__name__)


class HessianNotPositiveDefinite(RuntimeError):
    """Even the largest damping left the Hessian without a usable Cholesky factor."""


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
    """Running H = 2/n * sum(x x^T) over the real (unpadded) tokens seen so far.

    Only the lower triangle is accumulated (H is symmetric; ``gptq_quantize`` reads only
    that triangle): half the multiply-adds of the full product, 40 % less time for an
    8960-wide down_proj on CPU. ``hessian`` fills in the upper triangle when asked.
    """

    def __init__(self, columns: int, device: torch.device | str = "cpu") -> None:
        self.lower_triangle = torch.zeros(columns, columns, dtype=torch.float32, device=device)
        self.tokens = 0
        self._symmetric = True

    @property
    def hessian(self) -> torch.Tensor:
        """The full symmetric matrix (the upper triangle mirrored in place on first use)."""
        self._check_not_taken()
        if not self._symmetric:
            symmetrize_from_lower(self.lower_triangle)
            self._symmetric = True
        return self.lower_triangle

    def take(self) -> torch.Tensor:
        """The full matrix, handed over for the caller to change in place (AWQ's clip_gram
        does, saving a K x K copy): the accumulator is spent, so nothing reads it changed."""
        matrix = self.hessian
        self.lower_triangle = None
        return matrix

    def _check_not_taken(self) -> None:
        if self.lower_triangle is None:
            raise RuntimeError("this HessianAccumulator's matrix was handed over by take()")

    def add_batch(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> None:
        """x: [..., K] inputs of the Linear; token_mask: bool [...] marking real tokens."""
        self._check_not_taken()
        x = x.reshape(-1, x.shape[-1])
        if token_mask is not None:
            x = x[token_mask.reshape(-1).to(x.device)]
        count = x.shape[0]
        if count == 0:
            return
        H = self.lower_triangle
        exact_bf16 = x.dtype == torch.bfloat16 and H.device.type == "cpu"
        x = x.to(H.device, torch.float32)
        # Rescale the running mean instead of summing then dividing: keeps the magnitude
        # stable over hundreds of thousands of tokens (reference add_batch).
        if self.tokens:
            H *= self.tokens / (self.tokens + count)
        self.tokens += count
        self._symmetric = False
        if exact_bf16:
            # bf16 activations times bf16 activations are exact in float32, so oneDNN may
            # multiply them as bf16 (AMX on recent CPUs) and accumulate in float32: the same
            # sums, 2x faster, as accurate (tests). Scaling comes after, as alpha, so that
            # the inputs stay bf16-exact.
            with _bf16_products():
                _add_lower_gram(H, x, 2.0 / self.tokens)
        else:
            _add_lower_gram(H, x * math.sqrt(2.0 / self.tokens), 1.0)


def symmetrize_from_lower(H: torch.Tensor, block: int = 1024) -> None:
    """Copy H's lower triangle onto its upper one, in place, a block of rows at a time
    (temporaries of one block x block at most)."""
    n = H.shape[0]
    for c0 in range(0, n, block):
        c1 = min(c0 + block, n)
        diagonal = H[c0:c1, c0:c1]
        diagonal.copy_(diagonal.tril() + diagonal.tril(-1).T)
        if c1 < n:
            H[c0:c1, c1:].copy_(H[c1:, c0:c1].T)


def _add_lower_gram(H: torch.Tensor, x: torch.Tensor, alpha: float) -> None:
    """H += alpha * x^T x on and below the diagonal, one block of rows at a time (the
    blocks on the diagonal also write a little above it, which ``hessian`` overwrites)."""
    columns = x.shape[1]
    block = min(1024, max(256, -(-columns // 6 // 128) * 128))
    for r0 in range(0, columns, block):
        r1 = min(r0 + block, columns)
        H[r0:r1, :r1].addmm_(x[:, r0:r1].T, x[:, :r1], alpha=alpha)


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

    Only the Hessian's lower triangle is read (as LAPACK's Cholesky does), so a
    ``HessianAccumulator.lower_triangle`` can be passed as it is. The Hessian is not modified unless ``overwrite_hessian`` (saves a K x K copy when the
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
    group = resolve_group_size(group_size, columns)

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
        symmetrize_from_lower(H)  # the permutation mixes the triangles
        H = H[perm][:, perm]

    live = ~dead if perm is None else ~dead[perm]
    factor, damp_used = _damped_cholesky(H, damp_percent, damp_auto_increment, live)
    del H  # its storage is free: the factor lives in its own matrix

    codes_t = torch.empty((columns, rows), dtype=torch.uint8, device=WT.device)  # 1/4 of a float copy
    losses = torch.zeros(rows, device=WT.device)
    # grids[j] is the grid of the j-th group in solve order (static: original order).
    grids: list[Grid] = list(static_grids)
    grid = static_grids[0] if static_grids else None
    # Blocks hold whole groups, so that a group's grid is fitted on rows of one block.
    block = max(1, round(block_size / group)) * group if group < columns else block_size
    for i1 in range(0, columns, block):
        i2 = min(i1 + block, columns)
        coeffs, diagonal = factor.feedback(i1, i2)  # M^T[i1:i2, :i2], V_jj
        original = WT[i1:i2].clone()  # becomes W - Q of the block, row by row
        W1 = WT[i1:i2]
        if i1:
            # Every finished channel's rounding error, fed forward in one product; WT[:i1]
            # holds W - Q of the finished channels.
            W1.addmm_(coeffs[:, :i1], WT[:i1])
        within = coeffs[:, i1:]  # lower triangle: M[j, k] for channels j <= k of the block
        # Per channel only what the next channel needs; codes, losses and W - Q are written
        # per block (the loop runs once per input channel: its op count is its cost).
        block_codes = torch.empty_like(W1)
        dequantized = torch.empty_like(W1)
        for i in range(i2 - i1):
            col = i1 + i
            if static_groups:
                source = perm[col].item() if perm is not None else col
                grid = static_grids[source // group]
            elif col % group == 0:
                if group > block:  # one group per row (group_size -1): nothing is updated yet
                    rows_now = WT[col : col + group]
                else:
                    span = slice(i, i + group)
                    rows_now = _gptq_state(W1[span], original[span], within[span, span])
                grid = fit_grid(rows_now.T, bits, sym, min_zero)
                grids.append(grid)
            # quantize_codes, in place: clamp(round(w / scale) + zero, 0, maxq)
            q_codes = torch.div(W1[i], grid.scale, out=block_codes[i]).round_().add_(grid.zero).clamp_(0, grid.maxq)
            q = torch.sub(q_codes, grid.zero, out=dequantized[i]).mul_(grid.scale)
            rounding = original[i].sub_(q)  # W - Q of this channel
            W1[i + 1 :].addr_(within[i + 1 :, i], rounding)
        codes_t[i1:i2] = block_codes
        # Rows of W1 are final once quantized (only later rows are updated).
        err = W1.sub_(dequantized).mul_(diagonal[:, None])  # (w - q) / U_jj, U = Cholesky factor of H^-1
        losses.add_(err.square_().sum(dim=0), alpha=0.5)
        W1.copy_(original)
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
        group_size=group,
    )
    return GPTQResult(qweight, losses, damp_used, int(dead.sum()))


def _gptq_state(current: torch.Tensor, original: torch.Tensor, within: torch.Tensor) -> torch.Tensor:
    """The rows of a group as GPTQ's solve has them when the group starts, from the
    feedback form's rows (see ``CholeskyFactor``).

    Both forms agree on each channel when it is quantized, but not on the channels after
    it: feedback has added sum_j (W - Q)_j M[j, k] so far, GPTQ the same times C^-1, where
    C = M[group, group] (unit upper triangular). The grid is fitted on GPTQ's rows, as the
    reference does.
    """
    if current.shape[0] == 1:
        return current
    delta = current - original
    if not bool(delta.any()):
        return current
    # X = C^-T delta, solved as X^T = delta^T C^-1 on transposed views: LAPACK returns
    # column-major results, and X^T column-major is X row-major (5x faster than adding a
    # column-major X to the row-major rows).
    solved = torch.linalg.solve_triangular(within.T, delta.T, upper=True, left=False, unitriangular=True).T
    return solved.add_(original)


class CholeskyFactor:
    """H = V V^T with V upper triangular, for GPTQ's solve in feedback form.

    GPTQ updates the channels after j by -(w_j - q_j) U[j, k] / U[j, j], U the upper
    Cholesky factor of H^-1 (the reference computes U from cholesky -> cholesky_inverse ->
    cholesky). The same updates, summed, are sum_j (W - Q)_j M[j, k] with M = V diag(V)^-1
    unit upper triangular (the LDLQ form of QuIP, Chee et al. 2023, Theorem 6: the same
    result as GPTQ): no inverse is needed, only one Cholesky factorization. With P the
    channel reversal, P H P = L L^T gives V = P L P, and U[j, j] = 1 / V[j, j].

    The factor is stored as torch's Cholesky left it: L, the lower triangle of a
    column-major matrix, i.e. the upper triangle of the row-major ``storage`` (torch zeroes
    the other triangle; it is never read).
    """

    def __init__(self, storage: torch.Tensor) -> None:
        self.storage = storage
        self.size = storage.shape[0]

    def feedback(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M^T[start:stop, :stop], V[j, j] for j in start..stop), new tensors.

        Row k of the first holds M[j, k] for the channels j before k (and 1 at j = k);
        entries for j > k are not meaningful."""
        n = self.size
        coeffs = self.storage[n - stop : n - start, n - stop :].flip(0, 1)  # V^T[start:stop, :stop]
        diagonal = coeffs[:, start:].diagonal().clone()
        coeffs.div_(diagonal[:, None])
        return coeffs, diagonal

    def upper(self) -> torch.Tensor:
        """V as one matrix (tests)."""
        return self.storage.flip(0, 1).T.triu()


def _damped_cholesky(H: torch.Tensor, damp_percent: float, increment: float,
                     live: torch.Tensor) -> tuple[CholeskyFactor, float]:
    """The factor of H after adding damp * mean(diag(H)) to the diagonal.

    The damping grows by ``increment`` until the factorization succeeds, as GPTQModel's
    damp_auto_increment does; without it GPTQ fails on rank-deficient Hessians (few tokens).
    The mean is over live channels only (the reference includes the dead ones, pinned at 1):
    then zero-padded channels (tensor-parallel padding) leave the live weights' solve exactly
    as it was, since H is block diagonal between live and dead channels.

    H must be the caller's private copy: it is damped in place. At most two K x K float32
    matrices exist at any time (H and its reversed copy, which is factorized in place), and
    one once the caller drops H; that matters for a 29568-wide down_proj (72B), where each
    is 3.5 GB.
    """
    mean_diag = torch.mean(torch.diag(H)[live]) if live.any() else torch.ones((), device=H.device)
    diagonal = H.diagonal()
    original_diagonal = diagonal.clone()
    damp = damp_percent
    info = torch.empty((), dtype=torch.int32, device=H.device)
    while True:
        diagonal.copy_(original_diagonal + damp * mean_diag)
        # torch's CPU linear algebra works on column-major matrices and copies row-major
        # ones: hand it a transposed view (P H P is symmetric, so its transpose is itself).
        flipped = H.flip(0, 1)  # P H P, a copy
        L = flipped.mT
        torch.linalg.cholesky_ex(L, out=(L, info))  # in place
        if info == 0:
            if bool(torch.isfinite(L.diagonal()).all()):
                if damp != damp_percent:
                    logger.info("Hessian needed damp_percent %.4f to be positive definite", damp)
                return CholeskyFactor(flipped), damp
            raise HessianNotPositiveDefinite(
                "the Cholesky factor of the damped Hessian is not finite; use a larger damp_percent")
        del L, flipped
        if increment <= 0 or damp + increment >= 1.0:
            raise HessianNotPositiveDefinite(
                f"Hessian is not positive definite even with damp_percent {damp:.4f}; "
                "use more calibration samples or a larger damp_percent"
            )
        damp += increment
