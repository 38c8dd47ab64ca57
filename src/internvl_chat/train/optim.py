"""AdamW with decoupled weight decay on weight matrices only, and a warmup + cosine schedule.

The released V1.2 run let DeepSpeed decay every parameter (norms, biases, layer
scales). We follow the issue's recipe instead: decay applies to weight matrices
(linear / conv / embedding `.weight`s), the usual practice, because pulling
RMSNorm gains, ViT layer scales or position tables towards zero is harmful.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from .config import OptimConfig, ScheduleConfig


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Matrices only: not norms, biases, layer scales, nor the ViT's CLS token / position table (3-D).
        (decay if p.ndim >= 2 and name.endswith("weight") else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("no trainable parameters: every parameter is frozen (check the tune.* flags)")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                             eps=cfg.eps, weight_decay=cfg.weight_decay)


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """HF's rule: ceil(ratio x total), so 3% of 2476 steps is 75 warmup steps."""
    return math.ceil(total_steps * warmup_ratio)


def lr_multiplier(step: int, total_steps: int, warmup: int, kind: str = "cosine", min_ratio: float = 0.0) -> float:
    """Factor applied to the base lr at optimizer step `step` (0-based, the step about to be taken)."""
    if warmup > 0 and step < warmup:
        return float(step) / float(warmup)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return min_ratio + (1.0 - min_ratio) * cosine


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int) -> LambdaLR:
    warmup = warmup_steps_for(total_steps, cfg.warmup_ratio)
    return LambdaLR(optimizer, lambda s: lr_multiplier(s, total_steps, warmup, cfg.lr_scheduler, cfg.min_lr_ratio))
