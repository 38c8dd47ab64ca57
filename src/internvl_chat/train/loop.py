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
from dataclasses import asdict, astuple, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..data import Batch, RejectLog
from ..data.rejects import TooManyRejects
from ..errors import UserError
from ..runtime import DistInfo, init_distributed, shutdown_distributed
from .checkpoint import export_pretrained, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data import build_train_data
from .flops import flop_model, peak_flops_per_device
from .gc_control import ManualGC
from .lora import count_parameters, set_frozen_eval
from .model_setup import build_sharded_model
from .monitor import Monitor, plot_loss_curve
from .optim import build_optimizer, build_scheduler
from .parallel import param_dtype


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
    try:
        run = _Run(cfg, info, dataset)  # builds and resumes
        result = run.finish(*run.loop())
        del run  # model, optimizer and loader go before the process group does
    except BaseException:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()  # no barrier: the other ranks may be gone
        raise
    if owns_group:
        shutdown_distributed()
    return result


@dataclass
class StepStats:
    """One optimizer step's counts over its micro-batches; `all_reduce` sums them over ranks."""
    num_items: float = 0.0  # supervised tokens: the loss's denominator
    tokens: float = 0.0
    samples: float = 0.0
    rejected: float = 0.0
    flops: float = 0.0  # model FLOPs

    def all_reduce(self, device) -> StepStats:
        return StepStats(*_all_reduce(list(astuple(self)), device))


