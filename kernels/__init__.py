"""Triton dequant-GEMM kernels, their launchers and plain-torch references. Imports torch and triton only.

Entry point for the quantized Linear modules: `dispatch` (prepare / quantized_linear).
Layouts: `reference` (the definition) and `layout` (their names and checks). Kernels,
one file each with its launcher and contract: `decode` (split-K, M <= 16), `gemm`
(prefill sizes), `dequant` (dequantize for torch.matmul at large M); shared device code in
`tiles`, tile tables in `configs`. CPU: `cpu` (torch's int4/int8 ops) and `torch_dequant`.
Static checks: `compile_check` (sm_80/sm_90 cross-compile), `traffic` (bytes per launch).

Nothing is imported here on purpose: importing a kernel module runs @triton.jit, which
is when TRITON_INTERPRET=1 takes effect, so `qwen2vl_quant.kernels.reference` must stay
importable without defining any kernel.
"""
