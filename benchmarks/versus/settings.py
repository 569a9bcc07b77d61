"""What both tools are given and what is measured against: the fixed settings of the comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "vs_gptqmodel.py"  # the parent and its children run it
REPO = SCRIPT.parent.parent
RESULTS_DIR = SCRIPT.parent / "results"
GB = 1e9


@dataclass(frozen=True)
class Method:
    """One quantization method as both tools are asked for it, and the issue's targets."""

    name: str  # "gptq" or "awq"
    title: str
    our_args: tuple[str, ...]  # our CLI, after `qwen2vl-quant`
    targets: dict[str, float]  # ours / theirs (and, for AWQ, ours / our own GPTQ)
    results_stem: str  # benchmarks/results/<stem>.md|json for the 2b-shapes preset
    issue: str


# Issue 6: GPTQ Int4, group 128, symmetric, no act-order, damp 0.01.
GPTQ = Method("gptq", "GPTQ Int4, group 128, sym, no act-order, damp 0.01",
              ("gptq", "--bits", "4", "--group-size", "128", "--sym", "--no-desc-act", "--damp", "0.01"),
              {"wall": 0.4, "rss": 0.6, "error": 1.0}, "vs_gptqmodel", "issue 6")
# Issue 13: AWQ Int4, group 128, with zero points (AutoAWQ's GEMM format, Qwen's recipe).
AWQ = Method("awq", "AWQ Int4, group 128, zero points (GEMM)",
             ("awq", "--bits", "4", "--group-size", "128", "--zero-point"),
             {"wall": 0.5, "rss": 0.6, "error": 1.0, "vs_our_gptq": 1.5}, "vs_gptqmodel_awq", "issue 13")
METHODS = {m.name: m for m in (GPTQ, AWQ)}

# Issue 6's reference measurement (a teammate, same machine type): GPTQModel 7.7 GPTQ on this setup.
ISSUE_REFERENCE = {"tool": "GPTQModel 7.7.0", "wall_s": 858.0, "peak_rss_gb": 4.45}

IMAGE_SIZE = (448, 336)  # 16 x 12 = 192 visual tokens per image after the 2x2 merge
HELD_OUT_SEED = 1000
HELD_OUT = 8
POLL_S = 0.2  # how often the memory of a child's process tree is sampled
