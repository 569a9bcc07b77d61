"""Drive vLLM's own loading path on a machine without a GPU (issue 14, DESIGN.md section 4).

Everything that decides anything here is vLLM's code: ``EngineArgs.create_engine_config``
detects the quantization method, the model class builds its layers and asks
``quant_config.get_quant_method`` for each, ``choose_mp_linear_kernel`` picks a kernel,
``DefaultModelLoader.load_model`` reads the safetensors and calls the model's own
``load_weights``, and ``DefaultModelLoader.track_weights_loading`` checks that every
parameter was filled. What this module adds, and why (vLLM 0.33.0 file:line in brackets):

1. ``VLLM_TARGET_DEVICE=cpu`` before vLLM is imported, so the config is built for the CPU
   platform (vllm/platforms/__init__.py resolves the platform from it).
2. The platform answers as CUDA with a chosen compute capability *only* while
   ``get_quant_method`` runs and while the returned method's ``create_weights`` runs
   (``as_cuda``). Otherwise the CPU platform picks its own methods and kernels
   (auto_awq.py:307 CPU branch, kernels/linear/__init__.py:560 CPU kernel list,
   mixed_precision/marlin.py:38 "Marlin only supported on CUDA"). The rest of the model
   (vision attention backend, norms) is built for the CPU. The patch is on the platform
   class because ``has_device_capability``/``is_device_capability`` are classmethods that
   call ``cls.get_device_capability`` (platforms/interface.py:531-575).
3. Custom ops missing from the CUDA wheel on a CPU machine (``torch.ops._C.gelu_quick``,
   looked up in ``QuickGELU.__init__``, activation.py:632) are defined as stubs that raise
   if called: loading never calls them.
4. Strict weight tracking is switched on with vLLM's own switch,
   ``model_loader_extra_config={"enable_weights_track": True}`` (default_loader.py:131);
   by default vLLM turns it on only for unquantized models (default_loader.py:512-519).
5. ``process_weights_after_loading`` (the Marlin/Machete repacking, which needs CUDA ops)
   is skipped by replacing the name ``base_loader.process_weights_after_loading``
   (imported at base_loader.py:17, called at base_loader.py:109) for the duration of one load.
6. A single-process gloo "distributed" environment, as vLLM's CPU worker makes one; for
   tensor-parallel rank r of N, the TP GroupCoordinator's ``world_size``/``rank_in_group``
   (what get_tensor_model_parallel_world_size/rank return, parallel_state.py:2472-2479)
   are set to N/r while the model is built and loaded, so vLLM's own layers shard
   themselves and their weight loaders narrow the checkpoint tensors.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")

import torch  # noqa: E402

H100 = (9, 0)
A100 = (8, 0)
# The model families of the tier (config.json model_type); make_checkpoints.py names the
# checkpoints of the newer two "{family}-{name}".
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


def family_checkpoint(family: str, name: str) -> str:
    """The folder of checkpoint ``name`` (e.g. "gptq-int4") of ``family`` (make_checkpoints.py)."""
    return name if family == "qwen2_vl" else f"{family}-{name}"


UNQUANTIZED_METHODS = ("UnquantizedLinearMethod", "UnquantizedEmbeddingMethod")
# Ops the models we load look up at construction time; stubbed only when missing.
STUBBED_OPS = ("gelu_quick",)

_stub_library = None
stubbed: list[str] = []


def stub_missing_custom_ops() -> list[str]:
    """Define the custom ops vLLM's layers look up at construction, if this build lacks them."""
    global _stub_library
    import vllm  # noqa: F401  (loads whatever custom-op libraries this build has)

    for name in STUBBED_OPS:
        if hasattr(torch.ops._C, name) or name in stubbed:
            continue
        if _stub_library is None:
            _stub_library = torch.library.Library("_C", "FRAGMENT")
        _stub_library.define(f"{name}(Tensor(a!) out, Tensor input) -> ()")

        def impl(out, x, _name=name):
            raise NotImplementedError(f"torch.ops._C.{_name} is a loading-only stub (no GPU here)")

        _stub_library.impl(name, impl, "CompositeExplicitAutograd")
        stubbed.append(name)
    return stubbed


