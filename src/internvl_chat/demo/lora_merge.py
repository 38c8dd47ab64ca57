"""Fold the LoRA adapters of a stage-2 export into a plain checkpoint the evaluation harness can load."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..model import InternVLChatConfig
from ..train.lora import merge_lora_checkpoint


def merge_lora_export(src: str | Path, dst: str | Path) -> Path:
    """Write `src` (an export with use_llm_lora / use_backbone_lora > 0) to `dst` with the adapters merged,
    as `internvl-chat merge-lora` does; a plain export is refused (the demo only merges what has adapters)."""
    src, dst = Path(src), Path(dst)
    config = InternVLChatConfig.from_pretrained(src)
    if not (config.use_llm_lora or config.use_backbone_lora):
        raise ValueError(f"{src} has no LoRA adapters (use_llm_lora and use_backbone_lora are 0)")
    shutil.rmtree(dst, ignore_errors=True)
    merge_lora_checkpoint(src, dst, dtype=torch.float32)  # merged in fp32 whatever the export's dtype
    return dst
