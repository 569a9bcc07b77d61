"""Tile configurations: a small explicit table per kernel, keyed on M/N buckets.

`@triton.autotune` with more than one config cannot run without a GPU (DESIGN.md section
4), and a table is easier to audit anyway: every entry is cross-compiled for sm_80/sm_90
by compile_check.py and its memory traffic is modelled by traffic.py. Routing by M
follows vLLM's AWQ Triton path (dequantize + cuBLAS from 256 tokens,
vllm/model_executor/layers/quantization/awq_triton.py) and gemlite's split of GEMV /
split-K GEMM / GEMM by batch size. The thresholds are not tuned on a GPU yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DECODE_MAX_M = 16  # decode (split-K) kernel for M <= 16
GEMM_MAX_M = 255  # tiled GEMM for 16 < M < 256; from 256 rows, Triton dequant + torch.matmul
DEFAULT_SM_COUNT = 132  # H100 SXM; used to size split-K when no CUDA device is queried
PROGRAMS_PER_SM = 4  # split-K aims at this many programs per SM (enough loads in flight)
MIN_TILES_PER_SPLIT = 2  # fewer makes the fp32 atomics a noticeable share of the traffic


@dataclass(frozen=True)
class KernelConfig:
    """One tile configuration. block_m == 1 selects the GEMV (FMA) form of the decode kernel."""

    kernel: str  # "decode" | "gemm" | "dequant"
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int

    @property
    def name(self) -> str:
        return f"{self.kernel}_m{self.block_m}n{self.block_n}k{self.block_k}w{self.num_warps}s{self.num_stages}"


# (largest M, largest N, config): the first row whose bounds hold is used.
DECODE_TABLE: tuple[tuple[int, int, KernelConfig], ...] = (
    (1, 1 << 30, KernelConfig("decode", 1, 64, 64, 4, 3)),
    (DECODE_MAX_M, 1 << 30, KernelConfig("decode", 16, 64, 64, 4, 3)),
)
GEMM_TABLE: tuple[tuple[int, int, KernelConfig], ...] = (
    (32, 1 << 30, KernelConfig("gemm", 32, 64, 64, 4, 3)),
    (GEMM_MAX_M, 1024, KernelConfig("gemm", 64, 64, 32, 4, 3)),
    (GEMM_MAX_M, 1 << 30, KernelConfig("gemm", 64, 128, 64, 8, 3)),
)
DEQUANT_CONFIG = KernelConfig("dequant", 1, 128, 64, 4, 2)

SHIPPED: tuple[KernelConfig, ...] = tuple(
    dict.fromkeys([c for _, _, c in DECODE_TABLE] + [c for _, _, c in GEMM_TABLE] + [DEQUANT_CONFIG])
)


def _lookup(table: tuple[tuple[int, int, KernelConfig], ...], m: int, n: int) -> KernelConfig:
    for m_max, n_max, config in table:
        if m <= m_max and n <= n_max:
            return config
    raise ValueError(f"no {table[0][2].kernel} config for M={m}, N={n} (largest M {table[-1][0]})")


def decode_config(m: int, n: int) -> KernelConfig:
    return _lookup(DECODE_TABLE, m, n)


def gemm_config(m: int, n: int) -> KernelConfig:
    return _lookup(GEMM_TABLE, m, n)


def effective_block_k(block_k: int, group: int, groups: int) -> int:
    """BLOCK_K to launch with: the config's, halved until it divides the group size.

    A K tile must lie in one group so that scales and zeros are loaded once per group
    (tiles.py contract); with a single group any BLOCK_K works (the tail is masked).
    """
    if groups == 1:
        return block_k
    bk = block_k
    while group % bk:
        bk //= 2
    if bk < 16:
        raise ValueError(f"group size {group} must be a multiple of 16 for the Triton kernels")
    return bk


@dataclass(frozen=True)
class KSplit:
    """How a launch walks K: tiles of BLOCK_K, grouped, and shared among split programs."""

    block_k: int
    tiles_total: int
    tiles_per_group: int
    tiles_per_split: int

    @property
    def splits(self) -> int:
        return math.ceil(self.tiles_total / self.tiles_per_split)


def plan_k(
    k: int, group: int, block_k: int, n_blocks: int, target_programs: int | None, split: int | None = None
) -> KSplit:
    """Cut K into tiles and (for split-K launches) into contiguous tile ranges.

    target_programs None means no split (the GEMM walks all of K). Otherwise the split
    count aims at target_programs programs in all, no split gets fewer than
    MIN_TILES_PER_SPLIT tiles, and split ranges are aligned to group boundaries (whole
    groups per split, or an equal share of one group) so no group's scales are read by
    more programs than needed. `split` forces the number of splits (tests).
    """
    groups = k // group
    bk = effective_block_k(block_k, group, groups)
    tiles_total = math.ceil(k / bk)
    tpg = tiles_total if groups == 1 else group // bk
    if target_programs is None and split is None:
        return KSplit(bk, tiles_total, tpg, tiles_total)
    if split is not None:
        per = math.ceil(tiles_total / max(1, split))
    else:
        want = max(1, math.ceil(target_programs / max(1, n_blocks)))
        per = max(MIN_TILES_PER_SPLIT, math.ceil(tiles_total / want))
        if groups > 1:
            if per >= tpg:
                per = math.ceil(per / tpg) * tpg
            else:
                per = next(d for d in range(per, tpg + 1) if tpg % d == 0)
    return KSplit(bk, tiles_total, tpg, min(per, tiles_total))
