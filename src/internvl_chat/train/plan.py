"""`internvl-chat plan CONFIG.yaml [key=value ...] --world-size N --gpu NAME`: will the run fit, and what will it cost?

The configured model is built at full size on the meta device with the trainer's
own `build_skeleton` (tuning flags, activation checkpointing, FSDP2 sharding and
mixed precision), a `fake` process group of world size N stands in for the
cluster, and one training step of the recipe's micro-batch shape runs under
`FakeTensorMode` with `FSDPMemTracker` (see plan_step.py). Nothing is
materialised: the 40B recipe plans in a few hundred MB of RAM.

A GPU fits the plan when  tracked peak x (1 + fragmentation) + fixed margin  <=
its memory. The fixed margin stands for what the tracker cannot see (CUDA
context, NCCL buffers, cuBLAS workspaces); the fragmentation factor for the
caching allocator's slack. Both are assumptions, printed with the result and
settable (--margin-gib, --fragmentation).

Exit codes: 0 fits, 1 does not fit (the cheapest change that fits is printed),
2 bad input (one line on stderr).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, replace

# Light imports only at module level: bad arguments are answered before torch is imported.
from ..errors import UserError
from .config import ConfigError, TrainConfig

GIB = 1024 ** 3


@dataclass
class Target:
    """The machine planned for."""

    world_size: int
    capacity_bytes: int
    peak_flops: float  # dense bf16 per device
    gpu: str = "custom"
    margin_bytes: int = 3 * GIB  # CUDA context + NCCL + cuBLAS workspaces, per GPU
    fragmentation: float = 0.10  # caching-allocator slack on top of the tracked peak
    mfu: float = 0.40
    device: str = "cuda"  # what parallel.dtype=auto resolves for ("cpu" only to validate against CPU runs)


@dataclass
class Plan:
    cfg: TrainConfig
    target: Target
    params_total: int
    params_trainable: int
    accumulation: int
    batch: object  # plan_step.PlanBatch
    memory: object  # plan_step.StepMemory
    dcp_bytes_per_rank: int
    flop_model: object = None  # flops.FlopModel of the planned model (plan_report.costs counts with it)
    supervised_tokens: int = 0  # in the planned micro-batch
    plan_cfg_dtype: str = "bf16"  # parameter dtype FSDP computes in on the target
    largest_param_numel: int = 0  # the export gathers one parameter at a time
    offloaded: bool = False
    seconds: float = 0.0
    note: str = ""
    config_path: str | None = None

    @property
    def device_peak_bytes(self) -> int:
        """Tracked peak on the GPU: with cpu_offload the sharded states live in host memory."""
        return self.memory.host_resident_peak_bytes if self.offloaded else self.memory.peak_bytes

    @property
    def required_bytes(self) -> int:
        return int(self.device_peak_bytes * (1 + self.target.fragmentation)) + self.target.margin_bytes

    @property
    def fits(self) -> bool:
        return self.required_bytes <= self.target.capacity_bytes

    @property
    def states_bytes(self) -> int:
        m = self.memory
        return m.params_bytes + m.grads_bytes + m.optimizer_bytes


def _progress(message: str, start: float, stream=sys.stderr) -> None:
    end = "\r" if stream.isatty() else "\n"
    stream.write(f"[plan] {time.perf_counter() - start:6.1f}s  {message}".ljust(79) + end)
    stream.flush()


def recipe_batch(cfg: TrainConfig, pm, images_per_row: int | None, supervised_fraction: float):
    """per_device rows of max_seq_length tokens: padded rows are at most that long, packed rows are that
    long. Images: one per row (padded), or as many as fit when packing, unless given."""
    from .plan_step import PlanBatch

    seq, ntok = cfg.data.max_seq_length, pm.config.num_image_token
    if images_per_row is None:
        images_per_row = max(1, seq // (2 * (ntok + 2))) if cfg.data.packing else 1
    rows = cfg.batch.per_device_batch_size
    return PlanBatch(rows, seq, rows * images_per_row, pm.config.image_size, ntok, supervised_fraction)


def _planning_cfg(cfg: TrainConfig, target: Target) -> tuple[TrainConfig, bool]:
    """The config handed to the trainer's functions on this CPU: dtype=auto resolved as on the target, and
    cpu_offload taken out (shard_model refuses it without a GPU) and accounted for after the step."""
    plan_cfg = copy.deepcopy(cfg)
    if plan_cfg.parallel.dtype == "auto":
        plan_cfg.parallel.dtype = "bf16" if target.device == "cuda" else "fp32"
    offloaded = plan_cfg.parallel.cpu_offload
    plan_cfg.parallel.cpu_offload = False
    return plan_cfg, offloaded


def plan(cfg: TrainConfig, target: Target, *, images_per_row: int | None = None, supervised_fraction: float = 0.5,
         progress=None) -> Plan:
    """Plan `cfg` on `target`; owns a fake process group for the duration (none may exist yet)."""
    import torch
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from .flops import flop_model
    from .model_setup import build_skeleton
    from .optim import build_optimizer
    from ..runtime import DistInfo
    from .plan_model import planned_model
    from .plan_step import dcp_bytes, known_counts, tracked_step

    start = time.perf_counter()
    say = progress or (lambda msg: None)
    accumulation = cfg.gradient_accumulation(target.world_size)
    if dist.is_initialized():
        raise RuntimeError("plan() needs to create its own fake process group; one is already initialised")
    pm = planned_model(cfg)
    batch = recipe_batch(cfg, pm, images_per_row, supervised_fraction)
    try:
        real_batch = batch.build(pm.token_ids, pm.config.llm_config.vocab_size)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    counts = known_counts(real_batch, pm.token_ids["<IMG_CONTEXT>"])
    plan_cfg, offloaded = _planning_cfg(cfg, target)
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=target.world_size)
    try:
        say(f"building the model on meta and sharding it over {target.world_size} fake ranks")
        model = build_skeleton(plan_cfg, pm.config, pm.token_ids["<IMG_CONTEXT>"],
                               DistInfo(0, target.world_size, 0, torch.device("cpu")))
        params_total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        largest = max(p.numel() for p in model.parameters())
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            model.to_empty(device="cpu")
            optimizer = build_optimizer(model, plan_cfg.optim)
            fake_batch = replace(real_batch, inputs={k: mode.from_tensor(v) for k, v in real_batch.inputs.items()})
            say(f"one training step of {params_total / 1e9:.2f}B parameters on fake tensors "
                f"({batch.rows} x {batch.seq_len} tokens, {batch.images} images)")
            memory = tracked_step(model, optimizer, fake_batch, world_size=target.world_size,
                                  max_grad_norm=cfg.optim.max_grad_norm, tune=cfg.tune,
                                  accumulating=accumulation > 1, fake=True, counts=counts, progress=say)
            say("checkpoint sizes")
            ckpt = dcp_bytes(model, optimizer)
        fm = flop_model(model)
    finally:
        dist.destroy_process_group()
    return Plan(cfg, target, params_total, trainable, accumulation, batch, memory, ckpt, fm, real_batch.supervised,
                plan_cfg.parallel.dtype, largest, offloaded, time.perf_counter() - start, pm.note)


# -- command line ------------------------------------------------------------------------------
class _Parser(__import__("argparse").ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too), as errors.py does
        raise UserError(f"{message} (see {self.prog} --help)")


def _parser():
    from .plan_report import GPUS

    p = _Parser(prog="internvl-chat plan", description="Will CONFIG fit on N GPUs, and what will it cost? "
                "Plans one training step at full size on fake tensors (CPU only, nothing materialised).")
    p.add_argument("config", help="training config (YAML)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, as for `internvl-chat train`")
    p.add_argument("--world-size", type=int, required=True, help="number of GPUs (processes)")
    p.add_argument("--gpu", help=f"one of {', '.join(GPUS)}")
    p.add_argument("--gpu-memory", type=float, help="GPU memory in GiB (instead of --gpu)")
    p.add_argument("--peak-tflops", type=float, default=312.0, help="with --gpu-memory: dense bf16 TFLOP/s per GPU")
    p.add_argument("--mfu", type=float, default=0.40, help="model FLOPs utilisation for the hours (default 0.40)")
    p.add_argument("--margin-gib", type=float, default=3.0, help="CUDA context + NCCL + workspaces per GPU (3 GiB)")
    p.add_argument("--fragmentation", type=float, default=0.10, help="allocator slack on the tracked peak (0.10)")
    p.add_argument("--samples", type=int, help="samples per epoch (default: from the configured data)")
    p.add_argument("--mean-tokens", type=int, help="mean tokens per sample for the hours (default: max_seq_length)")
    p.add_argument("--supervised-fraction", type=float, default=0.5, help="labelled share of each row (0.5)")
    p.add_argument("--images-per-row", type=int, help="images per row (default 1; packing: as many as fit)")
    p.add_argument("--no-suggest", action="store_true", help="do not re-plan when it does not fit")
    p.add_argument("--json", help="also write the numbers as JSON to this file ('-': stdout)")
    return p


def _target(args) -> Target:
    from .plan_report import GPUS

    if args.world_size < 1:
        raise UserError(f"--world-size must be >= 1, got {args.world_size}")
    if (args.gpu is None) == (args.gpu_memory is None):
        raise UserError("give exactly one of --gpu NAME or --gpu-memory GIB")
    if not 0 < args.mfu <= 1:
        raise UserError(f"--mfu must be in (0, 1], got {args.mfu}")
    if args.margin_gib < 0 or args.fragmentation < 0:
        raise UserError("--margin-gib and --fragmentation must be >= 0")
    if not 0 < args.supervised_fraction <= 1:
        raise UserError(f"--supervised-fraction must be in (0, 1], got {args.supervised_fraction}")
    common = dict(margin_bytes=int(args.margin_gib * GIB), fragmentation=args.fragmentation, mfu=args.mfu)
    if args.gpu is not None:
        gpu = GPUS.get(args.gpu.lower())
        if gpu is None:
            raise UserError(f"unknown GPU {args.gpu!r}; known: {', '.join(GPUS)} (or use --gpu-memory GIB)")
        return Target(args.world_size, gpu.memory_bytes, gpu.peak_flops, args.gpu.lower(), **common)
    if args.gpu_memory <= 0 or args.peak_tflops <= 0:
        raise UserError("--gpu-memory and --peak-tflops must be > 0")
    return Target(args.world_size, int(args.gpu_memory * GIB), args.peak_tflops * 1e12,
                  f"{args.gpu_memory:g} GiB GPU", **common)


def _prepare(argv):
    """(args, cfg, target, samples) or UserError (ConfigError included) for anything the user can fix."""
    from ..data.formats import MetaError
    from .config import ConfigError, load_config
    from .plan_report import dataset_samples

    args = _parser().parse_args(argv)
    target = _target(args)
    cfg = load_config(args.config, args.overrides)
    cfg.gradient_accumulation(target.world_size)  # divisibility, before minutes of planning
    if args.images_per_row is not None and args.images_per_row < 1:
        raise UserError(f"--images-per-row must be >= 1, got {args.images_per_row}")
    try:
        samples = args.samples if args.samples is not None else dataset_samples(cfg)
    except MetaError as e:
        raise ConfigError(str(e)) from None
    return args, cfg, target, samples


def main(argv: list[str] | None = None) -> int:
    import json

    from rich.console import Console

    from .plan_report import costs, render, to_json
    from .plan_suggest import suggest

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, cfg, target, samples = _prepare(argv)
        start = time.perf_counter()
        kw = dict(images_per_row=args.images_per_row, supervised_fraction=args.supervised_fraction)

        def replan(c, t):
            _progress(f"re-planning: world {t.world_size}, per-device batch {c.batch.per_device_batch_size}, "
                      f"checkpointing {c.parallel.activation_checkpointing}", start)
            return plan(c, t, progress=lambda msg: _progress(msg, start), **kw)

        result = plan(cfg, target, progress=lambda msg: _progress(msg, start), **kw)
    except UserError as e:
        print(f"internvl-chat plan: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    result.config_path = args.config
    suggestion, alternatives = (None, []) if args.no_suggest else suggest(result, replan)
    _progress(f"done in {time.perf_counter() - start:.0f} s", start)
    cost = costs(result, samples, args.mean_tokens)
    render(result, cost, suggestion, Console(), alternatives)
    if not result.fits and suggestion is None and not args.no_suggest:
        print("no single change tried fits (smaller batch, checkpointing, cpu_offload, up to 8x the GPUs)",
              file=sys.stderr)
    if args.json:
        text = json.dumps(to_json(result, cost, suggestion, alternatives), indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    return 0 if result.fits else 1


if __name__ == "__main__":
    sys.exit(main())
