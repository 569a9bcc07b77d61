"""What each quantization config means to the pipeline: the layer step that quantizes a
decoder layer, and the ``quantization_config`` block its checkpoint carries. A registry
keyed by config type, so adding a method is one entry here, not a branch in every caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import __version__
from ..arch import ArchSpec
from ..config import AWQConfig, GPTQConfig, QuantConfig, RTNConfig
from ..errors import ConfigError
from ..formats import awq as awq_format
from ..formats import gptq as gptq_format
from .awq_layer import quantize_layer_awq
from .gptq_layer import quantize_layer_gptq, quantize_layer_rtn
from .layerwise import LayerStep


@dataclass(frozen=True)
class Method:
    # (spec, config) -> the step run_layers calls for every decoder layer
    step: Callable[[ArchSpec, Any], LayerStep]
    # config -> the quantization_config block of config.json
    checkpoint_config: Callable[[Any], dict[str, Any]]


def _gptq_checkpoint_config(config: GPTQConfig) -> dict[str, Any]:
    return gptq_format.quantization_config(
        bits=config.bits, group_size=config.group_size, sym=config.sym, desc_act=config.desc_act,
        static_groups=config.static_groups, damp_percent=config.damp_percent,
        true_sequential=config.true_sequential, tool_version=__version__)


def _rtn_checkpoint_config(config: RTNConfig) -> dict[str, Any]:
    # Round to nearest writes the GPTQ format without act-order, so it loads wherever GPTQ does.
    return _gptq_checkpoint_config(GPTQConfig(config.bits, config.group_size, config.sym))


def _awq_checkpoint_config(config: AWQConfig) -> dict[str, Any]:
    return awq_format.awq_quantization_config(bits=config.bits, group_size=config.group_size,
                                              zero_point=config.zero_point, tool_version=__version__)


METHODS: dict[type, Method] = {
    GPTQConfig: Method(
        step=lambda spec, config: lambda layer, index, runner, meter, progress: quantize_layer_gptq(
            layer, index, runner, meter, spec, config),
        checkpoint_config=_gptq_checkpoint_config),
    RTNConfig: Method(
        step=lambda spec, config: lambda layer, index, runner, meter, progress: quantize_layer_rtn(
            layer, index, runner, meter, spec, config),
        checkpoint_config=_rtn_checkpoint_config),
    AWQConfig: Method(
        step=lambda spec, config: lambda layer, index, runner, meter, progress: quantize_layer_awq(
            layer, index, runner, meter, spec, config, progress),
        checkpoint_config=_awq_checkpoint_config),
}


def method_of(config: QuantConfig) -> Method:
    try:
        return METHODS[type(config)]
    except KeyError:
        known = ", ".join(cls.__name__ for cls in METHODS)
        raise ConfigError(f"unsupported config type {type(config).__name__}; use one of {known}") from None
