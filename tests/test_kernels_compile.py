"""Every shipped kernel configuration cross-compiles for sm_80 and sm_90 with no GPU,
without register spills and within the device's shared memory (kernels/compile_check.py).

Compiles each config x format (GPTQ/AWQ, 4/8-bit) x arch for bf16 activations at every
BLOCK_K a launch can use (small groups halve it), and for fp16 at the config's BLOCK_K:
about 180 compiles, ~1.5 min on 2 cores with a cold Triton cache, hence `slow`.
"""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="the interpreter has no compiler"),
]


def _failures(results):
    return [r.as_dict() for r in results if not r.ok]


def test_shipped_configs_compile_without_spills_for_sm80_and_sm90():
    from qwen2vl_quant.kernels.compile_check import SMEM_LIMIT, check_shipped
    from qwen2vl_quant.kernels.configs import SHIPPED

    results = check_shipped(archs=(80, 90), dtypes=(torch.bfloat16,), all_block_k=True)
    results += check_shipped(archs=(80, 90), dtypes=(torch.float16,), all_block_k=False)
    assert not _failures(results), _failures(results)
    assert {r.config for r in results} == {c.name for c in SHIPPED}
    assert {r.arch for r in results} == set(SMEM_LIMIT)
    assert all(0 < r.registers <= 255 for r in results)


def test_resource_report_flags_too_much_shared_memory():
    from qwen2vl_quant.kernels.compile_check import FORMATS, compile_config
    from qwen2vl_quant.kernels.configs import KernelConfig

    # A deliberately oversized GEMM tile: 256 x 256 x 128 bf16, 4 stages.
    huge = KernelConfig("gemm", 256, 256, 128, 8, 4)
    res = compile_config(huge, FORMATS[0], torch.bfloat16, 80)
    assert res.shared_bytes > res.smem_limit and not res.ok
