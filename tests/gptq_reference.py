"""The GPTQ solve as the reference writes it (IST-DASLab/gptq ``fasterquant``), kept as a
test oracle for the optimized ``qwen2vl_quant.algorithms.gptq.gptq_quantize``: column-major
updates on a cloned block, and H^-1's Cholesky factor from cholesky -> cholesky_inverse ->
cholesky. The optimized solve must pick the same codes (up to float rounding), except where
a group straddles two blocks: there the reference fits the group's grid on rows some of
which lack the current block's updates, and its codes depend on the block size; the
optimized solve rounds blocks to whole groups (tests/test_gptq_algorithm.py).
"""

from __future__ import annotations

import logging

import torch

from qwen2vl_quant.algorithms.gptq import GPTQResult, QuantizedWeight
from qwen2vl_quant.algorithms.quantizer import Grid, fit_grid, quantize_codes

logger = logging.getLogger(__name__)


def reference_gptq(
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
    W = weight.detach().float().clone()
    H = hessian.detach().to(W.device, torch.float32)
    if not overwrite_hessian and H.data_ptr() == hessian.data_ptr():
        H = H.clone()
    rows, columns = W.shape
    if H.shape != (columns, columns):
        raise ValueError(f"Hessian shape {tuple(H.shape)} does not match weight columns {columns}")
    group = columns if group_size == -1 else group_size
    if columns % group:
        raise ValueError(f"group size {group} does not divide the input size {columns}")

    # Channels that never fired carry no information: pin their Hessian diagonal and
    # zero their weights so they quantize exactly (reference fasterquant).
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    static_grids: list[Grid] = []
    if static_groups:
        static_grids = [fit_grid(W[:, g : g + group], bits, sym, min_zero) for g in range(0, columns, group)]

    perm = None
    if desc_act:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]

    live = ~dead if perm is None else ~dead[perm]
    Hinv, damp_used = _damped_inverse_cholesky(H, damp_percent, damp_auto_increment, live)
    del H  # the largest buffer besides Hinv (K^2 floats): free it before the solve

    codes = torch.zeros(W.shape, dtype=torch.uint8, device=W.device)  # 1/4 of a float copy
    losses = torch.zeros(rows, device=W.device)
    # grids[j] is the grid of the j-th group in solve order (static: original order).
    grids: list[Grid] = list(static_grids)
    grid = static_grids[0] if static_grids else None
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if static_groups:
                original = perm[col].item() if perm is not None else col
                grid = static_grids[original // group]
            elif col % group == 0:
                # Fit on the current, error-updated weights of the whole group: the part in
                # this block lives in W1, any rest beyond the block in W.
                ahead = torch.cat([W1[:, i:], W[:, i2 : col + group]], dim=1)[:, :group]
                grid = fit_grid(ahead, bits, sym, min_zero)
                grids.append(grid)
            w = W1[:, i]
            d = Hinv1[i, i]
            q_codes = quantize_codes(w, grid)
            q = (q_codes - grid.zero) * grid.scale
            codes[:, col] = q_codes
            losses += (w - q) ** 2 / d**2 / 2
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

    if perm is not None:
        invperm = torch.argsort(perm)
        codes = codes[:, invperm]
        if static_groups:
            g_idx = torch.arange(columns, device=W.device) // group
        else:
            g_idx = invperm // group
    else:
        g_idx = torch.arange(columns, device=W.device) // group

    qweight = QuantizedWeight(
        codes=codes,
        scales=torch.stack([g.scale for g in grids]).to(torch.float16),
        zeros=torch.stack([g.zero for g in grids]).to(torch.int32),
        g_idx=g_idx.to(torch.int32),
        bits=bits,
        group_size=group_size,
    )
    return GPTQResult(qweight, losses, damp_used, int(dead.sum()))


def _damped_inverse_cholesky(H: torch.Tensor, damp_percent: float, increment: float,
                             live: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor of H^-1 after adding damp * mean(diag(H)) to the diagonal.

    The damping grows by ``increment`` until the factorization succeeds, as GPTQModel's
    damp_auto_increment does; without it GPTQ fails on rank-deficient Hessians (few tokens).
    The mean is over live channels only (the reference includes the dead ones, pinned at 1):
    then zero-padded channels (tensor-parallel padding) leave the live weights' solve exactly
    as it was, since H is block diagonal between live and dead channels.
    """
    mean_diag = torch.mean(torch.diag(H)[live]) if live.any() else torch.ones((), device=H.device)
    diagonal = H.diagonal()
    original_diagonal = diagonal.clone()
    damp = damp_percent
    # Damping is added to H's diagonal in place (H is the caller's private copy) and each
    # intermediate is dropped as soon as possible: for a 29568-wide down_proj (72B) every
    # K x K float32 matrix is 3.5 GB.
    while True:
        diagonal.copy_(original_diagonal + damp * mean_diag)
        L, info = torch.linalg.cholesky_ex(H)
        if info == 0:
            Hinv = torch.cholesky_inverse(L)
            del L
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            del Hinv
            if info == 0:
                if damp != damp_percent:
                    logger.info("Hessian needed damp_percent %.4f to be positive definite", damp)
                return U, damp
        if increment <= 0 or damp + increment >= 1.0:
            raise RuntimeError(
                f"Hessian is not positive definite even with damp_percent {damp:.4f}; "
                "use more calibration samples or a larger damp_percent"
            )
        damp += increment
