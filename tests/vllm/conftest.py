"""Fixtures of the vLLM interop tier: the checkpoint folder and cached vLLM loads.

These tests need vLLM, which lives in its own venv (.ci/vllm_tier.sh). In any other venv
(the main suite's) nothing here is collected, and vLLM is never imported.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import pytest

try:
    # The installed distribution, not find_spec: where tests/ is on sys.path (the main
    # suite's rootdir conftest puts it there), this very folder would pass for "vllm".
    importlib.metadata.version("vllm")
except importlib.metadata.PackageNotFoundError:
    collect_ignore_glob = ["*"]

ENV_VAR = "QWEN2VL_VLLM_CHECKPOINTS"


def pytest_addoption(parser):
    parser.addoption("--checkpoints", default=os.environ.get(ENV_VAR),
                     help=f"folder written by tests/vllm/make_checkpoints.py (default: ${ENV_VAR})")


def _root(config) -> Path:
    value = config.getoption("--checkpoints")
    if not value:
        raise pytest.UsageError(f"give the checkpoint folder with --checkpoints DIR or {ENV_VAR}=DIR; "
                                "write it with: .venv/bin/python tests/vllm/make_checkpoints.py DIR")
    root = Path(value)
    if not (root / "manifest.json").is_file():
        raise pytest.UsageError(f"{root} has no manifest.json: run tests/vllm/make_checkpoints.py {root} first")
    return root


def _manifest(config) -> dict:
    return json.loads((_root(config) / "manifest.json").read_text())["checkpoints"]


def pytest_generate_tests(metafunc):
    """Parametrize over the manifest: good_checkpoint, broken_checkpoint (by name)."""
    if not {"good_checkpoint", "broken_checkpoint"} & set(metafunc.fixturenames):
        return
    entries = _manifest(metafunc.config)
    if "good_checkpoint" in metafunc.fixturenames:
        names = [n for n, e in entries.items() if e["expect"] == "accept"]
        metafunc.parametrize("good_checkpoint", names)
    if "broken_checkpoint" in metafunc.fixturenames:
        names = [n for n, e in entries.items() if e["expect"] == "reject"]
        metafunc.parametrize("broken_checkpoint", names)


@pytest.fixture(scope="session")
def checkpoints(pytestconfig) -> Path:
    return _root(pytestconfig)


@pytest.fixture(scope="session")
def manifest(pytestconfig) -> dict:
    return _manifest(pytestconfig)


REAL_SHAPE_TABLE = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def real_shape_table(pytestconfig) -> list:
    """Rows the real-shape tensor-parallel tests append (what vLLM did per size and TP);
    printed at the end of the run."""
    return pytestconfig.stash.setdefault(REAL_SHAPE_TABLE, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = config.stash.get(REAL_SHAPE_TABLE, [])
    if not rows:
        return
    terminalreporter.section("real shapes at tensor parallelism (vLLM's own checks)")
    seen = {}
    for row in rows:  # one line per (family, size, TP, intermediate); the formats agree or are listed
        key = (row["family"], row["size"], row["tp"], row["padded"])
        seen.setdefault(key, {}).setdefault(row["outcome"], []).append(row["fmt"])
    for (family, size, tp, padded), outcomes in sorted(seen.items()):
        original = next(r["intermediate"] for r in rows if (r["family"], r["size"]) == (family, size))
        for outcome, fmts in outcomes.items():
            terminalreporter.write_line(f"{family:11} {size:>4} TP {tp}  intermediate {original:>5} -> {padded:>5}  "
                                        f"{outcome}  [{', '.join(fmts)}]")


class Loads:
    """vLLM loads shared by the tests of one session, keyed by their arguments; a load that
    raised is cached as its exception."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict = {}

    def get(self, name: str, **kwargs):
        from vllm_harness import load_with_vllm

        key = (name, tuple(sorted(kwargs.items())))
        if key not in self._cache:
            try:
                self._cache[key] = load_with_vllm(self.root / name, **kwargs)
            except Exception as exc:  # noqa: BLE001  (each test asserts on it)
                self._cache[key] = exc
        return self._cache[key]

    def ok(self, name: str, **kwargs):
        """The load, or a test failure carrying vLLM's error."""
        result = self.get(name, **kwargs)
        if isinstance(result, Exception):
            pytest.fail(f"vLLM rejected {name} ({kwargs}): {type(result).__name__}: {result}", pytrace=False)
        return result


@pytest.fixture(scope="session")
def loads(checkpoints) -> Loads:
    return Loads(checkpoints)
