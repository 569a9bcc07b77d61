"""Offline stand-ins for real checkpoints and data: tiny random-weight models of each
supported family, synthetic calibration samples, and packed-weight fixtures.

Used by the test suite, the benchmarks and `qwen2vl-quant demo-model`; nothing here
downloads anything.
"""
