"""What a quantization run did, layer by layer: returned by the API, printed by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LinearReport:
    layer: int
    name: str  # e.g. "self_attn.q_proj"
    in_features: int
    out_features: int
    # Relative output error ||x W^T - x Q^T|| / ||x W^T|| on the calibration tokens, where x
    # are the inputs this Linear received in the quantized model.
    rel_error: float = float("nan")
    loss: float | None = None  # GPTQ's OBS objective; None for methods without one
    damp_percent: float | None = None
    dead_channels: int = 0
    seconds: float = 0.0
    notes: str = ""
    # AWQ: where this Linear's input scales came from ("input_layernorm r=0.35 duo", or why
    # none) and the fraction of its groups whose range the clipping search shrank.
    smoothing: str | None = None
    clipped: float | None = None
    # Set when the method could not run on this Linear and another one stood in (GPTQ's
    # Hessian stayed indefinite: round to nearest), with why.
    fallback: str | None = None


@dataclass
class QuantReport:
    method: str
    config: dict[str, Any]
    calibration: str = ""
    linears: list[LinearReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output_dir: str | None = None

    def worst(self, count: int = 5) -> list[LinearReport]:
        return sorted(self.linears, key=lambda r: -r.rel_error)[:count]

    def mean_rel_error(self) -> float:
        return sum(r.rel_error for r in self.linears) / max(1, len(self.linears))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """Per-layer summary as a fixed-width table (one row per Linear); a column that no
        row of this method fills (GPTQ's loss and damping for AWQ, ...) is left out."""
        columns = [("layer", ">5", lambda r: r.layer), ("linear", "<18", lambda r: r.name),
                   ("shape", ">13", lambda r: f"{r.in_features}x{r.out_features}"),
                   ("rel. error", ">10", lambda r: f"{r.rel_error:.5f}")]
        optional = [("loss", ">10", "loss", lambda v: f"{v:.4g}"), ("damp", ">6", "damp_percent", lambda v: f"{v:.4f}"),
                    ("clipped", ">7", "clipped", lambda v: f"{v:.0%}"), ("scaled by", "<30", "smoothing", str),
                    ("fallback", "<20", "fallback", lambda v: v.split(":")[0])]
        for title, align, field_name, fmt in optional:
            if any(getattr(r, field_name) is not None for r in self.linears):
                columns.append((title, align, lambda r, f=field_name, fmt=fmt:
                                "-" if getattr(r, f) is None else fmt(getattr(r, f))))
        header = "  ".join(f"{title:{align}}" for title, align, _ in columns)
        rows = [header.rstrip(), "-" * len(header.rstrip())]
        for r in self.linears:
            rows.append("  ".join(f"{cell(r):{align}}" for _, align, cell in columns).rstrip())
        return "\n".join(rows)