@contextlib.contextmanager
def as_cuda(capability: tuple[int, int]) -> Iterator[None]:
    """Make vLLM's platform object answer as a CUDA GPU of this compute capability."""
    from vllm.platforms import PlatformEnum, current_platform
    from vllm.platforms.interface import DeviceCapability

    cls = type(current_platform)
    saved = {name: cls.__dict__[name] for name in ("_enum", "get_device_capability") if name in cls.__dict__}
    cls._enum = PlatformEnum.CUDA
    cls.get_device_capability = classmethod(lambda c, device_id=0: DeviceCapability(*capability))
    try:
        yield
    finally:
        for name in ("_enum", "get_device_capability"):
            if name in saved:
                setattr(cls, name, saved[name])
            else:
                delattr(cls, name)


_distributed_ready = False


def init_single_process_distributed(vllm_config) -> None:
    """World of one (gloo), as vLLM's CPU worker sets up; once per process."""
    global _distributed_ready
    if _distributed_ready:
        return
    from vllm.config import set_current_vllm_config
    from vllm.distributed import init_distributed_environment, initialize_model_parallel

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with set_current_vllm_config(vllm_config):
        init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo",
                                     distributed_init_method=f"tcp://127.0.0.1:{port}")
        initialize_model_parallel(1, 1)
    _distributed_ready = True


@contextlib.contextmanager
def tensor_parallel_rank(size: int, rank: int) -> Iterator[None]:
    """Make vLLM's TP group report ``size`` ranks with this process as ``rank``."""
    from vllm.distributed import parallel_state

    group = parallel_state.get_tp_group()
    saved = group.world_size, group.rank_in_group
    group.world_size, group.rank_in_group = size, rank
    try:
        yield
    finally:
        group.world_size, group.rank_in_group = saved


def engine_config(model_dir: str | Path, *, tensor_parallel: int = 1, track_weights: bool = True, **kwargs):
    """vLLM's own ``EngineArgs(...).create_engine_config()`` for a local checkpoint."""
    from vllm.engine.arg_utils import EngineArgs

    args = dict(model=str(model_dir), dtype="bfloat16", max_model_len=1024, enforce_eager=True,
                tensor_parallel_size=tensor_parallel, load_format="safetensors",
                model_loader_extra_config={"enable_weights_track": track_weights},
                limit_mm_per_prompt={"image": 1, "video": 0})
    args.update(kwargs)
    return EngineArgs(**args).create_engine_config()


@dataclass
class LoadResult:
    """What vLLM built: quant method and kernel per layer prefix; the loaded model."""

    vllm_config: Any
    capability: tuple[int, int]
    methods: dict[str, str] = field(default_factory=dict)  # prefix -> quant method class name
    kernels: dict[str, str] = field(default_factory=dict)  # prefix -> MPLinearKernel class name
    model: Any = None
    skipped_repacking: int = 0
    checkpoint_tensors: list[str] = field(default_factory=list)  # as yielded by vLLM's reader
    unconsumed: list[str] = field(default_factory=list)  # yielded but never given to a weight loader
    unfilled: dict[str, int] = field(default_factory=dict)  # parameter -> elements never written


def _cuda_answering_quant_config(quant_config, capability, result: LoadResult):
    """A copy of the quant config whose get_quant_method (and the create_weights of what it
    returns) run with the platform answering as CUDA; it records each layer's method."""
    quant_config = copy.copy(quant_config)
    original = type(quant_config).get_quant_method

    def get_quant_method(layer, prefix):
        with as_cuda(capability):
            method = original(quant_config, layer, prefix)
        if method is None:
            return None
        result.methods[prefix] = type(method).__name__
        if type(method).__name__ not in UNQUANTIZED_METHODS:
            create = method.create_weights

            def create_weights(*args, **kwargs):
                with as_cuda(capability):
                    return create(*args, **kwargs)

            method.create_weights = create_weights
        return method

    quant_config.get_quant_method = get_quant_method
    return quant_config


# Parameters are pre-filled with these before loading; whatever still holds them afterwards
# was never written by a weight loader. Floats: NaN (no valid checkpoint holds one). Packed
# int32 words can hold any value, so an int32 element counts as unfilled only if it keeps
# the sentinel in two loads with different sentinels (the checkpoint bytes are the same).
INT_SENTINELS = (-0x2152_4111, 0x1BAD_F00D)


def _fill_sentinels(model, int_sentinel: int) -> None:
    with torch.no_grad():
        for param in model.parameters():
            if param.is_floating_point():
                param.data.fill_(float("nan"))
            elif param.dtype in (torch.int32, torch.int64):
                param.data.fill_(int_sentinel)


