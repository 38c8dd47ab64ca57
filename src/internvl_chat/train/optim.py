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


def _multiplier(name: str, lr_multipliers: dict[str, float]) -> float:
    """The multiplier of the longest prefix of `name` listed in lr_multipliers (1.0 if none)."""
    best, best_len = 1.0, -1
    for prefix, mult in lr_multipliers.items():
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = float(mult), len(prefix)
    return best


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float | None = None,
                 lr_multipliers: dict[str, float] | None = None) -> list[dict]:
    """AdamW groups: (decay or not) x (learning-rate multiplier of the parameter's module prefix).

    `lr_multipliers` maps module prefixes (`mlp1`, `vision_model`, `language_model`) to a factor on
    the base lr, so e.g. a fresh projector can learn 10x faster than a pretrained LLM in one stage.
    """
    lr_multipliers = dict(lr_multipliers or {})
    names = {n for n, _ in model.named_parameters()}
    unknown = [k for k in lr_multipliers if not any(n == k or n.startswith(k + ".") for n in names)]
    if unknown:
        raise ValueError(f"optim.lr_multipliers: no parameter under {unknown}; use module prefixes such as "
                         "mlp1, vision_model, language_model")
    buckets: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Matrices only: not norms, biases, layer scales, nor the ViT's CLS token / position table (3-D).
        decay = p.ndim >= 2 and name.endswith("weight")
        buckets.setdefault((decay, _multiplier(name, lr_multipliers)), []).append(p)
    if not buckets:
        raise ValueError("no trainable parameters: every parameter is frozen (check the tune.* flags)")
    groups = []
    for (decay, mult), params in sorted(buckets.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
        if lr is not None:
            group["lr"] = lr * mult
        groups.append(group)
    return groups


def use_fused(groups: list[dict], allowed: bool = True) -> bool:
    """The fused (one-kernel) AdamW where every parameter is on CUDA; the per-tensor loop otherwise."""
    devices = {p.device.type for g in groups for p in g["params"]}
    return allowed and devices == {"cuda"}


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, fused: bool = True) -> torch.optim.AdamW:
    groups = param_groups(model, cfg.weight_decay, lr=cfg.lr, lr_multipliers=cfg.lr_multipliers)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                             fused=use_fused(groups, fused) or None)


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