class _Run:
    """One training run's parts (model, data, optimizer, monitor) and its steps; collective over all ranks."""

    def __init__(self, cfg: TrainConfig, info: DistInfo, dataset):
        self.cfg, self.info = cfg, info
        self.out = out = Path(cfg.logging.output_dir)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)  # identical model init (LoRA, ...) on every rank
        self.model, self.tokenizer = model, tokenizer = build_sharded_model(cfg, info)
        self.data = data = build_train_data(cfg, tokenizer, model, info, dataset)
        self.total = cfg.schedule.max_steps or max(1, int(cfg.schedule.num_train_epochs * data.steps_per_epoch))
        self.optimizer = build_optimizer(model, cfg.optim, fused=cfg.parallel.fused_optimizer)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.total)
        self.state = LoopState()
        seed_everything(cfg.seed + 1000 * info.rank + 1)  # per-rank streams (drop path, LoRA dropout)
        self.ckpt_root = out / "checkpoints"
        latest = self._resume()
        trainable, total_params = count_parameters(model)
        self.fm = flop_model(model)
        self.peak = peak_flops_per_device(info.device, cfg.logging.peak_flops) * info.world_size
        self.monitor = Monitor(out, self.total, self.state.step, info.is_main, cfg.logging.progress_bar,
                               cfg.logging.tensorboard)
        self.monitor.message(
            f"[train] {'resuming from ' + str(latest) if latest else 'starting'}: {self.total} steps, world "
            f"{info.world_size}, global batch {cfg.batch.global_batch_size} = {data.per_device} per device x "
            f"{data.accumulation} accumulation x {info.world_size} processes; {trainable:,} of {total_params:,} "
            f"parameters train; {data.steps_per_epoch} steps per epoch")
        self.rejects = RejectLog(out / "rejects" / f"rank_{info.rank}.jsonl", max_reject_fraction=1.0)
        self.pending = None  # a periodic checkpoint still being written in the background

    def _resume(self) -> Path | None:
        """Load the newest checkpoint (model, optimizer, schedule, loop and sampler position, RNG), if any."""
        cfg, info, data = self.cfg, self.info, self.data
        latest = latest_checkpoint(self.ckpt_root) if cfg.checkpoint.resume else None
        if latest is None:
            data.sampler.set_epoch(0)
            return None
        trainer_state, rank_state = load_checkpoint(latest, self.model, self.optimizer)
        if trainer_state["total_steps"] != self.total:
            raise UserError(f"{latest} belongs to a run of {trainer_state['total_steps']} steps, this config gives "
                             f"{self.total}: the lr schedule would differ (use a new output_dir or "
                             f"checkpoint.resume=false)")
        self.scheduler.load_state_dict(trainer_state["scheduler"])
        self.state = LoopState(**trainer_state["loop"])
        if rank_state is None or trainer_state["world_size"] != info.world_size:
            raise UserError(f"{latest} was written by {trainer_state['world_size']} processes, this run has "
                             f"{info.world_size}: the sampler position and RNG streams are per rank")
        self.state.consumed = rank_state["consumed"]
        data.sampler.load_state_dict(rank_state["sampler"])
        set_rng_state(rank_state["rng"])
        return latest

    def save(self, reason: str, background: bool = False) -> Path:
        if self.pending is not None:
            self.pending.wait()
            self.pending = None
        state = self.state
        trainer_state = {"step": state.step, "total_steps": self.total, "world_size": self.info.world_size,
                         "loop": asdict(state), "scheduler": self.scheduler.state_dict(), "reason": reason,
                         "config": asdict(self.cfg)}
        rank_state = {"consumed": state.consumed, "sampler": self.data.sampler.state_dict(consumed=state.consumed),
                      "rng": rng_state()}
        result = save_checkpoint(self.ckpt_root, state.step, self.model, self.optimizer, trainer_state, rank_state,
                                 self.cfg.checkpoint.keep_last, background=background)
        if background:
            self.pending = result
            return result.final
        return result

    def loop(self) -> tuple[str, str]:
        """Steps until the end, a stop signal or a stop condition; returns (status, message)."""
        state, data = self.state, self.data
        status, message = "completed", ""
        self.model.train()
        set_frozen_eval(self.model, self.cfg.tune)
        trainable_params = [p for p in self.model.parameters() if p.requires_grad]
        with StopSignal() as stop, ManualGC(self.cfg.parallel.gc_every) as collector:
            loader = iter(data.loader())
            epoch_steps = data.epoch_steps(state.epoch)
            while state.step < self.total:
                if state.step_in_epoch >= epoch_steps:
                    state.epoch, state.step_in_epoch, state.consumed = state.epoch + 1, 0, 0
                    data.sampler.set_epoch(state.epoch)
                    loader, epoch_steps = iter(data.loader()), data.epoch_steps(state.epoch)
                t0 = time.perf_counter()
                row = self.train_step([next(loader) for _ in range(data.accumulation)], trainable_params)
                collector.step(state.step)
                if self.pending is not None and self.pending.poll(self.info.device):  # published once on disk
                    self.pending = None
                row["step_time_s"] = time.perf_counter() - t0
                status, message = self.after_step(row, stop)
                if status != "completed":
                    break
            if self.pending is not None:
                self.pending.wait()
        self.rejects.close()
        return status, message

    def _count(self, micro: list[Batch]) -> StepStats:
        """This rank's counts for a step (and its rejects logged), before the all-reduce."""
        local = StepStats()
        for b in micro:
            self.rejects.update(b)
            self.state.consumed += b.num_samples + len(b.rejects)
            local.rejected += len(b.rejects)
            if b.empty:
                continue
            local.num_items += b.supervised
            local.tokens += sum(b.lengths)
            local.samples += b.num_samples
            local.flops += self.fm.step_flops(int(b.inputs["pixel_values"].shape[0]), b.lengths, b.supervised)
        return local

    def train_step(self, micro: list[Batch], trainable_params: list) -> dict:
        """Forward/backward over the micro-batches, clip, update (or skip a non-finite step); the step's metrics."""
        info, state, model = self.info, self.state, self.model
        stats = self._count(micro).all_reduce(info.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=info.device)
        for b in micro:  # an all-rejected micro-batch is the collator's stand-in: loss 0, the same collectives
            outputs = model(**b.to(info.device).inputs, use_cache=False, num_items_in_batch=max(stats.num_items, 1.0),
                            loss_only=True)
            (outputs.loss * info.world_size).backward()
            loss_sum += outputs.loss.detach().double()
        dist.all_reduce(loss_sum)
        loss = float(loss_sum)
        max_norm = self.cfg.optim.max_grad_norm if self.cfg.optim.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable_params, max_norm)
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        if math.isfinite(loss) and math.isfinite(grad_norm) and stats.num_items > 0:
            self.optimizer.step()
            state.nonfinite_in_a_row = 0
        else:
            state.skipped += 1
            state.nonfinite_in_a_row += 1
            self.monitor.message(f"[train] step {state.step + 1}: loss {loss}, grad norm {grad_norm}, "
                                 f"{int(stats.num_items)} supervised tokens: update skipped "
                                 f"({state.nonfinite_in_a_row} in a row, {state.skipped} in total)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        state.step += 1
        state.step_in_epoch += 1
        state.tokens_seen += int(stats.tokens)
        return {"stats": stats, "loss": loss, "lr": lr, "grad_norm": grad_norm}

    def after_step(self, row: dict, stop: StopSignal) -> tuple[str, str]:
        """Metrics, the reject and stop checks (agreed over ranks) and checkpoints; returns (status, message)."""
        cfg, state, info = self.cfg, self.state, self.info
        stats, loss, dt = row["stats"], row["loss"], row["step_time_s"]
        seen, bad = _all_reduce([self.rejects.seen, self.rejects.num_rejected], info.device)
        too_many_rejects = seen >= self.rejects.min_samples and bad / seen > cfg.data.max_reject_fraction
        stop_now = (not too_many_rejects
                    and _all_reduce([float(stop.received is not None)], info.device, dist.ReduceOp.MAX)[0] > 0)
        status, message = "completed", ""
        if state.nonfinite_in_a_row >= cfg.logging.max_nonfinite_in_a_row:
            status = "nonfinite"
            message = (f"stopped at step {state.step}: {state.nonfinite_in_a_row} steps in a row had a non-finite "
                       f"loss or gradient norm (last loss {loss}); checkpoint saved. Lower optim.lr, check the "
                       f"data (rejects/), or raise logging.max_nonfinite_in_a_row")
        elif stop_now:
            status = "preempted"
            message = f"stop signal received: saved a checkpoint at step {state.step}; re-run the same command to resume"
        # logging.log_every: metrics every N steps, and always at the last step of the run (whatever ends it).
        last = state.step == self.total or status != "completed" or too_many_rejects
        if state.step % cfg.logging.log_every == 0 or last:
            self.monitor.log({
                "step": state.step, "loss": loss, "lr": row["lr"], "grad_norm": row["grad_norm"],
                "tokens_per_s": stats.tokens / dt, "samples_per_s": stats.samples / dt,
                "mfu": stats.flops / (dt * self.peak), "step_time_s": dt, "num_tokens": int(stats.tokens),
                "num_items": int(stats.num_items), "rejected": int(stats.rejected), "skipped": state.skipped,
                "epoch": state.epoch})
        if too_many_rejects:
            self.save("too many rejects")
            raise TooManyRejects(f"{int(bad)} of {int(seen)} samples rejected (> {cfg.data.max_reject_fraction:.1%});"
                                 f" see {self.out / 'rejects'}")
        every = cfg.checkpoint.save_every
        # save_every=0 turns periodic and final checkpoints off (benchmarks); stops always save.
        if (every > 0 and (state.step % every == 0 or state.step == self.total)) or status != "completed":
            # Periodic saves are written in the background; the last one and stops are not.
            background = cfg.checkpoint.async_checkpoint and status == "completed" and state.step < self.total
            path = self.save(status, background)
            self.monitor.message(f"[train] checkpoint {path}{' (writing in the background)' if background else ''}")
        return status, message

    def finish(self, status: str, message: str) -> TrainResult:
        """The nothing-trained check, the export and the loss curve; the run's result."""
        cfg, state, out = self.cfg, self.state, self.out
        export_dir = None
        if status == "completed" and state.step - state.skipped <= 0:
            # every step was skipped (all samples rejected, no supervised token): exporting would ship the initial model
            status = "nothing-trained"
            message = (f"no step updated the model ({state.skipped} of {state.step} skipped: every sample was rejected "
                       f"or had no supervised token; see {out / 'rejects'}); nothing exported")
        if status == "completed":
            if cfg.checkpoint.export:
                dtype = param_dtype(cfg.parallel, self.info.device)
                export_dir = export_pretrained(self.model, out / "model", self.tokenizer, dtype,
                                               cfg.checkpoint.export_max_shard_size)
            if self.info.is_main and cfg.logging.plot:
                plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
            message = f"finished {self.total} steps" + (f"; model exported to {export_dir}" if export_dir else "")
        self.monitor.message(f"[train] {status}: {message}")
        self.monitor.close()
        return TrainResult(status, state.step, self.total, out, export_dir, message)
