"""What trains: the original's freeze flags, LoRA through PEFT, and merging adapters back.

Order follows V1.2's fine-tune script: freeze the ViT / LLM, unfreeze the
lm_head, wrap LoRA (PEFT freezes the wrapped base weights itself), freeze the
projector, then unfreeze ViT layers `layers[unfreeze_vit_layers:]` (a negative
value means the last N layers, as in the original's slicing).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .config import TuneConfig


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def unwrapped(module: nn.Module) -> nn.Module:
    """The module inside a PEFT (LoRA) wrapper, or the module itself."""
    return module.get_base_model() if hasattr(module, "get_base_model") else module


def apply_tuning(model, tune: TuneConfig) -> None:
    """Set requires_grad (and wrap LoRA) on `model` in place according to the tune.* flags."""
    if tune.freeze_backbone:
        _freeze(model.vision_model)
    if tune.freeze_llm:
        _freeze(model.language_model)
    if tune.unfreeze_lm_head:
        head = model.language_model.get_output_embeddings()
        if head is None:
            raise ValueError("tune.unfreeze_lm_head: the language model has no output embeddings (lm_head)")
        for p in head.parameters():
            p.requires_grad_(True)
    if tune.use_backbone_lora:
        model.wrap_backbone_lora(r=tune.use_backbone_lora, lora_alpha=2 * tune.use_backbone_lora,
                                 lora_dropout=tune.lora_dropout)
        model.config.use_backbone_lora = tune.use_backbone_lora
    if tune.use_llm_lora:
        model.wrap_llm_lora(r=tune.use_llm_lora, lora_alpha=2 * tune.use_llm_lora, lora_dropout=tune.lora_dropout)
        model.config.use_llm_lora = tune.use_llm_lora
    if tune.freeze_mlp:
        _freeze(model.mlp1)
    if tune.unfreeze_vit_layers:
        for layer in unwrapped(model.vision_model).encoder.layers[tune.unfreeze_vit_layers:]:
            for name, p in layer.named_parameters():
                # With backbone LoRA the base weights stay frozen; only plain layers are unfrozen.
                if "base_layer" not in name:
                    p.requires_grad_(True)


def set_frozen_eval(model, tune: TuneConfig) -> None:
    """Frozen towers run in eval mode (no drop path / dropout), as the original does."""
    if tune.freeze_backbone and not tune.use_backbone_lora and not tune.unfreeze_vit_layers:
        model.vision_model.eval()
    if tune.freeze_llm and not tune.use_llm_lora and not tune.unfreeze_lm_head:
        model.language_model.eval()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) element counts (of the full tensors, also under FSDP)."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()  # a DTensor reports its global size
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def merge_lora(model) -> bool:
    """Fold LoRA adapters into the base weights in place; returns whether there was anything to merge."""
    merged = False
    for tower, flag in (("vision_model", "use_backbone_lora"), ("language_model", "use_llm_lora")):
        if hasattr(getattr(model, tower), "merge_and_unload"):  # a PEFT wrapper
            setattr(model, tower, getattr(model, tower).merge_and_unload())
            setattr(model.config, flag, 0)
            merged = True
    return merged


def merge_lora_checkpoint(src: str | Path, dst: str | Path, max_shard_size: str = "5GB", dtype=None) -> bool:
    """Load a LoRA-trained export (in `dtype`, default as saved), merge the adapters and write a plain
    checkpoint (+ tokenizer)."""
    from ..model.loading import load_model
    from ..model.tokenizer import load_tokenizer

    model = load_model(src, dtype)
    merged = merge_lora(model)
    model.save_pretrained(dst, max_shard_size=max_shard_size)
    if any(Path(src).glob("tokenizer*")):
        load_tokenizer(src).save_pretrained(dst)
    return merged
