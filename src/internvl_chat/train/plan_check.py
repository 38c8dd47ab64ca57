"""Measure the planned step on real tensors, to check a plan: the same model build, batch and step as
`internvl-chat plan`, with real weights, a real process group and the same FSDPMemTracker.

    torchrun --nproc_per_node=2 -m internvl_chat.train.plan_check CONFIG.yaml [key=value ...] --out m.json

Writes one JSON object per rank ({rank: StepMemory fields + dcp_bytes}) from rank 0. On a GPU
it also records torch.cuda.max_memory_allocated() for the tracked step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch
import torch.distributed as dist


def measure(cfg, images_per_row: int | None = None, supervised_fraction: float = 0.5) -> dict:
    """This rank's measured memory for one step (collective: every rank calls it)."""
    from .model_setup import build_sharded_model
    from .optim import build_optimizer
    from ..runtime import init_distributed
    from .plan import recipe_batch
    from .plan_model import planned_model
    from .plan_step import dcp_bytes, tracked_step

    info = init_distributed(cfg.parallel.backend)
    torch.manual_seed(cfg.seed)
    model, _ = build_sharded_model(cfg, info)
    optimizer = build_optimizer(model, cfg.optim)
    pm = planned_model(cfg)
    batch = recipe_batch(cfg, pm, images_per_row, supervised_fraction).build(
        pm.token_ids, pm.config.llm_config.vocab_size).to(info.device)
    if info.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    memory = tracked_step(model, optimizer, batch, world_size=info.world_size, max_grad_norm=cfg.optim.max_grad_norm,
                          tune=cfg.tune, accumulating=cfg.gradient_accumulation(info.world_size) > 1)
    out = dataclasses.asdict(memory)
    if info.device.type == "cuda":
        out["cuda_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    out["dcp_bytes"] = dcp_bytes(model, optimizer)
    return out


def main(argv: list[str] | None = None) -> int:
    from .config import load_config
    from ..runtime import shutdown_distributed

    p = argparse.ArgumentParser(prog="python -m internvl_chat.train.plan_check")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--out", required=True)
    p.add_argument("--images-per-row", type=int)
    p.add_argument("--supervised-fraction", type=float, default=0.5)
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    mine = measure(cfg, args.images_per_row, args.supervised_fraction)
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    if dist.get_rank() == 0:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({str(r): m for r, m in enumerate(gathered)}, f, indent=2)
    shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