def _unfilled(model, int_sentinel: int) -> dict[str, tuple[int, bool]]:
    """parameter -> (elements still holding the sentinel, whether it is a float parameter)."""
    out = {}
    for name, param in model.named_parameters():
        if param.is_floating_point():
            count = int(torch.isnan(param.data).sum())
        elif param.dtype in (torch.int32, torch.int64):
            count = int((param.data == int_sentinel).sum())
        else:
            continue
        if count:
            out[name] = (count, param.is_floating_point())
    return out


def _instrument(loader, result: "LoadResult", int_sentinel: int) -> None:
    """Record every tensor vLLM's reader yields and every tensor a weight loader receives;
    pre-fill the parameters with sentinels just before vLLM loads into them."""
    yielded: dict[str, int] = {}  # checkpoint name (as read) -> storage address
    received: set[int] = set()
    get_all_weights, load_weights = loader.get_all_weights, loader.load_weights

    def recording_get_all_weights(model_config, model):
        for name, tensor in get_all_weights(model_config, model):
            yielded[name] = tensor.untyped_storage().data_ptr()
            yield name, tensor

    def wrap(weight_loader):
        def recording_weight_loader(param, loaded_weight, *args, **kwargs):
            received.add(loaded_weight.untyped_storage().data_ptr())
            return weight_loader(param, loaded_weight, *args, **kwargs)

        return recording_weight_loader

    def filling_load_weights(model, model_config):
        from vllm.model_executor.model_loader.weight_utils import default_weight_loader

        _fill_sentinels(model, int_sentinel)
        for param in model.parameters():
            param.weight_loader = wrap(getattr(param, "weight_loader", default_weight_loader))
        result.model = model
        try:
            return load_weights(model, model_config)
        finally:
            result.checkpoint_tensors = sorted(yielded)
            result.unconsumed = sorted(n for n, ptr in yielded.items() if ptr not in received)

    loader.get_all_weights = recording_get_all_weights
    loader.load_weights = filling_load_weights


def load_with_vllm(model_dir: str | Path, *, capability: tuple[int, int] = H100, tp_size: int = 1,
                   tp_rank: int = 0, track_weights: bool = True, load_weights: bool = True,
                   vllm_config=None) -> LoadResult:
    """Build the model as vLLM does on a GPU of ``capability`` (TP rank ``tp_rank`` of
    ``tp_size``) and load the checkpoint through ``DefaultModelLoader.load_model`` with
    strict weight tracking; the GPU repacking step is skipped. Raises what vLLM raises.

    Besides vLLM's own per-parameter tracking, ``result.unfilled`` lists parameters with
    elements no weight loader wrote (vLLM counts a fused qkv/gate_up parameter as loaded
    once any one of its shards is), and ``result.unconsumed`` the checkpoint tensors
    vLLM's reader yielded but no weight loader received (e.g. ignored ".bias" tensors)."""
    if vllm_config is None:
        vllm_config = engine_config(model_dir, tensor_parallel=tp_size, track_weights=track_weights)
    result, unfilled = _load(capability, tp_size, tp_rank, load_weights, vllm_config, INT_SENTINELS[0])
    if any(not is_float for _, is_float in unfilled.values()):
        # Confirm int32 elements with a second sentinel (see INT_SENTINELS).
        config2 = engine_config(model_dir, tensor_parallel=tp_size, track_weights=track_weights)
        _, again = _load(capability, tp_size, tp_rank, load_weights, config2, INT_SENTINELS[1])
        unfilled = {n: c for n, c in unfilled.items() if c[1] or n in again}
    result.unfilled = {n: count for n, (count, _) in unfilled.items()}
    return result


def _load(capability, tp_size, tp_rank, load_weights, vllm_config, int_sentinel):
    import vllm.model_executor.model_loader.base_loader as base_loader
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader import get_model_loader

    stub_missing_custom_ops()
    init_single_process_distributed(vllm_config)
    result = LoadResult(vllm_config=vllm_config, capability=capability)
    if vllm_config.quant_config is not None:
        vllm_config.quant_config = _cuda_answering_quant_config(vllm_config.quant_config, capability, result)

    def skip_repacking(model, model_config, target_device):
        result.skipped_repacking += 1

    saved = base_loader.process_weights_after_loading
    base_loader.process_weights_after_loading = skip_repacking
    try:
        with set_current_vllm_config(vllm_config), tensor_parallel_rank(tp_size, tp_rank):
            loader = get_model_loader(vllm_config.load_config)
            unfilled = {}
            if load_weights:
                _instrument(loader, result, int_sentinel)
                model = loader.load_model(vllm_config, vllm_config.model_config)
                unfilled = _unfilled(model, int_sentinel)
            else:  # shapes, methods and kernels only: no memory, no weights
                with torch.device("meta"):
                    model = loader.create_model(vllm_config, vllm_config.model_config)
    finally:
        base_loader.process_weights_after_loading = saved
    result.model = model
    for name, module in model.named_modules():
        kernel = getattr(getattr(module, "quant_method", None), "kernel", None)
        if kernel is not None:
            result.kernels[name] = type(kernel).__name__
    return result, unfilled


