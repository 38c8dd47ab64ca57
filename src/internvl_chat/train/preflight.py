"""Checks of a training config against the file system, before any rank loads a model.

`validate()` in config.py checks values; this checks that what the values name
exists and fits: the model folders, the meta file and every annotation it
lists, the output folder, the batch split for this world size, and a previous
run in the output folder that a resume would continue.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UserError
from ..validate import (check_input_file, check_model_dir, check_output_dir, check_safetensors, check_tokenizer_dir,
                        weight_files)
from .config import ConfigError, TrainConfig


def _world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _check_model(cfg: TrainConfig) -> None:
    m = cfg.model
    if m.path:
        check_model_dir(m.path, what="model.path")
    if m.vision_path:
        check_model_dir_plain(m.vision_path, "model.vision_path")
    if m.llm_path:
        check_model_dir_plain(m.llm_path, "model.llm_path")
        check_tokenizer_dir(m.llm_path, "model.llm_path")
    if m.mlp_path:
        check_input_file(m.mlp_path, "model.mlp_path")


def check_model_dir_plain(path: str, what: str) -> None:
    """A part's folder (InternViT, LLM): exists with a config.json; transformers reads the rest."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{what}={path}: folder does not exist" if not p.exists() else f"{what}={path} is a file")
    if not (p / "config.json").is_file():
        raise UserError(f"{what}={path}: no config.json in that folder")
    for f in weight_files(p):
        check_safetensors(f)


def _check_data(cfg: TrainConfig) -> None:
    if cfg.data.source != "meta":
        return
    from ..data.formats import load_meta

    meta = check_input_file(cfg.data.meta_path, "data.meta_path")
    specs = load_meta(meta, cfg.data.base_dir)  # MetaError names the file and the entry
    missing = [f"{s.name}: {s.annotation}" for s in specs if not Path(s.annotation).is_file()]
    if missing:
        raise UserError(f"{meta}: annotation file(s) not found: {'; '.join(missing[:3])}"
                        + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
                        + " (relative paths resolve against data.base_dir, default the meta file's folder)")


def _check_resume(cfg: TrainConfig) -> None:
    """A resume into a run of another schedule is refused here when the step count is known up front."""
    if not cfg.checkpoint.resume or cfg.schedule.max_steps <= 0:
        return  # epoch-based totals need the data; the loop checks those
    from .checkpoint import TRAINER_STATE, latest_checkpoint

    latest = latest_checkpoint(Path(cfg.logging.output_dir) / "checkpoints")
    if latest is None:
        return
    try:
        state = json.loads((latest / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{latest}: unreadable {TRAINER_STATE} ({e}); delete that checkpoint folder") from None
    if state.get("total_steps") != cfg.schedule.max_steps:
        raise UserError(f"output_dir {cfg.logging.output_dir} holds a run of {state.get('total_steps')} steps "
                        f"({latest.name}); this config asks for {cfg.schedule.max_steps}: the lr schedule would "
                        f"differ. Use a new output_dir, or checkpoint.resume=false to start over there")
    if state.get("world_size") not in (None, _world_size()):
        raise UserError(f"{latest} was written by {state['world_size']} processes, this run has {_world_size()}; "
                        "resume with the same number of processes, or use a new output_dir")


def preflight(cfg: TrainConfig) -> None:
    """Raise UserError (one line) for anything that would fail after the ranks started."""
    try:
        cfg.gradient_accumulation(_world_size())
    except ConfigError as e:
        raise ConfigError(f"{e} (global batch = per_device_batch_size x accumulation x processes)") from None
    check_output_dir(cfg.logging.output_dir, "logging.output_dir")
    _check_model(cfg)
    _check_data(cfg)
    _check_resume(cfg)
