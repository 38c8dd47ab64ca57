"""When a plan does not fit: the cheapest change that does, found by planning again.

Changes are tried from the cheapest to the dearest, and the first that fits is the suggestion:
1. a smaller per-device batch with more accumulation (same global batch, same GPUs, a little slower);
2. activation checkpointing on (about a third more compute);
3. `parallel.cpu_offload` (FSDP2 keeps the parameter, gradient and optimizer shards in host memory:
   same GPUs, much slower steps); its GPU peak is read from the same tracked step, without the
   sharded states, rather than planned again;
4. more GPUs (2x, 4x, 8x the world size), with the per-device batch the global batch allows.
A smaller batch or checkpointing only shrinks activations, so they are skipped (not planned) when the
sharded states alone exceed the GPU.
"""

from __future__ import annotations

import copy
import dataclasses

from .config import TrainConfig


def _with(cfg: TrainConfig, **changes) -> TrainConfig:
    new = copy.deepcopy(cfg)
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(new, section), name, value)
    return new


def _record(alternatives: list, override: str, plan, replanned: bool) -> bool:
    alternatives.append({"override": override, "fits": plan.fits, "required_bytes": plan.required_bytes,
                         "peak_bytes": plan.device_peak_bytes, "replanned": replanned})
    return plan.fits


def _smaller_batch(base, replan, alternatives: list, max_tries: int = 2):
    cfg, t = base.cfg, base.target
    per_device = cfg.batch.per_device_batch_size
    per_rank = cfg.batch.global_batch_size // t.world_size
    candidates = [d for d in range(per_device - 1, 0, -1) if per_rank % d == 0]  # smaller batches that divide it
    states = int(base.states_bytes * (1 + t.fragmentation)) + t.margin_bytes
    if not candidates or states >= t.capacity_bytes:
        return None
    # Activations scale with the rows: start from the largest batch predicted to fit.
    rest = max(base.required_bytes - states, 0)
    start = next((i for i, pd in enumerate(candidates) if states + rest * pd / per_device <= t.capacity_bytes),
                 len(candidates) - 1)
    for pd in candidates[start:start + max_tries]:
        plan = replan(_with(cfg, **{"batch.per_device_batch_size": pd}), t)
        if _record(alternatives, f"per_device_batch_size={pd}", plan, True):
            return f"per_device_batch_size={pd}", plan
    return None


def suggest(base, replan) -> tuple[str | None, list[dict]]:
    """(override line or None, every alternative tried). `replan(cfg, target)` returns a Plan."""
    alternatives: list[dict] = []
    if base.fits:
        return None, alternatives
    cfg, t = base.cfg, base.target
    found = _smaller_batch(base, replan, alternatives)
    if found:
        return found[0], alternatives
    if not cfg.parallel.activation_checkpointing:
        plan = replan(_with(cfg, **{"parallel.activation_checkpointing": True}), t)
        if _record(alternatives, "parallel.activation_checkpointing=true", plan, True):
            return "parallel.activation_checkpointing=true", alternatives
    if not cfg.parallel.cpu_offload:
        offloaded = dataclasses.replace(base, cfg=_with(cfg, **{"parallel.cpu_offload": True}), offloaded=True)
        fits = _record(alternatives, "parallel.cpu_offload=true", offloaded, False)
        alternatives[-1]["host_bytes_per_rank"] = base.states_bytes  # the offloaded shards, in host RAM
        if fits:
            return "parallel.cpu_offload=true", alternatives
    for factor in (2, 4, 8):
        world = t.world_size * factor
        per_world = cfg.batch.global_batch_size // world if cfg.batch.global_batch_size % world == 0 else 0
        if per_world < 1:
            continue
        pd = max(d for d in range(1, min(per_world, cfg.batch.per_device_batch_size) + 1) if per_world % d == 0)
        plan = replan(_with(cfg, **{"batch.per_device_batch_size": pd}), dataclasses.replace(t, world_size=world))
        override = f"--world-size {world}"
        if pd != cfg.batch.per_device_batch_size:
            override += f" per_device_batch_size={pd}"
        if _record(alternatives, override, plan, True):
            return override, alternatives
    return None, alternatives