# ---------------------------------------------------------------------------------------------
# Checks. Each returns a list of problems (empty: fine), so that the tests of good
# checkpoints assert [] and the tests of planted bugs assert that the same check reports them.
# ---------------------------------------------------------------------------------------------

def linear_prefixes(model) -> dict[str, Any]:
    """Every Linear vLLM built (LinearBase), by prefix."""
    from vllm.model_executor.layers.linear import LinearBase

    return {name: module for name, module in model.named_modules() if isinstance(module, LinearBase)}


def expected_vision_linears(hf_config) -> set[str]:
    """Every Linear of the family's vision tower and mergers, as vLLM 0.33 names them
    (models/qwen2_vl.py, qwen2_5_vl.py, qwen3_vl.py; q/k/v already packed as ``attn.qkv``,
    Qwen2.5-VL's gate/up fused as ``mlp.gate_up_proj``)."""
    vision = hf_config.vision_config
    blocks = {
        "qwen2_vl": ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"),
        "qwen2_5_vl": ("attn.qkv", "attn.proj", "mlp.gate_up_proj", "mlp.down_proj"),
        "qwen3_vl": ("attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2"),
    }[hf_config.model_type]
    out = {f"visual.blocks.{i}.{leaf}" for i in range(vision.depth) for leaf in blocks}
    if hf_config.model_type == "qwen3_vl":
        out |= {"visual.merger.linear_fc1", "visual.merger.linear_fc2"}
        out |= {f"visual.deepstack_merger_list.{j}.linear_fc{k}"
                for j in range(len(vision.deepstack_visual_indexes)) for k in (1, 2)}
    else:
        out |= {"visual.merger.mlp.0", "visual.merger.mlp.2"}
    return out


def vision_problems(result: LoadResult) -> list[str]:
    """Every vision Linear (visual.*: blocks, merger, Qwen3-VL's DeepStack mergers) must have
    an unquantized method: both the method vLLM chose while building, and what
    ``quant_config.get_quant_method`` answers now; and vLLM must have built exactly the
    family's vision Linears (``expected_vision_linears``)."""
    problems = []
    linears = {p: m for p, m in linear_prefixes(result.model).items() if p.startswith("visual.")}
    if not linears:
        problems.append("vLLM built no vision Linear (visual.*)")
    expected = expected_vision_linears(result.vllm_config.model_config.hf_config)
    if set(linears) != expected:
        problems.append(f"vision Linears {sorted(set(linears) ^ expected)} differ from the family's layout")
    quant_config = result.vllm_config.quant_config
    for prefix, module in sorted(linears.items()):
        built = type(module.quant_method).__name__
        with as_cuda(result.capability):
            asked = type(quant_config.get_quant_method(module, prefix)).__name__
        for what, name in (("built with", built), ("get_quant_method answers", asked)):
            if name not in UNQUANTIZED_METHODS:
                problems.append(f"{prefix}: {what} {name}")
    return problems


