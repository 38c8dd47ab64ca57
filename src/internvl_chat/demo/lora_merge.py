"""Fold the LoRA adapters of a stage-2 export into a plain checkpoint the evaluation harness can load.

Why not `internvl-chat merge-lora`: it loads the export with `from_pretrained`, and
transformers' tied-weight resolution fails when the LLM ties its embeddings
(SmolLM2 does; Yi does not) and sits inside a PEFT wrapper
("LlamaForCausalLM has no attribute `embed_tokens`"). Here the wrapped model is
built from the config, the saved tensors are loaded strictly (only the tied
lm_head may be absent from the file), and the adapters are merged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..model import CheckpointMismatchError, InternVLChatConfig, InternVLChatModel
from ..train.lora import merge_lora


def _read_state_dict(src: Path) -> dict[str, torch.Tensor]:
    index = src / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(src / name)))
    return state


def merge_lora_export(src: str | Path, dst: str | Path) -> Path:
    """Write `src` (an export with use_llm_lora / use_backbone_lora > 0) to `dst` with the adapters merged."""
    src, dst = Path(src), Path(dst)
    config = InternVLChatConfig.from_pretrained(src)
    llm_r, vit_r = int(config.use_llm_lora or 0), int(config.use_backbone_lora or 0)
    if not (llm_r or vit_r):
        raise ValueError(f"{src} has no LoRA adapters (use_llm_lora and use_backbone_lora are 0)")
    config.use_llm_lora = config.use_backbone_lora = 0
    model = InternVLChatModel(config)
    if vit_r:
        model.wrap_backbone_lora(r=vit_r, lora_alpha=2 * vit_r)
    if llm_r:
        model.wrap_llm_lora(r=llm_r, lora_alpha=2 * llm_r)
    missing, unexpected = model.load_state_dict(_read_state_dict(src), strict=False)
    tied = config.llm_config.tie_word_embeddings
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise CheckpointMismatchError(f"{src}: LoRA export does not match its config "
                                      f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    head, emb = model.language_model.get_output_embeddings(), model.language_model.get_input_embeddings()
    if tied and head.weight.data_ptr() != emb.weight.data_ptr():
        raise CheckpointMismatchError(f"{src}: tie_word_embeddings is set but lm_head is not tied after loading")
    merge_lora(model)
    shutil.rmtree(dst, ignore_errors=True)
    model.save_pretrained(dst)
    for f in src.iterdir():  # tokenizer files, chat template
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template", "added_tokens")):
            shutil.copy2(f, dst / f.name)
    return dst
