"""What a plan costs (steps, FLOPs, hours, checkpoint bytes) and how it is shown (rich table, JSON).

Hours = steps x model FLOPs per step / (GPUs x peak bf16 FLOP/s x MFU). FLOPs are
train/flops.py's model FLOPs (activation-checkpoint recomputation not counted, as
in MFU). MFU defaults to 40 % because no GPU figure has been measured for this
trainer yet; the published V1.2 run is printed next to the projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .flops import PEAK_BF16_FLOPS

GIB = 1024 ** 3


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int  # as the driver reports it (nvidia-smi total)
    peak_flops: float


GPUS = {
    "a100-80g": Gpu("A100-SXM4-80GB", 81920 * 1024 ** 2, PEAK_BF16_FLOPS["A100"]),
    "h100-80g": Gpu("H100-SXM5-80GB", 81559 * 1024 ** 2, PEAK_BF16_FLOPS["H100"]),
    "h200-141g": Gpu("H200-SXM-141GB", 143771 * 1024 ** 2, PEAK_BF16_FLOPS["H200"]),
}
# InternVL-Chat-V1.2's release (reference/internvl-v1.2.md): the SFT stage took about 1.5 days on
# 32 A100 80GB, or about 18 hours on 64.
PUBLISHED_V1_2 = [{"gpus": 32, "gpu": "A100-80GB", "hours": 36.0}, {"gpus": 64, "gpu": "A100-80GB", "hours": 18.0}]


def dataset_samples(cfg: TrainConfig) -> int | None:
    """Samples in one epoch of the configured data, or None when that needs files that are absent."""
    d = cfg.data
    if d.source == "synthetic":
        return 4 * d.synthetic_train
    if d.source == "random":
        return d.synthetic_train
    from ..data.formats import load_meta, repeat_indices

    total = 0
    for spec in load_meta(d.meta_path, d.base_dir):
        n = spec.length
        if n is None:
            if not Path(spec.annotation).is_file():
                return None
            with open(spec.annotation, "rb") as f:
                n = sum(1 for line in f if line.strip())
        total += len(repeat_indices(n, spec.repeat_time))
    return total


def costs(plan, samples: int | None, mean_tokens: int | None = None) -> dict:
    """Per-step and per-epoch figures of a Plan (see plan.py)."""
    t, cfg, b = plan.target, plan.cfg, plan.batch
    world, acc = t.world_size, plan.accumulation
    if cfg.data.packing:  # rows are full; --mean-tokens only says how many samples share one
        tokens_per_row = b.seq_len
        lengths = [mean_tokens] * (b.rows * b.seq_len // mean_tokens) if mean_tokens else [b.seq_len] * b.rows
    else:
        tokens_per_row = mean_tokens or b.seq_len
        lengths = [tokens_per_row] * b.rows
    micro = plan.flop_model.step_flops(b.images, lengths, plan.supervised_tokens * sum(lengths) / (b.seq_len * b.rows))
    flops_step = micro * acc * world
    if not cfg.data.packing:  # as the trainer counts padded steps: each rank's share (drop_last), whole steps
        steps = None if samples is None else (samples // world) // (b.rows * acc)
    elif samples is not None and mean_tokens:  # a packed row holds about seq_len / mean_tokens samples
        steps = int(samples * mean_tokens / (b.seq_len * b.rows * acc * world))
    else:
        steps = None  # packed steps depend on the sample lengths: give --mean-tokens
    epochs = cfg.schedule.num_train_epochs
    total_steps = cfg.schedule.max_steps or (int(epochs * steps) if steps is not None else None)
    seconds = total_steps * flops_step / (world * t.peak_flops * t.mfu) if total_steps else None
    from transformers.utils.hub import convert_file_size_to_int

    from .checkpoint import EXPORT_MAX_SHARD_SIZE

    export_dtype_bytes = 2 if plan.plan_cfg_dtype == "bf16" else 4
    return {
        "global_batch": cfg.batch.global_batch_size, "per_device_batch": b.rows, "accumulation": acc,
        "tokens_per_step": tokens_per_row * b.rows * acc * world, "flops_per_step": flops_step,
        "samples_per_epoch": samples, "steps_per_epoch": steps, "total_steps": total_steps,
        "hours": seconds / 3600 if seconds else None,
        "gpu_hours": seconds * world / 3600 if seconds else None,
        "mfu": t.mfu, "peak_flops_per_gpu": t.peak_flops, "tokens_per_row": tokens_per_row,
        "dcp_bytes_per_rank": plan.dcp_bytes_per_rank, "dcp_bytes_total": plan.dcp_bytes_per_rank * world,
        "export_bytes": plan.params_total * export_dtype_bytes,
        # export_pretrained streams: rank 0 holds one safetensors shard plus one gathered fp32 parameter
        "export_host_bytes_rank0": min(convert_file_size_to_int(EXPORT_MAX_SHARD_SIZE),
                                       plan.params_total * export_dtype_bytes) + plan.largest_param_numel * 4,
        "published_v1_2": PUBLISHED_V1_2,
    }


def to_json(plan, cost: dict, suggestion: str | None, alternatives: list[dict]) -> dict:
    m, t = plan.memory, plan.target
    return {
        "config": plan.config_path, "params_total": plan.params_total, "params_trainable": plan.params_trainable,
        "world_size": t.world_size, "gpu": t.gpu, "fits": plan.fits,
        "per_gpu": {
            "params_bytes": m.params_bytes, "grads_bytes": m.grads_bytes, "optimizer_bytes": m.optimizer_bytes,
            "activations_bytes": m.activations_bytes, "temporaries_bytes": m.temporaries_bytes,
            "activation_peak_bytes": m.activation_peak_bytes, "tracked_peak_bytes": m.peak_bytes,
            "peak_bytes": plan.device_peak_bytes, "required_bytes": plan.required_bytes,
            "capacity_bytes": t.capacity_bytes, "margin_bytes": t.margin_bytes, "fragmentation": t.fragmentation,
            "cpu_offload": plan.offloaded, "at_peak": m.at_peak,
        },
        "micro_batch": {"rows": plan.batch.rows, "seq_len": plan.batch.seq_len, "images": plan.batch.images,
                        "supervised_tokens": plan.supervised_tokens},
        **cost,
        "suggestion": suggestion, "alternatives": alternatives, "note": plan.note, "plan_seconds": plan.seconds,
    }


def _gib(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def describe(alternative: dict, capacity: int) -> str:
    """One line on what a suggested change needs."""
    text = f"needs {_gib(alternative['required_bytes'])} of {_gib(capacity)} per GPU"
    if "host_bytes_per_rank" in alternative:
        text += f"; the offloaded shards take {_gib(alternative['host_bytes_per_rank'])} of host RAM per GPU"
    return text


def render(plan, cost: dict, suggestion: str | None, console, alternatives: list | None = None) -> None:
    from rich.table import Table

    m, t = plan.memory, plan.target
    table = Table(title=f"{plan.params_total / 1e9:.2f}B parameters on {t.world_size} x {t.gpu}"
                  f" ({_gib(t.capacity_bytes)} each)", show_header=True)
    table.add_column("per GPU, at the peak", style="bold")
    table.add_column("", justify="right")
    at = m.at_peak
    pick = lambda *names: sum(at.get(n, 0) for n in names)  # noqa: E731
    where = " (in host RAM: offloaded)" if plan.offloaded else ""
    rows = [(f"parameters (sharded){where}", _gib(pick("Sharded Param"))),
            (f"gradients (sharded){where}", _gib(pick("Sharded Grad"))),
            (f"optimizer states{where}", _gib(pick("OptState"))),
            ("activations", _gib(m.activations_bytes)),
            ("temporaries (gathered weights, collectives, backward)", _gib(m.temporaries_bytes)),
            ("tracked peak on the GPU", _gib(plan.device_peak_bytes)),
            (f"+ margin ({t.fragmentation:.0%} allocator, {_gib(t.margin_bytes)} CUDA/NCCL)",
             _gib(plan.required_bytes)),
            ("fits", "[green]yes[/]" if plan.fits else "[red]no[/]")]
    for row in rows:
        table.add_row(*row)
    table.add_section()
    hours = cost["hours"]
    rows = [("global batch", f"{cost['global_batch']} = {cost['per_device_batch']} x {cost['accumulation']} x "
             f"{t.world_size}"),
            ("tokens / step", f"{cost['tokens_per_step']:,}"), ("model FLOPs / step", f"{cost['flops_per_step']:.3e}"),
            ("steps / epoch", "-" if cost["steps_per_epoch"] is None else f"{cost['steps_per_epoch']:,}"),
            ("steps in the run", "-" if cost["total_steps"] is None else f"{cost['total_steps']:,}"),
            (f"hours at {t.mfu:.0%} MFU", "-" if hours is None else f"{hours:,.2f} h"),
            ("GPU-hours", "-" if hours is None else f"{cost['gpu_hours']:,.0f}"),
            ("published V1.2 run", "; ".join(f"{p['gpus']} x {p['gpu']} ~{p['hours']:.0f} h" for p in PUBLISHED_V1_2)),
            ("DCP checkpoint / rank", _gib(cost["dcp_bytes_per_rank"])),
            ("consolidated export", _gib(cost["export_bytes"]))]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if plan.note:
        console.print(f"note: {plan.note}", soft_wrap=True)
    if suggestion:
        chosen = [a for a in alternatives or [] if a["override"] == suggestion]
        detail = f"  ({describe(chosen[-1], t.capacity_bytes)})" if chosen else ""
        console.print(f"suggestion: {suggestion}{detail}", soft_wrap=True)
