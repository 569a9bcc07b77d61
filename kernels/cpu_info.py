"""What the CPU is, read once from /proc/cpuinfo: its model name and feature flags.

Three places ask: the C++ kernels' build (-march=native code is only valid on the CPU it was
built for), AWQ's clipping search (bf16 products only where the CPU multiplies bf16 natively)
and the benchmark reports (the machine a figure was taken on).
"""

from __future__ import annotations

import functools
import platform


@functools.lru_cache(maxsize=None)
def _fields() -> dict[str, str]:
    """The first CPU's "model name" and "flags" lines ({} where /proc/cpuinfo is missing)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "flags") and key not in fields:
                    fields[key] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name, e.g. "AMD EPYC" (platform's guess where /proc/cpuinfo is missing)."""
    return _fields().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, e.g. {"avx512_bf16", ...} (empty where /proc/cpuinfo is missing)."""
    return frozenset(_fields().get("flags", "").split())
