"""Sharded, atomic, resumable checkpoints (torch.distributed.checkpoint) and the final export.

Layout of `OUTPUT/checkpoints/step_N/`:
- `.metadata`, `__R_0.distcp`: DCP shards of {"model", "optim"} (each rank writes its own);
- `trainer_state.json`: step, scheduler, counters, world size, the config (rank 0);
- `rank_R.json`: that rank's sampler position and RNG states (python, numpy, torch CPU/CUDA).

Everything is written into `step_N.tmp/` and renamed to `step_N/` by rank 0
after every rank has finished, so a folder without the `.tmp` suffix is complete
by construction; `.tmp` folders (a run killed while saving) are never read and
are removed by the next save. The last `keep_last` checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_state_dict,
                                                     set_state_dict)

STEP_DIR = re.compile(r"^step_(\d+)$")
TRAINER_STATE = "trainer_state.json"


class CheckpointError(RuntimeError):
    pass


# -- RNG states as JSON (no pickle anywhere in a checkpoint) ----------------------------------
def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# -- finding checkpoints ---------------------------------------------------------------------
def complete_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint under `root`, oldest first; `.tmp` folders never count."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = STEP_DIR.match(d.name)
        if m and d.is_dir() and (d / TRAINER_STATE).is_file() and (d / ".metadata").is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1][1] if found else None


# -- save / load -----------------------------------------------------------------------------
def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    tmp.replace(path)


_CKPT_GROUP = None


def _background_group():
    """A gloo group of its own for the background writer's collectives: they run in another thread
    and must not interleave with the training's collectives on the default group (created once,
    collectively; even a gloo default group corrupts when two threads share it)."""
    global _CKPT_GROUP
    world = dist.group.WORLD
    if _CKPT_GROUP is None or _CKPT_GROUP[0] is not world:  # a new default group (tests re-initialise)
        _CKPT_GROUP = (world, dist.new_group(backend="gloo"))
    return _CKPT_GROUP[1]


class PendingCheckpoint:
    """A checkpoint being written (in the background when `future` is set). `wait()` (collective)
    completes it: once every rank's shards are on disk, rank 0 renames `step_N.tmp` to `step_N` and
    prunes old ones."""

    def __init__(self, future, root: Path, tmp: Path, final: Path, keep_last: int):
        self.future, self.root, self.tmp, self.final, self.keep_last = future, root, tmp, final, keep_last

    def poll(self, device) -> bool:
        """Collective, cheap: publish the checkpoint if every rank has finished writing; True once published."""
        if self.future is None:
            return True
        done = torch.tensor([float(self.future.done())], device=device)
        dist.all_reduce(done, op=dist.ReduceOp.MIN)
        if float(done) > 0:
            self.wait()
            return True
        return False

    def wait(self) -> Path:
        if self.future is not None:
            self.future.result()
            self.future = None
            self.publish()
        return self.final

    def publish(self) -> Path:
        """Collective, once every rank's files are written: rank 0 renames `step_N.tmp` and prunes."""
        dist.barrier()
        if dist.get_rank() == 0:
            if self.final.exists():  # the same step saved before (e.g. pre-emption right after a periodic save)
                shutil.rmtree(self.final)
            self.tmp.rename(self.final)
            for _, old in complete_checkpoints(self.root)[:-self.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()
        return self.final


def save_checkpoint(root: str | Path, step: int, model, optimizer, trainer_state: dict, rank_state: dict,
                    keep_last: int = 1, background: bool = False) -> Path | PendingCheckpoint:
    """Collective: every rank calls it. Returns the final folder, or with `background=True` a
    `PendingCheckpoint` (dcp.async_save: the shards are staged to host memory now and written while
    training goes on) whose `wait()` must be called before the next save and before exit."""
    root = Path(root)
    rank = dist.get_rank()
    final, tmp = root / f"step_{step}", root / f"step_{step}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("step_*.tmp"):  # left by a run killed mid-save
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    dist.barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    if background:
        future = dcp.async_save(state, checkpoint_id=str(tmp), process_group=_background_group())
    else:
        dcp.save(state, checkpoint_id=str(tmp))
    _write_json(tmp / f"rank_{rank}.json", rank_state)
    if rank == 0:
        _write_json(tmp / TRAINER_STATE, trainer_state)
    pending = PendingCheckpoint(future if background else None, root, tmp, final, keep_last)
    return pending if background else pending.publish()


def load_checkpoint(folder: str | Path, model, optimizer) -> tuple[dict, dict | None]:
    """Restore model + optimizer shards in place; return (trainer_state, this rank's state or None)."""
    folder = Path(folder)
    if folder.name.endswith(".tmp") or not (folder / TRAINER_STATE).is_file():
        raise CheckpointError(f"{folder} is not a complete checkpoint")
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    trainer_state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    rank_file = folder / f"rank_{dist.get_rank()}.json"
    rank_state = json.loads(rank_file.read_text(encoding="utf-8")) if rank_file.is_file() else None
    return trainer_state, rank_state


# -- consolidated export ---------------------------------------------------------------------
def _full_tensor(value, device) -> torch.Tensor:
    """One parameter gathered whole (collective for a DTensor); offloaded shards travel via `device`."""
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        if value.device.type != torch.device(device).type:  # CPU-offloaded shards: NCCL gathers CUDA tensors only
            value = value.to(device)
        return value.full_tensor()
    return value


EXPORT_MAX_SHARD_SIZE = "5GB"  # as transformers' save_pretrained default


def export_pretrained(model, out_dir: str | Path, tokenizer=None, dtype: torch.dtype | None = None,
                      max_shard_size: str = EXPORT_MAX_SHARD_SIZE, device: torch.device | str | None = None) -> Path | None:
    """Collective: write the released layout (config.json + sharded safetensors with an index +
    tokenizer) on rank 0, loadable by InternVLChatModel.from_pretrained.

    Streams: parameters are gathered one at a time, cast to `dtype` and appended to the current
    safetensors shard, which is written and dropped once it reaches `max_shard_size`. Rank 0's extra
    host memory is one shard plus one tensor, never the full model (40B in fp32 is ~150 GiB).
    """
    from safetensors.torch import save_file
    from transformers.utils.hub import convert_file_size_to_int

    from ..model import InternVLChatModel

    rank = dist.get_rank()
    device = device if device is not None else next(model.parameters()).device
    if isinstance(device, torch.device) and device.type == "cpu" and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    limit = convert_file_size_to_int(max_shard_size)
    sharded = get_model_state_dict(model)  # this rank's shards (DTensors): no copy
    with torch.device("meta"):
        plain = InternVLChatModel(model.config)
    tied = set(getattr(plain, "all_tied_weights_keys", {}) or {})  # written once, as save_pretrained does
    expected = set(plain.state_dict()) - tied
    names = [k for k in sharded if k not in tied]
    if set(names) != expected:
        raise CheckpointError(f"export: state dict does not match the model (missing {sorted(expected - set(names))[:5]}, "
                              f"unexpected {sorted(set(names) - expected)[:5]})")
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    files: list[list[str]] = []
    shard: dict[str, torch.Tensor] = {}
    used = total = 0

    def flush() -> None:
        nonlocal shard, used
        if shard:
            files.append(list(shard))
            save_file(shard, str(tmp / f"part-{len(files)}.safetensors"), metadata={"format": "pt"})
        shard, used = {}, 0

    for name in names:
        full = _full_tensor(sharded[name], device)
        if rank == 0:
            t = full.to("cpu", dtype if dtype is not None and full.is_floating_point() else full.dtype).contiguous()
            size = t.numel() * t.element_size()
            if shard and used + size > limit:
                flush()
            shard[name], used, total = t, used + size, total + size
        del full
    if rank == 0:
        flush()
        _name_shards(tmp, files, total)
        model.config.save_pretrained(tmp)
        if getattr(plain, "generation_config", None) is not None:
            plain.generation_config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    dist.barrier()
    return out if rank == 0 else None


def _name_shards(folder: Path, files: list[list[str]], total: int) -> None:
    """Rename part-K files to the released names and write the index (one file: model.safetensors)."""
    n = len(files)
    if n == 1:
        (folder / "part-1.safetensors").rename(folder / "model.safetensors")
        return
    weight_map = {}
    for k, keys in enumerate(files, start=1):
        final = f"model-{k:05d}-of-{n:05d}.safetensors"
        (folder / f"part-{k}.safetensors").rename(folder / final)
        weight_map.update(dict.fromkeys(keys, final))
    _write_json(folder / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
