"""The parts of benchmarks/vs_gptqmodel.py (issue 6): settings, data, measure, children, report."""
