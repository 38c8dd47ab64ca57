"""The training loop: accumulation over the global batch, clipping, skipping, checkpoints, telemetry.

Loss weighting: every micro-batch's loss is sum(token losses) / N where N is
the number of supervised tokens in the whole global batch (all micro-batches,
all ranks, one all-reduce per step), passed to the model as
`num_items_in_batch`. FSDP averages gradients over ranks, so the loss is scaled
by the world size before backward; the accumulated gradient is then exactly
the gradient of the global batch's token-mean loss, whatever the split into
processes and micro-batches.

A step whose loss or gradient norm is not finite is skipped (no update) and
counted; `max_nonfinite_in_a_row` such steps stop the run with a checkpoint.
SIGTERM / SIGUSR1 (Slurm pre-emption) save a checkpoint at the next step
boundary and end the run cleanly.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..constants import IGNORE_INDEX
from ..data import RejectLog
from ..data.rejects import TooManyRejects
from ..errors import UserError
from .checkpoint import export_pretrained, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data import MODEL_KEYS, build_train_data, model_inputs  # noqa: F401 (MODEL_KEYS: re-exported)
from .flops import flop_model, peak_flops_per_device, sample_lengths
from .gc_control import ManualGC
from .lora import count_parameters, set_frozen_eval
from .model_setup import build_sharded_model
from .monitor import Monitor, plot_loss_curve
from .optim import build_optimizer, build_scheduler
from .parallel import DistInfo, init_distributed, param_dtype, shutdown_distributed


@dataclass
class LoopState:
    step: int = 0  # optimizer steps taken (including skipped ones)
    epoch: int = 0
    step_in_epoch: int = 0
    consumed: int = 0  # this rank's samples of the current epoch (rejected ones included)
    skipped: int = 0
    nonfinite_in_a_row: int = 0
    tokens_seen: int = 0


@dataclass
class TrainResult:
    status: str  # completed | preempted | nonfinite | nothing-trained
    step: int
    total_steps: int
    output_dir: Path
    export_dir: Path | None = None
    message: str = ""
    losses: list = field(default_factory=list)


class StopSignal:
    """Remembers SIGTERM / SIGUSR1 / SIGINT; the loop polls it at step boundaries (all ranks agree via all-reduce).

    Ctrl-C (SIGINT) saves a checkpoint like a pre-emption; a second Ctrl-C aborts at once (KeyboardInterrupt).
    Forked DataLoader workers inherit the handler and ignore the signal (their parent decides)."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self._previous = {}
        self._pid = os.getpid()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # Python only delivers signals there
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:
            return  # a forked DataLoader worker: the main process handles the stop
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort without saving
        if signum == signal.SIGINT and os.environ.get("RANK", "0") == "0":
            print("\n[train] Ctrl-C: saving a checkpoint after this step (Ctrl-C again to abort without saving)",
                  file=sys.stderr, flush=True)
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _empty_micro_batch(image_size: int, pad_id: int) -> dict:
    """Stand-in for a micro-batch whose samples were all rejected: one pad token, no label, a dummy
    image with flag 0. Its loss is exactly 0 but it runs the same modules, so FSDP collectives line up."""
    return {"input_ids": torch.tensor([[pad_id]]), "labels": torch.tensor([[IGNORE_INDEX]]),
            "attention_mask": torch.ones(1, 1, dtype=torch.long), "position_ids": torch.zeros(1, 1, dtype=torch.long),
            "pixel_values": torch.zeros(1, 3, image_size, image_size), "image_flags": torch.tensor([0]),
            "sample_index": torch.full((1, 1), -1)}


def _all_reduce(values: list[float], device, op=dist.ReduceOp.SUM) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=op)
    return t.tolist()


