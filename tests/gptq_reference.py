"""The GPTQ solve as the reference writes it (IST-DASLab/gptq ``fasterquant``), kept as a
test oracle for the optimized ``qwen2vl_quant.algorithms.gptq.gptq_quantize``: column-major
updates on a cloned block, and H^-1's Cholesky factor from cholesky -> cholesky_inverse ->
cholesky. The optimized solve must pick the same codes (up to float rounding), except where
a group straddles two blocks: there the reference fits the group's grid on rows some of
which lack the current block's updates, and its codes depend on the block size; the
optimized solve rounds blocks to whole groups (tests/test_gptq_algorithm.py).

Independent of the project's code: the grid (IST-DASLab/gptq quant.py ``find_params``, with
the choices the project documents: fp16 scales, the symmetric zero at the middle code, v1's
smallest storable zero), the rounding and the damping are written here again from those
sources, so a bug in qwen2vl_quant.algorithms.quantizer or in the damping shows up as a
difference instead of being shared by both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qwen2vl_quant.algorithms.gptq import GPTQResult
from qwen2vl_quant.algorithms.weights import QuantizedWeight


@dataclass
class Grid:
    scale: torch.Tensor  # [N]
    zero: torch.Tensor  # [N]
    maxq: int


def fit_grid(w: torch.Tensor, bits: int, sym: bool, min_zero: int) -> Grid:
    """quant.py ``Quantizer.find_params`` per row of w [N, k]: the range always holds 0;
    symmetric grids are centred, their zero the middle code (maxq + 1) / 2 as AutoGPTQ
    stores it; scales are rounded to fp16, as checkpoints store them; a zero below
    ``min_zero`` (v1 cannot store 0) gets the grid [-scale, xmax] refitted with that zero."""
    maxq = 2**bits - 1
    xmin = torch.minimum(w.min(dim=1).values, torch.zeros(w.shape[0]))
    xmax = torch.maximum(w.max(dim=1).values, torch.zeros(w.shape[0]))
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    both_zero = (xmin == 0) & (xmax == 0)
    xmin[both_zero], xmax[both_zero] = -1.0, 1.0
    scale = ((xmax - xmin) / maxq).clamp(min=1e-6).half().float()
    if sym:
        return Grid(scale, torch.full_like(scale, (maxq + 1) / 2), maxq)
    zero = torch.round(-xmin / scale)
    for row in range(w.shape[0]):
        if zero[row] < min_zero:
            scale[row] = (xmax[row] / (maxq - min_zero)).clamp(min=1e-6).half().float()
            zero[row] = min_zero
    return Grid(scale, zero, maxq)


def quantize_codes(w: torch.Tensor, grid: Grid) -> torch.Tensor:
    """quant.py ``quantize``: clamp(round(w / scale) + zero, 0, maxq), per row."""
    return torch.clamp(torch.round(w / grid.scale) + grid.zero, 0, grid.maxq)


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
    assert columns % group == 0

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
        group_size=group,
    )
    return GPTQResult(qweight, losses, damp_used, int(dead.sum()))


def _damped_inverse_cholesky(H: torch.Tensor, damp_percent: float, increment: float,
                             live: torch.Tensor) -> tuple[torch.Tensor, float]:
    """fasterquant: H += damp * mean(diag(H)) * I, then U = cholesky(H^-1, upper). The mean
    over the live channels (the project's documented choice for padded channels), and the
    damping raised by ``increment`` until H factorizes (GPTQModel's damp_auto_increment)."""
    base = H.clone()
    mean_diag = torch.diag(base)[live].mean()
    damp = damp_percent
    while True:
        damped = base + damp * mean_diag * torch.eye(base.shape[0])
        L, info = torch.linalg.cholesky_ex(damped)
        if info == 0:
            U, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(L), upper=True)
            if info == 0:
                return U, damp
        assert increment > 0 and damp + increment < 1.0, "not positive definite"
        damp += increment
