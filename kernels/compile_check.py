"""Cross-compile every shipped kernel configuration for sm_80 / sm_90 without a GPU.

`triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", cc, 32))`
runs the whole pipeline down to a cubin on a CPU-only machine (DESIGN.md section 4).
Resources come from two tools bundled in the triton wheel: the ptxas Triton itself
uses, re-run with -v on the kernel's PTX (registers, stack frame, spill stores and
loads: the numbers TRITON_DUMP_PTXAS_LOG=1 prints, but also for kernels served from
Triton's cache), and cuobjdump --dump-resource-usage on the cubin (static shared
memory, local memory). The dynamic shared memory Triton launches with is the compiled
kernel's metadata.shared; nothing in the toolchain rejects too much of it, so `ok`
compares static + dynamic against the device limit, and asks for zero spills.

Pointers and N, K and the row stride are specialised as 16-divisible, as the JIT does
for the Qwen2-VL shapes, and FP fusion is on, as the launchers ask for explicitly, so the
code checked is the code that runs there.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import sm_arch_from_capability
from triton.compiler import ASTSource

from .configs import SHIPPED, KernelConfig
from .decode import decode_kernel
from .dequant import dequant_kernel
from .gemm import gemm_kernel
from .layout import PackedFormat

# Opt-in shared memory per block (CUDA C Programming Guide, compute capabilities table).
SMEM_LIMIT = {80: 166912, 90: 232448}
KERNELS = {"decode": decode_kernel, "gemm": gemm_kernel, "dequant": dequant_kernel}
FORMATS = (PackedFormat("gptq", 4), PackedFormat("gptq", 8), PackedFormat("awq", 4), PackedFormat("awq", 8))
_TRITON_DTYPE = {torch.bfloat16: "bf16", torch.float16: "fp16"}
_ALIGNED = ("x_ptr", "qw_ptr", "qz_ptr", "s_ptr", "acc_ptr", "out_ptr", "w_ptr", "N", "K", "stride_xm")


@dataclass(frozen=True)
class Resources:
    kernel: str
    config: str
    format: str
    dtype: str
    arch: int
    block_k: int
    registers: int
    spill_stores: int
    spill_loads: int
    local_bytes: int
    stack_bytes: int
    shared_bytes: int
    smem_limit: int

    @property
    def ok(self) -> bool:
        return (
            self.spill_stores == 0
            and self.spill_loads == 0
            and self.local_bytes == 0
            and self.shared_bytes <= self.smem_limit
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def block_k_variants(config: KernelConfig) -> tuple[int, ...]:
    """BLOCK_K values a launch can use: the config's, and halvings down to 16 for small groups."""
    out, bk = [], config.block_k
    while bk >= 16:
        out.append(bk)
        bk //= 2
    return tuple(out)


def _source(config: KernelConfig, fmt: PackedFormat, dtype: torch.dtype, block_k: int) -> ASTSource:
    fn = KERNELS[config.kernel]
    act = _TRITON_DTYPE[dtype]
    pointer = {
        "x_ptr": act,
        "qw_ptr": "i32",
        "qz_ptr": "i32",
        "s_ptr": "fp16",
        "acc_ptr": "fp32",
        "out_ptr": act,
        "w_ptr": act,
    }
    constexprs: dict[str, object] = {**fmt.constexprs(), "BLOCK_N": config.block_n, "BLOCK_K": block_k}
    if config.kernel != "dequant":
        constexprs.update(BLOCK_M=config.block_m, DOT_FP32=False)
    signature = {}
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in pointer:
            signature[name] = "*" + pointer[name]
        else:
            signature[name] = "i32"
    attrs = {(fn.arg_names.index(a),): [["tt.divisibility", 16]] for a in _ALIGNED if a in fn.arg_names}
    return ASTSource(fn, signature, constexprs, attrs)


def _tool(name: str) -> str:
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def _ptxas_log(ptx: str, arch: int) -> dict[str, int]:
    """Registers, stack frame and spills from `ptxas -v`, with Triton's own ptxas flags."""
    ptxas = _tool("ptxas" if arch < 90 else "ptxas-blackwell")  # triton: nvidia/compiler.py get_ptxas
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [
            ptxas,
            "-lineinfo",
            "-v",
            "--regAllocOptLevel=2",
            f"--gpu-name={sm_arch_from_capability(arch)}",
            src,
            "-o",
            src + ".o",
        ]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    regs = re.search(r"Used (\d+) registers", log)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    if regs is None or frame is None:
        raise RuntimeError(f"cannot parse the ptxas log:\n{log}")
    stack, stores, loads = map(int, frame.groups())
    return {"registers": int(regs.group(1)), "stack_bytes": stack, "spill_stores": stores, "spill_loads": loads}


def _resource_usage(cubin: bytes) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        text = subprocess.run(
            [_tool("cuobjdump"), "--dump-resource-usage", path], capture_output=True, text=True, check=True
        ).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", text)
    if found is None:
        raise RuntimeError(f"cannot parse cuobjdump output:\n{text}")
    _, _, shared, local = map(int, found.groups())
    return {"static_shared": shared, "local_bytes": local}


def compile_config(
    config: KernelConfig,
    fmt: PackedFormat,
    dtype: torch.dtype = torch.bfloat16,
    arch: int = 80,
    block_k: int | None = None,
) -> Resources:
    """Compile one specialisation for sm_<arch> and report its resources."""
    bk = block_k or config.block_k
    compiled = triton.compile(
        _source(config, fmt, dtype, bk),
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": config.num_warps, "num_stages": config.num_stages, "enable_fp_fusion": True},
    )
    usage = _resource_usage(compiled.asm["cubin"])
    log = _ptxas_log(compiled.asm["ptx"], arch)
    return Resources(
        kernel=config.kernel,
        config=config.name,
        format=fmt.describe(),
        dtype=_TRITON_DTYPE[dtype],
        arch=arch,
        block_k=bk,
        registers=log["registers"],
        spill_stores=log["spill_stores"],
        spill_loads=log["spill_loads"],
        local_bytes=usage["local_bytes"],
        stack_bytes=log["stack_bytes"],
        shared_bytes=compiled.metadata.shared + usage["static_shared"],
        smem_limit=SMEM_LIMIT[arch],
    )


def check_shipped(
    archs: tuple[int, ...] = (80, 90),
    formats: tuple[PackedFormat, ...] = FORMATS,
    dtypes: tuple[torch.dtype, ...] = (torch.bfloat16,),
    all_block_k: bool = True,
    configs: tuple[KernelConfig, ...] = SHIPPED,
) -> list[Resources]:
    """Resources of every shipped config x format x dtype x arch (x BLOCK_K variant)."""
    results = []
    for config in configs:
        for bk in block_k_variants(config) if all_block_k else (config.block_k,):
            for fmt in formats:
                for dtype in dtypes:
                    for arch in archs:
                        results.append(compile_config(config, fmt, dtype, arch, bk))
    return results
