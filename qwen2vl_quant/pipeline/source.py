"""Where the pipeline gets the model from: a model already in memory, or a directory streamed
one decoder layer at a time.

Both give the same things: a "front" model that runs up to the first decoder layer
(vision tower, merger, embeddings, rotary embeddings), the decoder layers one by one, and
the config. A directory source never materializes the whole model: decoder layers are
read from the memory-mapped shards when their turn comes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoProcessor, PretrainedConfig, PreTrainedModel

from ..arch import ArchSpec, spec_for
from ..errors import ModelLoadError
from ..model_dir import read_model_config
from .checkpoint import CheckpointReader
from .padding import pad_mlp


class RowReadingEmbedding(nn.Module):
    """An embedding table left on disk: each lookup reads the rows it needs from the shard.

    The capture stage embeds a few thousand calibration tokens; loading the whole table
    for them costs 0.47 GB of memory on Qwen2-VL-2B and 2.5 GB on 72B, more than the rows
    used by far. Row reads give the same vectors (the table is stored row-major).
    """

    def __init__(self, reader: CheckpointReader, name: str, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.reader, self.name, self.dtype, self.device = reader, name, dtype, device
        self._rows: dict[int, torch.Tensor] = {}  # cache: calibration samples share most tokens

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        unique, inverse = torch.unique(input_ids.cpu(), return_inverse=True)
        missing = torch.tensor([i for i in unique.tolist() if i not in self._rows], dtype=torch.long)
        if missing.numel():
            for i, row in zip(missing.tolist(), self.reader.get_rows(self.name, missing)):
                self._rows[i] = row
        table = torch.stack([self._rows[i] for i in unique.tolist()]).to(self.device, self.dtype)
        return table[inverse.to(self.device)]


def read_config(model_dir: str | Path) -> tuple[PretrainedConfig, ArchSpec]:
    """The model's config and spec, or a one-line ModelLoadError for a directory of a
    family we do not handle."""
    raw = read_model_config(model_dir)
    spec = spec_for(raw["model_type"])
    try:
        return AutoConfig.from_pretrained(model_dir), spec
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"{Path(model_dir) / 'config.json'} is not a valid {spec.model_type} config: {exc}") from exc


def spec_of_model(model: nn.Module) -> ArchSpec:
    return spec_for(getattr(getattr(model, "config", None), "model_type", None))


def load_processor(model_dir: str | Path) -> Any:
    """The model's processor (tokenizer + image/video processors + chat template)."""
    model_dir = Path(model_dir)
    if not (model_dir / "preprocessor_config.json").is_file() and not (model_dir / "processor_config.json").is_file():
        raise ModelLoadError(f"{model_dir} has no processor (processor_config.json or preprocessor_config.json); "
                             "copy it from the base model")
    try:
        processor = AutoProcessor.from_pretrained(model_dir)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the processor of {model_dir}: {exc}") from exc
    if getattr(processor, "chat_template", None) is None and getattr(processor.tokenizer, "chat_template", None) is None:
        raise ModelLoadError(f"{model_dir} has no chat template; copy chat_template.json from the base model")
    return processor


def build_skeleton(config: PretrainedConfig, spec: ArchSpec) -> PreTrainedModel:
    """The full module tree with every parameter on the meta device (no memory)."""
    with torch.device("meta"):
        model = spec.model_class()(config)
    return model


def rebuild_meta_buffers(model: nn.Module, device: torch.device | str = "cpu") -> None:
    """Recreate modules whose computed buffers are on meta (rotary ``inv_freq``).

    Those buffers are not in checkpoints; transformers computes them in ``__init__`` from
    the config, so a fresh module built off the meta device has the right values.
    """
    for name, module in list(model.named_modules()):
        own = [b for b in module.buffers(recurse=False) if b.is_meta]
        if not own or not name:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        with torch.device(device):
            setattr(parent, child, type(module)(module.config))


