"""Triton dequant-GEMM kernels, their launchers and plain-torch references. Imports torch and triton only.

Entry point for the quantized Linear modules: `dispatch` (prepare / quantized_linear).
Layouts: `reference` (the definition) and `layout` (their names and checks). Kernels,
one file each with its launcher and contract: `decode` (split-K, M <= 16), `gemm`
(prefill sizes), `dequant` (dequantize for torch.matmul at large M); shared device code in
`tiles`, tile tables in `configs`. CPU: `cpu_fused` (C++ kernels built at first use from
`cpu_fused.cpp`, reading the checkpoint tensors), `cpu` (torch's int4/int8 ops, where no
compiler is present) and `torch_dequant`.
Static checks: `compile_check` (sm_80/sm_90 cross-compile), `traffic` (bytes per launch).

Nothing is imported here on purpose: importing a kernel module runs @triton.jit, which
is when TRITON_INTERPRET=1 takes effect, so `qwen2vl_quant.kernels.reference` must stay
importable without defining any kernel.

This folder is ``qwen2vl_quant.kernels`` (pyproject.toml maps it into the package). Python
also finds it as a top-level ``kernels`` whenever the repository root is on ``sys.path``
(``python -m ...`` or a prompt opened in a clone), and that name belongs to the PyPI
package that transformers 5 imports. The block below hands that name back.
"""

if __name__ == "kernels":

    def _give_the_name_back() -> None:
        import importlib.machinery
        import importlib.util
        import os
        import sys

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        elsewhere = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
        spec = importlib.machinery.PathFinder.find_spec("kernels", elsewhere)
        if spec is None:
            # Not installed: stand in as the empty namespace package Python would have made
            # of a folder without __init__.py; transformers' availability check treats a
            # module with no __file__ and no version as absent (import_utils._is_package_available).
            spec = importlib.machinery.ModuleSpec("kernels", None, is_package=True)
            spec.submodule_search_locations = []
        module = importlib.util.module_from_spec(spec)
        # The import system returns whatever sys.modules holds once this file has run.
        sys.modules["kernels"] = module
        if spec.loader is not None:
            spec.loader.exec_module(module)

    _give_the_name_back()
