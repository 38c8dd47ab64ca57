"""Loading released checkpoints strictly, and composing a fresh chat model from the three released parts.

`load_pretrained` reads the released layout (config.json + model.safetensors or
sharded safetensors with an index; bf16/fp16/fp32) through transformers'
loader, which never executes remote code, and then insists that every key of the
checkpoint matched a parameter of ours and vice versa: a silently half-loaded
40B model is the worst failure there is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .configuration import InternVisionConfig, InternVLChatConfig
from .modeling import InternVLChatModel
from .tokenizer import add_internvl_tokens, load_tokenizer
from .vision import InternVisionModel


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


def _tied_keys(model) -> set[str]:
    return set(getattr(model, "all_tied_weights_keys", {}) or {})


def load_pretrained(cls, path, *, torch_dtype=None, dtype=None, device_map=None, strict: bool = True,
                    attn_implementation: str | None = None, **kwargs):
    path = str(path)
    if not Path(path, "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint folder (no config.json)")
    dtype = dtype if dtype is not None else torch_dtype
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    if cls is InternVLChatModel:
        from .modeling import resolve_attn_implementation

        where = _map_device(device_map)
        kwargs.setdefault("attn_implementation",
                          resolve_attn_implementation(attn_implementation, _load_dtype(path, dtype), where))
    kwargs.pop("trust_remote_code", None)  # never needed: the code is this package
    model, info = super(cls, cls).from_pretrained.__func__(cls, path, output_loading_info=True, **kwargs)
    if strict:
        _check_loading_info(path, info, allowed_missing=_tied_keys(model))
    model.eval()
    return model


def _map_device(device_map):
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


def _load_dtype(path: str, dtype):
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


def _patch_from_pretrained(cls) -> None:
    def from_pretrained(klass, path, *args, **kwargs):
        """Load a checkpoint folder of the released layout; raises if any weight is missing or unused."""
        if args:
            raise TypeError("from_pretrained takes the folder and keyword arguments only")
        return load_pretrained(klass, path, **kwargs)

    cls.from_pretrained = classmethod(from_pretrained)


_patch_from_pretrained(InternVLChatModel)
_patch_from_pretrained(InternVisionModel)


def load_mlp_projector(path) -> dict[str, torch.Tensor]:
    """The released `mlp_projector/*.pth` (a state dict of mlp1), without unpickling arbitrary objects."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k.removeprefix("mlp1."): v for k, v in sd.items()}
    expected = {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"}
    if set(sd) != expected:
        raise CheckpointMismatchError(f"{path}: expected mlp1 keys {sorted(expected)}, got {sorted(sd)}")
    return sd


def resize_for_new_tokens(llm, vocab_size: int) -> int:
    """Grow the LLM's embeddings to `vocab_size` rows as the V1.2 script did under transformers 4.37.

    New input-embedding rows: N(0, initializer_range), what 4.37's `resize_token_embeddings` drew through
    `_init_weights` (transformers 5 would default to mean-resizing). New lm_head rows: the mean of the old
    rows, which the script set explicitly. Old rows keep their values. Returns how many rows were added.
    """
    old = llm.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return 0
    llm.resize_token_embeddings(vocab_size, mean_resizing=False)
    std = float(getattr(llm.config, "initializer_range", 0.02))
    with torch.no_grad():
        llm.get_input_embeddings().weight[old:].normal_(mean=0.0, std=std)
        out = llm.get_output_embeddings()
        if out is not None and out.weight is not llm.get_input_embeddings().weight:
            out.weight[old:] = out.weight[:old].mean(dim=0, keepdim=True)
    return vocab_size - old


def compose_from_parts(vision_path, llm_path, mlp_path=None, *, template: str = "Hermes-2",
                       downsample_ratio: float = 0.5, force_image_size: int | None = None, select_layer: int = -1,
                       ps_version: str = "v1", drop_path_rate: float = 0.0, dtype=torch.bfloat16,
                       attn_implementation: str | None = None, device=None):
    """Build a chat model for fine-tuning from an InternViT folder, an LLM folder and an optional
    projector file, as the V1.2 recipe does. Returns (model, tokenizer).

    The tokenizer gets all nine InternVL special tokens (`load_tokenizer`; ids the LLM vocabulary already has
    are kept); the LLM embeddings grow to len(tokenizer) as in `resize_for_new_tokens`.
    """
    from transformers import AutoModelForCausalLM

    from .modeling import resolve_attn_implementation

    vision = InternVisionModel.from_pretrained(vision_path, dtype=dtype, drop_path_rate=drop_path_rate)
    tokenizer = load_tokenizer(llm_path, internvl_tokens=False)
    llm = AutoModelForCausalLM.from_pretrained(
        llm_path, dtype=dtype, use_safetensors=True,
        attn_implementation=resolve_attn_implementation(attn_implementation, dtype, device))
    num_new = add_internvl_tokens(tokenizer)
    if num_new > 0 or llm.get_input_embeddings().weight.shape[0] < len(tokenizer):
        resize_for_new_tokens(llm, len(tokenizer))
    llm.config.vocab_size = len(tokenizer)
    config = InternVLChatConfig(
        vision_config=vision.config.to_dict(), llm_config=llm.config.to_dict(), template=template,
        downsample_ratio=downsample_ratio, force_image_size=force_image_size or vision.config.image_size,
        select_layer=select_layer, ps_version=ps_version, pad2square=False)
    model = InternVLChatModel(config, vision_model=vision, language_model=llm)
    model.mlp1.to(dtype)
    if mlp_path is not None:
        model.mlp1.load_state_dict({k: v.to(dtype) for k, v in load_mlp_projector(mlp_path).items()})
    model.bind_tokenizer(tokenizer)
    return model, tokenizer


def read_config(path) -> InternVLChatConfig:
    with open(os.path.join(path, "config.json")) as f:
        return InternVLChatConfig(**json.load(f))


__all__ = ["load_pretrained", "compose_from_parts", "load_mlp_projector", "read_config", "CheckpointMismatchError",
           "InternVisionConfig"]
