"""Configs are validated when built and take the AutoGPTQ recipe's names and values."""

import pytest

from qwen2vl_quant.config import CalibrationConfig, GPTQConfig
from qwen2vl_quant.errors import ConfigError


def test_autogptq_recipe_from_the_qwen2vl_readme():
    # BaseQuantizeConfig(...) of the Qwen2-VL README, as a dict
    recipe = dict(bits=8, group_size=128, damp_percent=0.1, desc_act=False, static_groups=False, sym=True,
                  true_sequential=True)
    config = GPTQConfig.from_dict(recipe)
    assert config == GPTQConfig(**recipe)
    assert (config.bits, config.damp_percent, config.true_sequential) == (8, 0.1, True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(bits=3), "bits must be one of"),
    (dict(group_size=100), "group_size must be one of"),
    (dict(damp_percent=0), "damp_percent"),
    (dict(block_size=0), "block_size"),
])
def test_invalid_gptq_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GPTQConfig(**kwargs)


def test_unknown_option_names_are_refused():
    with pytest.raises(ConfigError, match="unknown GPTQ option 'bitz'"):
        GPTQConfig.from_dict({"bitz": 4})


def test_calibration_bounds():
    with pytest.raises(ConfigError, match="exceeds max_pixels"):
        CalibrationConfig(min_pixels=100 * 28 * 28, max_pixels=10 * 28 * 28)
    with pytest.raises(ConfigError, match="num_samples"):
        CalibrationConfig(num_samples=0)
