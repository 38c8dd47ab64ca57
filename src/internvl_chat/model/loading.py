"""Composing a fresh chat model from the three released parts, and reading released files.

Strict loading of a checkpoint folder is `from_pretrained` on the model classes (strict_load.py).
"""

from __future__ import annotations

import json
import os

import torch

from .configuration import InternVisionConfig, InternVLChatConfig
from .modeling import InternVLChatModel
from .strict_load import CheckpointMismatchError
from .tokenizer import add_internvl_tokens, load_tokenizer
from .vision import InternVisionModel


def load_model(path, dtype: torch.dtype | None = None, device: str | None = None) -> InternVLChatModel:
    """The model of a checkpoint folder, strictly loaded: the one loader of chat, serve, web, eval,
    merge-lora and the demo (merge-lora reads exports that may have no tokenizer).

    `device` is a `--device` value (None / cpu, cuda, cuda:N, auto): the model is placed at load time
    (never a full copy on the host first), split over the GPUs for auto / cuda (model/device_map.py)."""
    from .device_map import resolve_device_map

    device_map = resolve_device_map(device, read_config(path).llm_config.num_hidden_layers)
    return InternVLChatModel.from_pretrained(path, dtype=dtype, device_map=device_map)


def load_model_and_tokenizer(path, dtype: torch.dtype | None = None, device: str | None = None):
    """(model, tokenizer) of a checkpoint folder: `load_model` and the folder's tokenizer."""
    return load_model(path, dtype, device), load_tokenizer(path)


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
    add_internvl_tokens(tokenizer)
    resize_for_new_tokens(llm, len(tokenizer))  # a no-op when the embeddings already have the rows
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


__all__ = ["load_model", "load_model_and_tokenizer", "compose_from_parts", "load_mlp_projector", "read_config",
           "CheckpointMismatchError", "InternVisionConfig"]
