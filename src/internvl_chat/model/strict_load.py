"""Strict checkpoint loading, defined on the model classes (`StrictLoading.from_pretrained`).

transformers' loader reads the released layout (config.json + model.safetensors or sharded
safetensors with an index) and never executes remote code; on top of it we insist that every key
of the checkpoint matched a parameter of ours and vice versa: a silently half-loaded 40B model is
the worst failure there is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


class CheckpointMismatchError(RuntimeError):
    pass


def _check_loading_info(path, info: dict, allowed_missing=()) -> None:
    missing = [k for k in info.get("missing_keys", []) if k not in allowed_missing]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        def show(keys):
            keys = sorted(map(str, keys))
            return ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8} more)" if len(keys) > 8 else "")
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {show(missing)}")
        if unexpected:
            parts.append(f"not used by the model: {show(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch: {show(mismatched)}")
        raise CheckpointMismatchError(f"checkpoint {path} does not match the model; " + "; ".join(parts))


def map_device(device_map):
    """Where a device map puts the LLM: the first device it names (None: the CPU)."""
    if device_map is None:
        return None
    if isinstance(device_map, dict):
        devices = [d for d in device_map.values() if d not in ("cpu", "disk")]
        first = devices[0] if devices else "cpu"
    else:
        first = device_map
    if isinstance(first, int):
        return torch.device("cuda", first)
    if first in ("auto", "balanced", "sequential", "balanced_low_0"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(first)


def load_dtype(path: str, dtype):
    """The dtype the weights will have after loading: the requested one, else the checkpoint's own."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    saved = cfg.get("dtype") or cfg.get("torch_dtype") or (cfg.get("llm_config") or {}).get("dtype") \
        or (cfg.get("llm_config") or {}).get("torch_dtype")
    return getattr(torch, saved) if isinstance(saved, str) else torch.float32


class StrictLoading:
    """Mixin for our PreTrainedModel classes: `from_pretrained` loads a checkpoint folder of the released
    layout and raises `CheckpointMismatchError` if any weight is missing, unused or of another shape."""

    @classmethod
    def loading_kwargs(cls, path: str, dtype, device_map, attn_implementation: str | None) -> dict:
        """Extra keyword arguments for transformers' loader (the chat model picks its attention here)."""
        del path, dtype, device_map, attn_implementation
        return {}

    @classmethod
    def from_pretrained(cls, path, *args, torch_dtype=None, dtype=None, device_map=None, strict: bool = True,
                        attn_implementation: str | None = None, **kwargs):
        """Load a checkpoint folder of the released layout; raises if any weight is missing or unused."""
        if args:
            raise TypeError("from_pretrained takes the folder and keyword arguments only")
        return _load(cls, str(path), dtype if dtype is not None else torch_dtype, device_map, strict,
                     attn_implementation, kwargs)


def _load(cls, path: str, dtype, device_map, strict: bool, attn_implementation, kwargs: dict):
    if not Path(path, "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint folder (no config.json)")
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    for key, value in cls.loading_kwargs(path, dtype, device_map, attn_implementation).items():
        kwargs.setdefault(key, value)
    kwargs.pop("trust_remote_code", None)  # never needed: the code is this package
    model, info = super(StrictLoading, cls).from_pretrained(path, output_loading_info=True, **kwargs)
    if strict:
        _check_loading_info(path, info, allowed_missing=set(getattr(model, "all_tied_weights_keys", {}) or {}))
    model.eval()
    return model
