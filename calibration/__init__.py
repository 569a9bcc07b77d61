"""Calibration data for qwen2vl-quant: from whatever the user has to bounded per-sample inputs.

    sources.py       one ``calib_data`` value -> indexed sources (files, folders, hf:, lists)
    conversations.py the Qwen2-VL message format      sharegpt.py   LLaMA-Factory's format
    hf.py            Hugging Face datasets             image_folder.py  a folder of images
    media.py         images                            video.py      videos (PyAV) and frame lists
    budget.py        visual tokens per sample          tokens.py     the max_length rule
    process.py       one conversation -> processor outputs
    batches.py       selection, skipping, the summary: ``build_samples`` / ``iter_samples``

Public names are imported lazily (PEP 562), so importing ``HFDataset`` does not load torch.
"""

from importlib import import_module

_EXPORTS = {
    "build_samples": "batches",
    "iter_samples": "batches",
    "CalibrationSample": "batches",
    "CalibrationSummary": "batches",
    "HFDataset": "hf",
    "CalibrationDataError": "errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
