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
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
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


def save_checkpoint(root: str | Path, step: int, model, optimizer, trainer_state: dict, rank_state: dict,
                    keep_last: int = 1) -> Path:
    """Collective: every rank calls it. Returns the final folder."""
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
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    _write_json(tmp / f"rank_{rank}.json", rank_state)
    if rank == 0:
        _write_json(tmp / TRAINER_STATE, trainer_state)
    dist.barrier()
    if rank == 0:
        if final.exists():  # the same step saved before (e.g. pre-emption right after a periodic save)
            shutil.rmtree(final)
        tmp.rename(final)
        for _, old in complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


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
def export_pretrained(model, out_dir: str | Path, tokenizer=None, dtype: torch.dtype | None = None,
                      max_shard_size: str = "5GB") -> Path | None:
    """Collective: gather full weights onto rank 0 (CPU) and write the released layout there
    (config.json + sharded safetensors + tokenizer), loadable by InternVLChatModel.from_pretrained."""
    from ..model import InternVLChatModel

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    out = Path(out_dir)
    if dist.get_rank() == 0:
        with torch.device("meta"):
            plain = InternVLChatModel(model.config)
        if dtype is not None:
            full = {k: v.to(dtype) if v.is_floating_point() else v for k, v in full.items()}
        missing, unexpected = plain.load_state_dict(full, strict=False, assign=True)
        if missing or unexpected:
            raise CheckpointError(f"export: state dict does not match the model (missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]})")
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        plain.save_pretrained(tmp, max_shard_size=max_shard_size)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    dist.barrier()
    return out if dist.get_rank() == 0 else None