def train(cfg: TrainConfig, dataset=None) -> TrainResult:
    """Run (or resume) the configured training in this process; collective over all ranks."""
    if cfg.parallel.num_threads > 0:
        torch.set_num_threads(cfg.parallel.num_threads)
    owns_group = not dist.is_initialized()  # leave a caller's process group alone
    info = init_distributed(cfg.parallel.backend)
    ok = False
    try:
        result = _train(cfg, info, dataset)
        ok = True
        return result
    finally:
        if owns_group and ok:
            shutdown_distributed()
        elif owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, info: DistInfo, dataset) -> TrainResult:
    out = Path(cfg.logging.output_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)  # identical model init (LoRA, ...) on every rank
    model, tokenizer = build_sharded_model(cfg, info)
    data = build_train_data(cfg, tokenizer, model, info, dataset)
    total = cfg.schedule.max_steps or max(1, int(cfg.schedule.num_train_epochs * data.steps_per_epoch))
    optimizer = build_optimizer(model, cfg.optim, fused=cfg.parallel.fused_optimizer)
    scheduler = build_scheduler(optimizer, cfg.schedule, total)
    state = LoopState()
    seed_everything(cfg.seed + 1000 * info.rank + 1)  # per-rank streams (drop path, LoRA dropout)

    ckpt_root = out / "checkpoints"
    latest = latest_checkpoint(ckpt_root) if cfg.checkpoint.resume else None
    if latest is not None:
        trainer_state, rank_state = load_checkpoint(latest, model, optimizer)
        if trainer_state["total_steps"] != total:
            raise UserError(f"{latest} belongs to a run of {trainer_state['total_steps']} steps, this config gives "
                             f"{total}: the lr schedule would differ (use a new output_dir or checkpoint.resume=false)")
        scheduler.load_state_dict(trainer_state["scheduler"])
        state = LoopState(**trainer_state["loop"])
        if rank_state is None or trainer_state["world_size"] != info.world_size:
            raise UserError(f"{latest} was written by {trainer_state['world_size']} processes, this run has "
                             f"{info.world_size}: the sampler position and RNG streams are per rank")
        state.consumed = rank_state["consumed"]
        data.sampler.load_state_dict(rank_state["sampler"])
        set_rng_state(rank_state["rng"])
    else:
        data.sampler.set_epoch(0)

    trainable, total_params = count_parameters(model)
    accumulation = data.accumulation
    fm = flop_model(model)
    peak = peak_flops_per_device(info.device, cfg.logging.peak_flops) * info.world_size
    image_size = model.config.image_size
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    monitor = Monitor(out, total, state.step, info.is_main, cfg.logging.progress_bar, cfg.logging.tensorboard)
    monitor.message(
        f"[train] {'resuming from ' + str(latest) if latest else 'starting'}: {total} steps, world {info.world_size}, "
        f"global batch {cfg.batch.global_batch_size} = {data.per_device} per device x {accumulation} accumulation x "
        f"{info.world_size} processes; {trainable:,} of {total_params:,} parameters train; "
        f"{data.steps_per_epoch} steps per epoch")
    rejects = RejectLog(out / "rejects" / f"rank_{info.rank}.jsonl", max_reject_fraction=1.0)

    pending = None  # a periodic checkpoint still being written in the background

    def save(reason: str, background: bool = False) -> Path:
        nonlocal pending
        if pending is not None:
            pending.wait()
            pending = None
        loop = asdict(state)
        trainer_state = {"step": state.step, "total_steps": total, "world_size": info.world_size, "loop": loop,
                         "scheduler": scheduler.state_dict(), "reason": reason, "config": cfg.to_dict()}
        rank_state = {"consumed": state.consumed, "sampler": data.sampler.state_dict(consumed=state.consumed),
                      "rng": rng_state()}
        result = save_checkpoint(ckpt_root, state.step, model, optimizer, trainer_state, rank_state,
                                 cfg.checkpoint.keep_last, background=background)
        if background:
            pending = result
            return result.final
        return result

    status, message = "completed", ""
    model.train()
    set_frozen_eval(model, cfg.tune)
    trainable_params = [p for p in model.parameters() if p.requires_grad]
    with StopSignal() as stop, ManualGC(cfg.parallel.gc_every) as collector:
        loader = iter(data.loader())
        epoch_steps = data.epoch_steps(state.epoch)
        while state.step < total:
            if state.step_in_epoch >= epoch_steps:
                state.epoch, state.step_in_epoch, state.consumed = state.epoch + 1, 0, 0
                data.sampler.set_epoch(state.epoch)
                loader, epoch_steps = iter(data.loader()), data.epoch_steps(state.epoch)
            t0 = time.perf_counter()
            micro = [next(loader) for _ in range(accumulation)]
            local = [0.0, 0.0, 0.0, 0.0, 0.0]  # supervised tokens, tokens, samples, rejected, model FLOPs
            for b in micro:
                rejects.update(b)
                state.consumed += int(b["num_samples"]) + len(b["rejects"])
                local[3] += len(b["rejects"])
                if b.get("empty"):
                    continue
                lengths = sample_lengths(b)
                supervised = float((b["labels"][:, 1:] != IGNORE_INDEX).sum())
                local[0] += supervised
                local[1] += float(lengths.sum())
                local[2] += float(b["num_samples"])
                local[4] += fm.step_flops(int(b["pixel_values"].shape[0]), lengths, supervised)
            num_items, tokens, samples, rejected, flops = _all_reduce(local, info.device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=info.device)
            for b in micro:
                if b.get("empty"):
                    b = _empty_micro_batch(image_size, pad_id)
                inputs = model_inputs(b, info.device)
                outputs = model(**inputs, use_cache=False, num_items_in_batch=max(num_items, 1.0), loss_only=True)
                (outputs.loss * info.world_size).backward()
                loss_sum += outputs.loss.detach().double()
            dist.all_reduce(loss_sum)
            loss = float(loss_sum)
            max_norm = cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable_params, max_norm)
            grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
            lr = scheduler.get_last_lr()[0]
            finite = math.isfinite(loss) and math.isfinite(grad_norm) and num_items > 0
            if finite:
                optimizer.step()
                state.nonfinite_in_a_row = 0
            else:
                state.skipped += 1
                state.nonfinite_in_a_row += 1
                monitor.message(f"[train] step {state.step + 1}: loss {loss}, grad norm {grad_norm}, "
                                f"{int(num_items)} supervised tokens: update skipped "
                                f"({state.nonfinite_in_a_row} in a row, {state.skipped} in total)")
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state.step += 1
            state.step_in_epoch += 1
            state.tokens_seen += int(tokens)
            collector.step(state.step)
            if pending is not None and pending.poll(info.device):  # published as soon as it is on disk
                pending = None
            dt = time.perf_counter() - t0
            monitor.log({"step": state.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                         "tokens_per_s": tokens / dt, "samples_per_s": samples / dt, "mfu": flops / (dt * peak),
                         "step_time_s": dt, "num_tokens": int(tokens), "num_items": int(num_items),
                         "rejected": int(rejected), "skipped": state.skipped, "epoch": state.epoch})
            seen, bad = _all_reduce([rejects.seen, rejects.num_rejected], info.device)
            if seen >= rejects.min_samples and bad / seen > cfg.data.max_reject_fraction:
                save("too many rejects")
                raise TooManyRejects(f"{int(bad)} of {int(seen)} samples rejected (> {cfg.data.max_reject_fraction:.1%});"
                                     f" see {out / 'rejects'}")
            stop_now = _all_reduce([float(stop.received is not None)], info.device, dist.ReduceOp.MAX)[0] > 0
            if state.nonfinite_in_a_row >= cfg.logging.max_nonfinite_in_a_row:
                status = "nonfinite"
                message = (f"stopped at step {state.step}: {state.nonfinite_in_a_row} steps in a row had a non-finite "
                           f"loss or gradient norm (last loss {loss}); checkpoint saved. Lower optim.lr, check the "
                           f"data (rejects/), or raise logging.max_nonfinite_in_a_row")
            elif stop_now:
                status = "preempted"
                message = f"stop signal received: saved a checkpoint at step {state.step}; re-run the same command to resume"
            every = cfg.checkpoint.save_every
            # save_every=0 turns periodic and final checkpoints off (benchmarks); stops always save.
            if (every > 0 and (state.step % every == 0 or state.step == total)) or status != "completed":
                # Periodic saves are written in the background; the last one and stops are not.
                background = cfg.checkpoint.async_checkpoint and status == "completed" and state.step < total
                path = save(status, background)
                monitor.message(f"[train] checkpoint {path}{' (writing in the background)' if background else ''}")
            if status != "completed":
                break
        if pending is not None:
            pending.wait()
    rejects.close()
    export_dir = None
    if status == "completed" and state.step - state.skipped <= 0:
        # every step was skipped (all samples rejected, no supervised token): exporting would ship the initial model
        status = "nothing-trained"
        message = (f"no step updated the model ({state.skipped} of {state.step} skipped: every sample was rejected "
                   f"or had no supervised token; see {out / 'rejects'}); nothing exported")
    if status == "completed":
        if cfg.checkpoint.export:
            dtype = param_dtype(cfg.parallel, info.device)
            export_dir = export_pretrained(model, out / "model", tokenizer, dtype, cfg.checkpoint.export_max_shard_size)
        if info.is_main and cfg.logging.plot:
            plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
        message = f"finished {total} steps" + (f"; model exported to {export_dir}" if export_dir else "")
    monitor.message(f"[train] {status}: {message}")
    monitor.close()
    return TrainResult(status, state.step, total, out, export_dir, message)