def decoder_problems(result: LoadResult, expected_method: str) -> list[str]:
    """Every decoder Linear must be quantized with ``expected_method``; nothing else may be."""
    problems = []
    linears = linear_prefixes(result.model)
    decoder = {p for p in linears if p.startswith("language_model.model.layers.")}
    layers = result.vllm_config.model_config.hf_text_config.num_hidden_layers
    expected = {f"language_model.model.layers.{i}.{leaf}" for i in range(layers)
                for leaf in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")}
    if decoder != expected:
        problems.append(f"decoder Linears {sorted(decoder ^ expected)} differ from the Qwen2/Qwen3 layout")
    for prefix in sorted(decoder):
        name = type(linears[prefix].quant_method).__name__
        if name != expected_method:
            problems.append(f"{prefix}: {name}, expected {expected_method}")
    for prefix in sorted(set(linears) - decoder - {p for p in linears if p.startswith("visual.")}):
        name = type(linears[prefix].quant_method).__name__
        if name not in UNQUANTIZED_METHODS:
            problems.append(f"{prefix} (outside the decoder layers) is quantized: {name}")
    return problems


def load_problems(result: LoadResult, dropped_suffixes: tuple[str, ...] = ()) -> list[str]:
    """After a strict load: the repacking was the only thing skipped, every parameter element
    was written, every checkpoint tensor reached a weight loader (except those vLLM drops
    on purpose, e.g. GPTQ's g_idx)."""
    problems = []
    if result.skipped_repacking != 1:
        problems.append(f"process_weights_after_loading reached {result.skipped_repacking} times, expected once")
    for name, count in sorted(result.unfilled.items()):
        problems.append(f"{name}: {count} elements never written by a weight loader")
    for name in result.unconsumed:
        if not name.endswith(dropped_suffixes):
            problems.append(f"checkpoint tensor {name} was read but never loaded")
    if not result.checkpoint_tensors:
        problems.append("vLLM read no tensor at all")
    return problems


def kernel_problems(result: LoadResult) -> list[str]:
    """The kernel vLLM picks for every quantized decoder Linear: Machete on an H100 (9.0),
    Marlin on an A100 (8.0); anything else is a slow or unsafe fallback."""
    wanted = {H100: "MacheteLinearKernel", A100: "MarlinLinearKernel"}[result.capability]
    problems = []
    quantized = {p for p, m in result.methods.items() if m not in UNQUANTIZED_METHODS}
    if not quantized:
        problems.append("no quantized Linear")
    for prefix in sorted(quantized):
        kernel = result.kernels.get(prefix)
        if kernel != wanted:
            problems.append(f"{prefix}: {kernel} on capability {result.capability}, expected {wanted}")
    return problems


def tp_shape_problems(result: LoadResult) -> list[str]:
    """vLLM's own shape rules on each quantized Linear's slice on this rank: the strict Marlin
    check (output slice % 64, input slice % 128 and % group: ``check_marlin_supports_shape``),
    no runtime tile padding (``marlin_padded_nk`` leaves the shape alone), and the
    ``can_implement`` of Marlin and Machete on the layer's own kernel config."""
    from vllm.model_executor.kernels.linear.mixed_precision.machete import MacheteLinearKernel
    from vllm.model_executor.kernels.linear.mixed_precision.marlin import MarlinLinearKernel
    from vllm.model_executor.layers.quantization.utils.marlin_utils import (
        check_marlin_supports_shape,
        marlin_padded_nk,
    )

    problems = []
    linears = linear_prefixes(result.model)
    for prefix in sorted(p for p, m in result.methods.items() if m not in UNQUANTIZED_METHODS):
        layer = linears[prefix]
        config = layer.quant_method.kernel.config
        k, n = config.partition_weight_shape
        ok, why = check_marlin_supports_shape(n, k, layer.input_size, config.group_size)
        if not ok:
            problems.append(f"{prefix} (K {k}, N {n} per GPU): {why}")
        if marlin_padded_nk(n, k, config.group_size) != (n, k):
            problems.append(f"{prefix} (K {k}, N {n} per GPU): Marlin would pad it to "
                            f"{marlin_padded_nk(n, k, config.group_size)}")
        for kernel, capability in ((MarlinLinearKernel, A100), (MacheteLinearKernel, H100)):
            with as_cuda(capability):
                ok, why = kernel.can_implement(config)
            if not ok:
                problems.append(f"{prefix} (K {k}, N {n} per GPU): {kernel.__name__}: {why}")
    return problems


def unpack_int32(packed: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """int32 words -> the ``32 // bits`` values each holds (value i at bits i*bits), along dim."""
    per = 32 // bits
    shifts = torch.arange(per, dtype=torch.int64) * bits
    words = packed.to(torch.int64) & 0xFFFFFFFF
    if dim == 1:
        values = (words.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
        return values.reshape(packed.shape[0], -1)
    values = (words.unsqueeze(1) >> shifts.view(1, per, 1)) & ((1 << bits) - 1)
    return values.reshape(-1, packed.shape[1])


def checkpoint_tensors(model_dir: str | Path, suffix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint folder whose key ends with ``suffix``, read with safetensors."""
    from safetensors import safe_open

    out = {}
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            for key in f.keys():
                if key.endswith(suffix):
                    out[key] = f.get_tensor(key)
    return out


def sym_qzeros_problems(model_dir: str | Path, result: LoadResult) -> list[str]:
    """Symmetric GPTQ: vLLM never reads qzeros (its kernels get ``zero_points=False`` and
    the weight type ``uint4b8``/``uint8b128``, i.e. the zero is the type's bias, the
    midpoint). A checkpoint must then store exactly that midpoint, in the format its config
    declares: GPTQ v1 (``checkpoint_format: gptq``) stores zero - 1. Otherwise transformers,
    GPTQModel and vLLM would dequantize the same file differently."""
    quant_config = result.vllm_config.quant_config
    problems = []
    if not quant_config.is_sym:
        return ["not a symmetric GPTQ checkpoint"]
    hf_quant = result.vllm_config.model_config.hf_config.quantization_config
    fmt = hf_quant.get("checkpoint_format", "gptq")
    bias = quant_config.quant_type.bias  # vLLM's midpoint: 8 for uint4b8, 128 for uint8b128
    expected = {"gptq": bias - 1, "gptq_v2": bias}.get(fmt)
    if expected is None:
        return [f"unknown checkpoint_format {fmt!r}"]
    linears = linear_prefixes(result.model)
    for prefix, name in result.methods.items():
        if name in UNQUANTIZED_METHODS:
            continue
        if linears[prefix].quant_method.kernel.config.zero_points:
            problems.append(f"{prefix}: vLLM reads zero points for this sym checkpoint")
    qzeros = checkpoint_tensors(model_dir, ".qzeros")
    if not qzeros:
        problems.append("no qzeros tensor in the checkpoint")
    for key, packed in sorted(qzeros.items()):
        values = unpack_int32(packed, quant_config.quant_type.size_bits, dim=1)
        wrong = int((values != expected).sum())
        if wrong:
            found = sorted(set(values.flatten().tolist()))[:5]
            problems.append(f"{key}: {wrong}/{values.numel()} zero points are not {expected} "
                            f"(midpoint {bias}, format {fmt}); found {found}")
    return problems


def g_idx_problems(model_dir: str | Path, group_size: int) -> list[str]:
    """vLLM drops g_idx (base_config.py get_checkpoint_weight_mapper), i.e. it assumes
    g_idx[k] = k // group_size. Any other g_idx would load as wrong scales."""
    problems = []
    tensors = checkpoint_tensors(model_dir, ".g_idx")
    for key, g_idx in sorted(tensors.items()):
        trivial = torch.arange(g_idx.numel(), dtype=torch.int64) // group_size
        wrong = int((g_idx.to(torch.int64) != trivial).sum())
        if wrong:
            problems.append(f"{key}: {wrong}/{g_idx.numel()} entries are not k // {group_size}")
    return problems


# vLLM fuses these checkpoint Linears into one parameter (the packed_modules_mapping of
# Qwen2-VL, Qwen2.5-VL and Qwen3-VL alike).
FUSED = {"self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
         "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj")}


def value_problems(model_dir: str | Path, result: LoadResult) -> list[str]:
    """At tensor-parallel 1, every quantized parameter vLLM loaded equals the checkpoint's
    tensors (concatenated along the output dimension for fused Linears; scales in the
    model dtype): nothing was transposed, reordered or cut on the way."""
    tensors = checkpoint_tensors(model_dir)
    legacy = not any(k.startswith("model.language_model.") for k in tensors)
    problems = []
    params = dict(result.model.named_parameters())
    for prefix, name in sorted(result.methods.items()):
        if name in UNQUANTIZED_METHODS or not prefix.startswith("language_model.model.layers."):
            continue
        ckpt_prefix = prefix.replace("language_model.model.", "model." if legacy else "model.language_model.")
        layer_prefix, leaf = ckpt_prefix.rsplit(".", 2)[0], ".".join(ckpt_prefix.rsplit(".", 2)[1:])
        parts = FUSED.get(leaf, (leaf,))
        for tensor_name in ("qweight", "qzeros", "scales"):
            loaded = params[f"{prefix}.{tensor_name}"].data
            pieces = [tensors[f"{layer_prefix}.{p}.{tensor_name}"] for p in parts]
            expected = torch.cat(pieces, dim=1).to(loaded.dtype)
            if loaded.shape != expected.shape or not torch.equal(loaded, expected):
                problems.append(f"{prefix}.{tensor_name}: loaded {tuple(loaded.shape)} differs from the "
                                f"checkpoint's {tuple(expected.shape)}")
    return problems