class DirectorySource:
    """Streams a checkpoint directory: front modules once, then layer by layer."""

    def __init__(self, model_dir: str | Path, dtype: torch.dtype | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.config, self.spec = read_config(self.model_dir)
        self.reader = CheckpointReader(self.model_dir, self.spec)
        self._check_tensors()
        self.skeleton = build_skeleton(self.config, self.spec)
        self.text_config = self.skeleton.config.text_config
        first = f"{self.spec.layer_prefix(0)}.{self.spec.quantized_linears[0]}.weight"
        self.dtype = dtype or self.reader.get(first).dtype
        self.num_layers = self.config.text_config.num_hidden_layers
        self._meta_embeddings: nn.Module | None = None  # the skeleton's table while front() lends a row reader
        # Set by the caller to pad every layer's MLP (pipeline/padding.py) as it is loaded.
        self.padded_intermediate_size: int | None = None

    def _check_tensors(self) -> None:
        """Before any work: the checkpoint holds exactly the tensors of the model its config
        describes, in a key style its loaders read (a mismatch found after hours of
        quantization, or a checkpoint that loads with random weights, is worse than a
        refusal now)."""
        spec = self.spec
        if self.reader.legacy_keys and not spec.saves_legacy_keys:
            raise ModelLoadError(f"{self.model_dir}: this {spec.model_type} checkpoint has the older key style "
                                 f"(model.layers.*, visual.*), which transformers loads with a random decoder; "
                                 f"save it again with transformers 5 (model.language_model.*, model.visual.*)")
        skeleton = build_skeleton(self.config, spec)
        expected = {name for name, _ in skeleton.named_parameters(remove_duplicate=False)}
        buffers = {name for name, _ in skeleton.named_buffers()}
        present = set(self.reader.names())
        # lm_head may be tied to the embeddings and then absent from the checkpoint
        missing = sorted(expected - present - ({"lm_head.weight"} if self.config.tie_word_embeddings else set()))
        if missing:
            raise ModelLoadError(f"{self.model_dir}: weights are missing from the checkpoint: {_some(missing)}")
        # Everything outside the decoder layers is copied as it is: it must belong to a module
        # the spec keeps (checked here, not when the output is assembled at the end).
        unexpected = sorted(present - expected - buffers)
        if unexpected:
            raise ModelLoadError(f"{self.model_dir}: tensors that a {spec.model_type} model does not have: "
                                 f"{_some(unexpected)}")
        outside = sorted(n for n in present if spec.layer_index_of(n) is None and not spec.is_kept(n))
        if outside:
            raise ModelLoadError(f"{self.model_dir}: tensors outside the decoder layers and the modules a "
                                 f"{spec.model_type} model keeps ({', '.join(spec.kept_modules)}): {_some(outside)}")

    def front(self, device: torch.device) -> PreTrainedModel:
        """The model with only the modules before layer 0 loaded, on ``device``; the
        embedding table stays on disk (RowReadingEmbedding)."""
        model, spec = self.skeleton, self.spec
        visual = model.get_submodule(spec.visual)
        visual.load_state_dict(_cast(self.reader.get_prefix(spec.visual), self.dtype), strict=True, assign=True)
        self._meta_embeddings = model.get_submodule(spec.embeddings)
        model.set_submodule(spec.embeddings,
                            RowReadingEmbedding(self.reader, f"{spec.embeddings}.weight", self.dtype, device))
        rebuild_meta_buffers(model, device)
        visual.to(device)
        model.eval()
        return model

    def release_front(self) -> None:
        """Drop the front modules' weights (back to meta) before the layers are streamed."""
        self.skeleton.get_submodule(self.spec.visual).to("meta")
        if self._meta_embeddings is not None:
            self.skeleton.set_submodule(self.spec.embeddings, self._meta_embeddings)
            self._meta_embeddings = None

    def layer(self, index: int) -> nn.Module:
        """Decoder layer ``index`` read from the shards, on CPU in the model dtype."""
        with torch.device("meta"):
            layer = self.spec.decoder_layer_class()(self.text_config, index)
        state = _cast(self.reader.get_prefix(self.spec.layer_prefix(index)), self.dtype)
        layer.load_state_dict(state, strict=True, assign=True)
        if self.padded_intermediate_size:
            pad_mlp(layer, self.spec, self.padded_intermediate_size)
        return layer.eval()

    def close(self) -> None:
        self.reader.close()


class ModelSource:
    """A model already in memory; its decoder layers are quantized in place."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.spec = spec_of_model(model)
        self.model = model
        self.config = model.config
        self.text_config = model.config.text_config
        self.layers = model.get_submodule(self.spec.layers_path)
        self.num_layers = len(self.layers)
        self.dtype = next(self.layers[0].parameters()).dtype

    def front(self, device: torch.device) -> PreTrainedModel:
        for prefix in self.spec.front_modules:
            self.model.get_submodule(prefix).to(device)
        self.model.eval()
        return self.model

    def release_front(self) -> None:
        pass

    def layer(self, index: int) -> nn.Module:
        return self.layers[index]

    def close(self) -> None:
        pass


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
