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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantReport":
        linears = [LinearReport(**r) for r in data.get("linears", [])]
        return cls(**{**data, "linears": linears})

    def table(self) -> str:
        """Per-layer summary as a fixed-width table (one row per Linear)."""
        header = f"{'layer':>5}  {'linear':<18} {'shape':>13}  {'rel. error':>10}  {'loss':>10}  {'damp':>6}"
        rows = [header, "-" * len(header)]
        for r in self.linears:
            loss = f"{r.loss:10.4g}" if r.loss is not None else f"{'-':>10}"
            damp = f"{r.damp_percent:6.4f}" if r.damp_percent is not None else f"{'-':>6}"
            shape = f"{r.in_features}x{r.out_features}"
            rows.append(f"{r.layer:>5}  {r.name:<18} {shape:>13}  {r.rel_error:10.5f}  {loss}  {damp}")
        return "\n".join(rows)
