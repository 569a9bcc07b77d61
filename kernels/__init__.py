"""Triton dequant-GEMM kernels, their launchers and plain-torch references. Imports torch and triton only."""
