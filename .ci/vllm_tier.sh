#!/usr/bin/env bash
# vLLM interop tier (issue 14): our checkpoints against vLLM's own code, without a GPU.
#
# 1. A venv of its own (.venv-vllm) with the official vLLM wheel from PyPI. vLLM pins its
#    own torch/transformers (0.33.0: torch==2.14.0, transformers>=5.16.1,<5.21.0), which
#    must not leak into the main venv. vLLM 0.34 pins a flashinfer-python the index lacks.
#    torch 2.14.0 is within this machine's pip cap (/etc/xdg/pip: torch<=2.14.1), so no
#    bypass is needed. Our package goes in with --no-deps, for its pure-python helpers.
# 2. The checkpoints (good and planted-broken) of the three families (Qwen2-VL, Qwen2.5-VL,
#    Qwen3-VL dense), written with the main venv by tests/vllm/make_checkpoints.py.
# 3. tests/vllm with the vLLM venv; the main suite's conftest is kept out (--confcutdir).
#
# Environment: VLLM_VENV (default .venv-vllm), MAIN_VENV (default .venv, made as .ci/run
# makes it when missing), QWEN2VL_VLLM_CHECKPOINTS (default: a fresh temporary folder).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_VERSION=0.33.0
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
MAIN_VENV=${MAIN_VENV:-.venv}
if [ -n "${QWEN2VL_VLLM_CHECKPOINTS:-}" ]; then
    CHECKPOINTS=$QWEN2VL_VLLM_CHECKPOINTS
else  # ours to remove: half a GB per run
    scratch=$(mktemp -d -t qwen2vl-vllm-XXXXXX)
    trap 'rm -rf "$scratch"' EXIT
    CHECKPOINTS=$scratch/checkpoints
fi

t0=$(date +%s)
stamp() { echo "[vllm tier] $1: $(( $(date +%s) - t0 )) s since start"; }

if [ ! -x "$MAIN_VENV/bin/python" ]; then  # as .ci/run makes it
    constraints=()
    if [ -f .ci/constraints.txt ]; then constraints=(-c .ci/constraints.txt); fi
    python3 -m venv "$MAIN_VENV"
    "$MAIN_VENV/bin/pip" install -q "${constraints[@]}" -e ".[test]"
    stamp "main venv"
fi

python3 -m venv "$VLLM_VENV"
"$VLLM_VENV/bin/pip" install -q --upgrade pip
"$VLLM_VENV/bin/pip" install -q "vllm==$VLLM_VERSION" "pytest>=8"
"$VLLM_VENV/bin/pip" install -q --no-deps -e .
# The --no-deps install must leave vLLM's pins satisfied, and our helpers must import there.
"$VLLM_VENV/bin/python" -c '
from importlib.metadata import requires, version
from packaging.requirements import Requirement
pins = [Requirement(r) for r in requires("vllm")]
pins = [r for r in pins if r.name in ("torch", "torchvision", "transformers") and r.marker is None]
for pin in pins:
    assert version(pin.name) in pin.specifier, f"{pin.name} {version(pin.name)} breaks the pin {pin}"
print("vllm", version("vllm"), "|", ", ".join(f"{p.name} {version(p.name)} (pin {p.specifier})" for p in pins))
from qwen2vl_quant.pipeline.padding import padded_intermediate_size
assert padded_intermediate_size(29568, 2, 128) == 29696
# The real-shape tests read the published sizes of every family with the transformers of this venv.
from qwen2vl_quant.memory import SIZES, model_config
assert {f for f, _ in SIZES} == {"qwen2_vl", "qwen2_5_vl", "qwen3_vl"}
for family, size in SIZES:
    model_config(family, size)
'
stamp "vLLM venv"

"$MAIN_VENV/bin/python" tests/vllm/make_checkpoints.py "$CHECKPOINTS"
stamp "checkpoints in $CHECKPOINTS"

status=0
"$VLLM_VENV/bin/python" -m pytest -c tests/vllm/pytest.ini --confcutdir tests/vllm \
    --checkpoints "$CHECKPOINTS" -q tests/vllm "$@" || status=$?
stamp "tests (exit $status)"
exit $status
