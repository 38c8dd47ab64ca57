"""Typed training configuration: YAML files plus `key=value` overrides.

A config file has one mapping per section (model, tune, data, batch, optim,
schedule, parallel, checkpoint, logging) and a top-level `seed`. Overrides on
the command line are `section.key=value`, or just `key=value` when the key
names a field of exactly one section (`output_dir=out max_steps=10 save_every=5`).
Values are parsed as YAML and converted to the field's declared type; a key
that is not a field is an error that names the file (or the override) and the
valid keys, so a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..overrides import OverrideTypeError, coerce, load_yaml, type_name
from ..runtime import dtype_name


class ConfigError(UserError, ValueError):
    """A bad configuration value: one line and exit 2 at the command line (errors.py)."""


@dataclass
class ModelConfig:
    """Where the weights come from: exactly one of `path`, (`vision_path` + `llm_path`), or `preset`."""

    path: str | None = None  # an InternVL-Chat checkpoint folder (released layout)
    vision_path: str | None = None  # InternViT folder (V1.2 recipe composes the model from parts)
    llm_path: str | None = None  # LLM folder (Nous-Hermes-2-Yi-34B)
    mlp_path: str | None = None  # released projector, mlp_projector/hermes_2_yi_34b.pth
    preset: str | None = None  # "tiny": a random miniature V1.2 (tests, smoke runs, benchmarks)
    preset_args: dict = field(default_factory=dict)  # e.g. {image_size: 56, llm_hidden: 64}
    template: str = "Hermes-2"
    force_image_size: int | None = 448
    downsample_ratio: float = 0.5
    select_layer: int = -1
    ps_version: str = "v1"
    drop_path_rate: float = 0.0
    attn_implementation: str | None = None  # None: flash_attention_2 for bf16 on CUDA with flash-attn, else sdpa


@dataclass
class TuneConfig:
    """What trains (the original's flags; LoRA ranks 0 = off, alpha = 2r, dropout 0.05)."""

    freeze_llm: bool = False
    freeze_backbone: bool = False
    freeze_mlp: bool = False
    unfreeze_vit_layers: int = 0  # ViT layers[N:] train (original slicing: -4 = the last 4 layers; 0 = off)
    unfreeze_lm_head: bool = False
    use_llm_lora: int = 0
    use_backbone_lora: int = 0
    lora_dropout: float = 0.05


@dataclass
class DataConfig:
    """`source`: "meta" (a V1.2 meta JSON), "synthetic" (V1.2-style files generated into the output
    folder by internvl_chat.data.synth) or "random" (in-memory random token samples; benchmarks)."""

    source: str = "meta"
    meta_path: str | None = None
    base_dir: str | None = None  # relative roots/annotations of the meta file: against this (default: its folder)
    max_seq_length: int = 2048
    pad2square: bool = False
    packing: bool = False  # pack several samples per row (position_ids restart per sample)
    group_by_length: bool = False  # the release's length-grouped order (mega-batches sorted by length)
    num_workers: int = 2
    max_reject_fraction: float = 0.05
    synthetic_train: int = 64  # source=synthetic: samples per task (4 tasks); source=random: samples
    synthetic_seed: int = 0
    random_sample_length: int = 0  # source=random: tokens per sample (0: max_seq_length)


@dataclass
class BatchConfig:
    """Accumulation is derived: global = per_device x accumulation x world size, never hand-set."""

    global_batch_size: int = 512
    per_device_batch_size: int = 8


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.05  # applied to >=2-D weight matrices only (not norms, biases, ls, embeddings' pos)
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    lr_multipliers: dict = field(default_factory=dict)  # module prefix -> factor on lr, e.g. {mlp1: 10}


@dataclass
class ScheduleConfig:
    lr_scheduler: str = "cosine"  # cosine | constant
    warmup_ratio: float = 0.03
    num_train_epochs: float = 1.0
    max_steps: int = 0  # >0 overrides num_train_epochs
    min_lr_ratio: float = 0.0


@dataclass
class ParallelConfig:
    dtype: str = "auto"  # parameter dtype under FSDP: auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    reduce_dtype: str = "fp32"  # gradient reduction dtype
    cpu_offload: bool = False
    activation_checkpointing: bool = True
    activation_checkpointing_every: int = 1  # recompute every Nth ViT block / LLM layer (1: all; 2: half, ...)
    reshard_after_forward: bool = True
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | nccl | gloo
    compile: bool = False  # torch.compile each sharded block
    num_threads: int = 0  # CPU threads per process (0: torch's default; torchrun sets 1 per process)
    gc_every: int = 50  # Python GC off in the loop, collected every N steps on all ranks (0: leave GC alone)
    fused_optimizer: bool = True  # torch.optim.AdamW(fused=True) when the parameters are on CUDA


@dataclass
class CheckpointConfig:
    save_every: int = 200  # also saves at the end; 0 = no checkpoints except on a stop (benchmarks)
    keep_last: int = 1
    resume: bool = True  # resume from the newest complete checkpoint in output_dir
    async_checkpoint: bool = True  # periodic checkpoints written in the background (dcp.async_save)
    export: bool = True  # consolidated save_pretrained at the end
    export_max_shard_size: str = "5GB"


@dataclass
class LoggingConfig:
    output_dir: str = "outputs/run"
    log_every: int = 1
    progress_bar: bool = True
    tensorboard: bool = True
    plot: bool = True
    max_nonfinite_in_a_row: int = 5  # consecutive skipped (non-finite) steps that stop the run
    peak_flops: float = 0.0  # per device; 0 = look it up (train/flops.py)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    data: DataConfig = field(default_factory=DataConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 42

    def gradient_accumulation(self, world_size: int) -> int:
        per_step = self.batch.per_device_batch_size * world_size
        if self.batch.per_device_batch_size < 1 or self.batch.global_batch_size < 1:
            raise ConfigError("batch.global_batch_size and batch.per_device_batch_size must be >= 1")
        if self.batch.global_batch_size % per_step:
            raise ConfigError(
                f"batch.global_batch_size={self.batch.global_batch_size} is not divisible by "
                f"per_device_batch_size={self.batch.per_device_batch_size} x world_size={world_size}")
        return self.batch.global_batch_size // per_step


SECTIONS = [f.name for f in dataclasses.fields(TrainConfig) if dataclasses.is_dataclass(f.default_factory)]


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML-parsed value to a field's declared type (lenient: command-line spellings), or raise
    naming `where`."""
    try:
        return coerce(value, annotation, strict=False)
    except OverrideTypeError as e:
        if e.null:
            raise ConfigError(f"{where}: null is not allowed here (expected {type_name(annotation)})") from None
        raise ConfigError(f"{where}: cannot use {value!r} as {type_name(e.annotation)}") from None


def _apply(cfg: TrainConfig, section: str, key: str, value: Any, where: str) -> None:
    sec = getattr(cfg, section)
    hints = typing.get_type_hints(type(sec))
    if key not in hints:
        raise ConfigError(f"{where}: unknown key {section}.{key}; valid keys of '{section}': {', '.join(hints)}")
    setattr(sec, key, _coerce(value, hints[key], where))


def _resolve_key(key: str, where: str) -> tuple[str | None, str]:
    """'section.key' -> (section, key); a bare 'key' -> the one section that has it (or top level)."""
    if "." in key:
        section, sub = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
        return section, sub
    if key == "seed":
        return None, key
    section_types = typing.get_type_hints(TrainConfig)
    owners = [s for s in SECTIONS if key in typing.get_type_hints(section_types[s])]
    if not owners:
        raise ConfigError(f"{where}: unknown key {key!r} (not a field of any section: {', '.join(SECTIONS)})")
    if len(owners) > 1:
        raise ConfigError(f"{where}: key {key!r} is ambiguous; write one of {', '.join(o + '.' + key for o in owners)}")
    return owners[0], key


def config_from_dict(data: dict, source: str = "<dict>") -> TrainConfig:
    cfg = TrainConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    for top, body in data.items():
        if top == "seed":
            cfg.seed = _coerce(body, int, f"{source}: seed")
            continue
        if top not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {top!r}; sections: {', '.join(SECTIONS)}, seed")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: section {top!r} must be a mapping, got {type(body).__name__}")
        for key, value in body.items():
            _apply(cfg, top, key, value, f"{source}: {top}.{key}")
    return cfg


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    for item in overrides:
        where = f"override {item!r}"
        if "=" not in item:
            raise ConfigError(f"{where}: expected key=value (e.g. output_dir=out or optim.lr=2e-5)")
        key, raw = item.split("=", 1)
        section, sub = _resolve_key(key.strip(), where)
        value = load_yaml(raw) if raw.strip() else ""
        if section is None:
            cfg.seed = _coerce(value, int, where)
        else:
            _apply(cfg, section, sub, value, where)
            # remembered (not a dataclass field, so not saved) for the "set but unused" checks in validate()
            cfg.__dict__.setdefault("_overridden", set()).add(f"{section}.{sub}")
    return cfg


def read_yaml(path: Path, error: type[Exception] = ConfigError, what: str = "config file") -> Any:
    """A YAML file's content ({} when empty); `error` names the file when it is absent or not YAML.
    The demo's config reads its file with it too."""
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file (or None for all defaults) + overrides -> a validated TrainConfig."""
    cfg = TrainConfig() if path is None else config_from_dict(read_yaml(Path(path)), str(path))
    apply_overrides(cfg, overrides or [])
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    m = cfg.model
    sources = [bool(m.path), bool(m.vision_path or m.llm_path), bool(m.preset)]
    if sum(sources) != 1:
        raise ConfigError("model: set exactly one of model.path, model.vision_path + model.llm_path, model.preset")
    if (m.vision_path or m.llm_path) and not (m.vision_path and m.llm_path):
        raise ConfigError("model: composing from parts needs both model.vision_path and model.llm_path")
    if m.preset and m.preset != "tiny":
        raise ConfigError(f"model.preset: unknown preset {m.preset!r} (only 'tiny' is trainable from scratch)")
    if m.preset:
        _check_preset_args(m.preset_args)
    if cfg.data.source not in ("meta", "synthetic", "random"):
        raise ConfigError(f"data.source must be meta, synthetic or random, got {cfg.data.source!r}")
    if cfg.data.packing and cfg.data.group_by_length:
        raise ConfigError("data.packing and data.group_by_length are alternatives; choose one")
    if cfg.data.source == "meta" and not cfg.data.meta_path:
        raise ConfigError("data.source=meta needs data.meta_path")
    if cfg.data.source != "meta" and cfg.data.meta_path:
        # a set option is used or refused: never train on generated data while the user named a file
        raise ConfigError(f"data.meta_path={cfg.data.meta_path} is set but data.source={cfg.data.source} does not "
                          f"read it; add data.source=meta to train on that file, or drop meta_path")
    _validate_numbers(cfg)
    _refuse_unused(cfg)
    if cfg.schedule.lr_scheduler not in ("cosine", "constant"):
        raise ConfigError(f"schedule.lr_scheduler must be cosine or constant, got {cfg.schedule.lr_scheduler!r}")
    if not 0.0 <= cfg.schedule.warmup_ratio < 1.0:
        raise ConfigError(f"schedule.warmup_ratio must be in [0, 1), got {cfg.schedule.warmup_ratio}")
    cfg.parallel.dtype, cfg.parallel.reduce_dtype = map(dtype_name, (cfg.parallel.dtype, cfg.parallel.reduce_dtype))
    if cfg.parallel.dtype not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"parallel.dtype must be auto, bf16 or fp32, got {cfg.parallel.dtype!r}")
    if cfg.parallel.reduce_dtype not in ("bf16", "fp32"):
        raise ConfigError(f"parallel.reduce_dtype must be bf16 or fp32, got {cfg.parallel.reduce_dtype!r}")
    if cfg.parallel.activation_checkpointing_every < 1:
        raise ConfigError("parallel.activation_checkpointing_every must be >= 1")
    if cfg.checkpoint.keep_last < 1:
        raise ConfigError("checkpoint.keep_last must be >= 1")
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"optim.betas must have two values, got {cfg.optim.betas}")


def _validate_numbers(cfg: TrainConfig) -> None:
    """Values that would train nothing, or something other than asked, without any error."""
    if not str(cfg.logging.output_dir).strip():
        raise ConfigError("logging.output_dir is empty; give a folder (output_dir=work_dirs/run)")
    if cfg.batch.per_device_batch_size < 1 or cfg.batch.global_batch_size < 1:
        raise ConfigError("batch.global_batch_size and batch.per_device_batch_size must be >= 1")
    if cfg.schedule.max_steps < 0:
        raise ConfigError(f"schedule.max_steps must be >= 0 (0: use num_train_epochs), got {cfg.schedule.max_steps}")
    if cfg.schedule.max_steps == 0 and not cfg.schedule.num_train_epochs > 0:
        raise ConfigError(f"schedule.num_train_epochs must be > 0 when max_steps=0, "
                          f"got {cfg.schedule.num_train_epochs}")
    if not cfg.optim.lr > 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    for name in ("weight_decay", "eps"):
        if getattr(cfg.optim, name) < 0:
            raise ConfigError(f"optim.{name} must be >= 0, got {getattr(cfg.optim, name)}")
    if not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise ConfigError(f"optim.betas must be in [0, 1), got {cfg.optim.betas}")
    if not 0.0 <= cfg.schedule.min_lr_ratio <= 1.0:
        raise ConfigError(f"schedule.min_lr_ratio must be in [0, 1], got {cfg.schedule.min_lr_ratio}")
    if not 0.0 <= cfg.data.max_reject_fraction <= 1.0:
        raise ConfigError(f"data.max_reject_fraction must be in [0, 1], got {cfg.data.max_reject_fraction}")
    if cfg.data.max_seq_length < 1:
        raise ConfigError(f"data.max_seq_length must be >= 1, got {cfg.data.max_seq_length}")
    if cfg.data.num_workers < 0 or cfg.checkpoint.save_every < 0 or cfg.logging.log_every < 1:
        raise ConfigError("data.num_workers and checkpoint.save_every must be >= 0, logging.log_every >= 1")
    if cfg.logging.max_nonfinite_in_a_row < 1:
        raise ConfigError("logging.max_nonfinite_in_a_row must be >= 1")


def _check_preset_args(args: dict) -> None:
    """Build the preset's config (no weights): a key or value it cannot take is the user's mistake, said
    here instead of as transformers' validation traceback when the model is built."""
    from huggingface_hub.errors import StrictDataclassError

    from ..errors import one_line
    from ..model.presets import tiny_config

    try:
        tiny_config(**args)
    except (TypeError, ValueError, StrictDataclassError) as e:
        raise ConfigError(f"model.preset_args: {one_line(e)}") from None


def _refuse_unused(cfg: TrainConfig) -> None:
    """A set option is used or refused: options that the rest of the config makes irrelevant."""
    m, d = cfg.model, cfg.data
    given = cfg.__dict__.get("_overridden", set())  # on the command line: a file may carry shared defaults
    if "model.mlp_path" in given and m.mlp_path and not m.vision_path:
        raise ConfigError("model.mlp_path is only used when composing from parts (model.vision_path + llm_path)")
    if "model.preset_args" in given and m.preset_args and not m.preset:
        raise ConfigError("model.preset_args is only used with model.preset")
    unused = {"meta": ("data.synthetic_train", "data.synthetic_seed", "data.random_sample_length"),
              "synthetic": ("data.base_dir", "data.random_sample_length"),
              "random": ("data.base_dir", "data.synthetic_seed")}[d.source]
    for key in unused:
        if key in given:
            raise ConfigError(f"{key} is set but data.source={d.source} does not use it")
    if "tune.lora_dropout" in given and not (cfg.tune.use_llm_lora or cfg.tune.use_backbone_lora):
        raise ConfigError("tune.lora_dropout is set but no LoRA is on (tune.use_llm_lora / use_backbone_lora)")
