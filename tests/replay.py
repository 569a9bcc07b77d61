"""Shared by the capture tests (test_capture.py, test_families.py): the decoder layers
replayed on captured inputs, and the hidden states the full model computes."""

import torch


def replay(layers, inputs, deepstack=True):
    """The decoder layers run on the captured inputs; between layers, what the text model adds
    (Qwen3-VL's DeepStack features) unless ``deepstack`` is False."""
    outputs = []
    with torch.inference_mode():
        for sample in inputs:
            for index, layer in enumerate(layers):
                hidden = layer(sample.hidden, **sample.kwargs)
                sample = sample.next(hidden, index) if deepstack else type(sample)(hidden, sample.kwargs,
                                                                                  sample.token_mask)
            outputs.append(sample.hidden)
    return outputs


def reference_hidden(model, samples):
    """The input of the final norm in the model's own forward: the last layer's output."""
    final = []
    handle = model.model.language_model.norm.register_forward_pre_hook(lambda m, args: final.append(args[0]))
    try:
        with torch.inference_mode():
            for sample in samples:
                model(**sample.inputs, use_cache=False)
    finally:
        handle.remove()
    return final
