"""Session-wide fixtures: random-weight Qwen2-VL checkpoints and calibration samples.

Built once per test session (a second or two each on a 2-core CPU) by
``qwen2vl_quant.testing.tiny_model``; nothing is downloaded.
"""

import os

import pytest

# tests/vllm runs in a virtual environment of its own, with vLLM's pins (.ci/vllm_tier.sh).
collect_ignore = ["vllm"]

# No test may reach the model hub: every directory the tests load is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from qwen2vl_quant.testing.sample_data import make_test_images, sample_conversations  # noqa: E402
from qwen2vl_quant.testing.tiny_model import build_tiny_qwen2vl  # noqa: E402


@pytest.fixture
def torch_cpu_ops(monkeypatch):
    """The CPU paths of a machine where the C++ kernels cannot be built: torch's own ops."""
    from qwen2vl_quant.kernels import cpu_fused

    monkeypatch.setenv(cpu_fused.DISABLE_ENV, "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Preset "tiny", one model.safetensors, BF16, with outlier channels."""
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny") / "model", preset="tiny")


@pytest.fixture(scope="session")
def tiny_sharded_model_dir(tmp_path_factory):
    """Same weights as ``tiny_model_dir``, sharded into several files with an index json."""
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny_sharded") / "model", preset="tiny",
                              shard_size="200KB")


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    """Preset "small": every K divisible by 128, so the default group size works."""
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("small") / "model", preset="small")


@pytest.fixture(scope="session")
def test_images(tmp_path_factory):
    """Four small deterministic PNGs (56x84 to 112x112 px)."""
    return make_test_images(tmp_path_factory.mktemp("images"), n=4, seed=0)


@pytest.fixture(scope="session")
def calib_conversations(test_images):
    """Qwen2-VL message-format conversations: text only, single image, two images, video."""
    return sample_conversations(test_images)


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory, small_model_dir):
    """family -> a "small" random-weight model of that family (built once per session)."""
    from qwen2vl_quant.testing.tiny_families import build_tiny_model

    built = {"qwen2_vl": small_model_dir}

    def get(family: str):
        if family not in built:
            built[family] = build_tiny_model(tmp_path_factory.mktemp(family) / "model", family=family)
        return built[family]

    return get
