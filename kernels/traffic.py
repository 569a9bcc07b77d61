"""Model of the bytes each kernel launch reads from DRAM, from its tiling alone.

The model replays a launch on the CPU: the grid and per-program K ranges come from the
same functions the launchers call (decode_grid, gemm_grid, dequant_grid), and each
program issues, in order, the tile loads its kernel body issues (scales and zeros once
per group it touches, a packed weight tile and an activation tile per K tile). Masked
elements are not read. Programs are replayed in launch order (program_id(0) fastest)
through an LRU cache standing in for L2, so a tile re-read by other programs costs DRAM
bytes only if it was evicted in between. The cache is L2_BYTES, half of an A100's 40 MB
L2, to leave room for concurrency the sequential replay does not see.

The ideal is every packed weight word, scale, zero and activation read once. A kernel
that re-reads weights (a redundant tile, scales reloaded per K tile, split-K ranges
cutting groups, weights re-fetched per row block) shows up as a ratio above 1.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import triton

from .configs import DEFAULT_SM_COUNT, KernelConfig
from .decode import decode_grid
from .dequant import dequant_grid
from .gemm import gemm_grid
from .layout import PackedFormat

L2_BYTES = 20 * 1024 * 1024
ACT_BYTES = 2  # bf16 / fp16 activations
SCALE_BYTES = 2  # fp16 checkpoint scales


@dataclass
class Traffic:
    kernel: str
    config: str
    m: int
    k: int
    n: int
    group: int
    format: str
    bytes_read: int = 0
    ideal: int = 0
    loads: int = 0
    by_operand: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.bytes_read / self.ideal

    def as_dict(self) -> dict:
        return {
            "kernel": self.kernel,
            "config": self.config,
            "format": self.format,
            "m": self.m,
            "k": self.k,
            "n": self.n,
            "group": self.group,
            "bytes_read": self.bytes_read,
            "ideal": self.ideal,
            "ratio": round(self.ratio, 4),
            "by_operand": dict(self.by_operand),
        }


class _Replay:
    """Sequential replay of tile loads through an LRU cache of `capacity` bytes."""

    def __init__(self, traffic: Traffic, capacity: int) -> None:
        self.traffic, self.capacity = traffic, capacity
        self.cache: OrderedDict[tuple, int] = OrderedDict()
        self.held = 0

    def load(self, operand: str, key: tuple, nbytes: int) -> None:
        self.traffic.loads += 1
        full = (operand, *key)
        if full in self.cache:
            self.cache.move_to_end(full)
            return
        self.traffic.bytes_read += nbytes
        self.traffic.by_operand[operand] = self.traffic.by_operand.get(operand, 0) + nbytes
        self.cache[full] = nbytes
        self.held += nbytes
        while self.held > self.capacity and self.cache:
            _, evicted = self.cache.popitem(last=False)
            self.held -= evicted


@dataclass(frozen=True)
class _Tiling:
    fmt: PackedFormat
    m: int
    k: int
    n: int
    block_m: int
    block_n: int
    block_k: int

    def valid_n(self, pid_n: int) -> int:
        return max(0, min(self.block_n, self.n - pid_n * self.block_n))

    def valid_k(self, t: int) -> int:
        return max(0, min(self.block_k, self.k - t * self.block_k))

    def weight_bytes(self, t: int, pid_n: int) -> int:
        pack = self.fmt.pack
        if self.fmt.pack_along_k:  # [BLOCK_K/pack words, BLOCK_N]
            return 4 * (self.valid_k(t) // pack) * self.valid_n(pid_n)
        return 4 * self.valid_k(t) * (self.valid_n(pid_n) // pack)  # [BLOCK_K, BLOCK_N/pack words]

    def group_bytes(self, pid_n: int) -> tuple[int, int]:
        """(scale bytes, zero bytes) of one group's [BLOCK_N] slice."""
        return SCALE_BYTES * self.valid_n(pid_n), 4 * (self.valid_n(pid_n) // self.fmt.pack)

    def x_bytes(self, rows: int, t: int) -> int:
        return ACT_BYTES * rows * self.valid_k(t)


def _ideal(fmt: PackedFormat, m: int, k: int, n: int, group: int, with_x: bool) -> int:
    groups = k // group
    packed = 4 * (k * n // fmt.pack)
    return packed + SCALE_BYTES * groups * n + 4 * groups * (n // fmt.pack) + (ACT_BYTES * m * k if with_x else 0)


def _walk_k(replay: _Replay, tiling: _Tiling, plan, pid_n: int, t_lo: int, t_hi: int, x_rows: int, x_key) -> None:
    """The loads of one program's K range: group loads, then per tile weight (+ x) loads."""
    tpg = plan.tiles_per_group
    for group in range(t_lo // tpg, -(-t_hi // tpg)):
        s_bytes, z_bytes = tiling.group_bytes(pid_n)
        replay.load("scales", (group, pid_n), s_bytes)
        replay.load("zeros", (group, pid_n), z_bytes)
        for t in range(max(t_lo, group * tpg), min(t_hi, group * tpg + tpg)):
            replay.load("qweight", (t, pid_n), tiling.weight_bytes(t, pid_n))
            if x_rows:
                replay.load("x", (*x_key, t), tiling.x_bytes(x_rows, t))


def model_launch(
    config: KernelConfig,
    fmt: PackedFormat,
    m: int,
    k: int,
    n: int,
    group: int,
    *,
    sm: int = DEFAULT_SM_COUNT,
    l2_bytes: int = L2_BYTES,
) -> Traffic:
    """Modelled DRAM bytes of one launch of `config` on an [m, k] x [k, n] problem."""
    traffic = Traffic(config.kernel, config.name, m, k, n, group, fmt.describe())
    replay = _Replay(traffic, l2_bytes)
    if config.kernel == "gemm":
        plan, (programs,) = gemm_grid(m, k, n, group, config)
        m_blocks = triton.cdiv(m, config.block_m)
        tiling = _Tiling(fmt, m, k, n, config.block_m, config.block_n, plan.block_k)
        for pid in range(programs):
            pid_m, pid_n = pid % m_blocks, pid // m_blocks
            rows = min(config.block_m, m - pid_m * config.block_m)
            _walk_k(replay, tiling, plan, pid_n, 0, plan.tiles_total, rows, (pid_m,))
    elif config.kernel in ("decode", "dequant"):
        if config.kernel == "decode":
            plan, (splits, n_blocks) = decode_grid(m, k, n, group, config, sm)
        else:
            plan, (splits, n_blocks) = dequant_grid(k, n, group, config, sm)
        rows = m if config.kernel == "decode" else 0
        tiling = _Tiling(fmt, m, k, n, config.block_m, config.block_n, plan.block_k)
        for pid_n in range(n_blocks):
            for pid_k in range(splits):
                t_lo = pid_k * plan.tiles_per_split
                t_hi = min(t_lo + plan.tiles_per_split, plan.tiles_total)
                _walk_k(replay, tiling, plan, pid_n, t_lo, t_hi, rows, ())
    else:
        raise ValueError(f"unknown kernel {config.kernel!r}")
    traffic.ideal = _ideal(fmt, m, k, n, group, with_x=config.kernel != "dequant")
    return traffic
