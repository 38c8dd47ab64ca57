"""The demo's own settings (configs/demo/demo.yaml): data size, the InternViT to train, the LLM, the stages.

The three training stages are ordinary training-stack configs (configs/demo/stage0.yaml,
stage1.yaml, stage2.yaml); the demo only fills in the paths it creates. Overrides on the
command line are `section.key=value`; `stageN.KEY=VALUE` is passed through to that
stage's training config (e.g. `stage1.max_steps=2`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..overrides import OverrideTypeError, coerce, load_yaml
from ..train.config import read_yaml

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "demo" / "demo.yaml"


class DemoConfigError(ValueError):
    pass


@dataclass
class DataSettings:
    n_train: int = 1500  # images per task (each with one to four question turns)
    n_test: int = 50  # held-out questions per task
    image_size: int = 56
    seed: int = 0
    # Knobs of internvl_chat.data.synth.generate (defaults: the full multi-turn mix).
    question_kinds: dict = field(default_factory=dict)  # {task: [kind, ...]}, see synth.QUESTION_KINDS
    single_question: bool = False  # one question per training image
    short_answer_suffix: bool = False  # "Answer the question using a single word or phrase."
    fixed_choice_order: bool = False  # lettered options always in the same order


@dataclass
class LLMSettings:
    source: str = "auto"  # auto (SmolLM2, else scratch with an explanation) | smollm2 | scratch
    scratch_hidden: int = 256
    scratch_layers: int = 4
    scratch_vocab: int = 1000


@dataclass
class StageSettings:
    config: str = ""  # training-stack YAML, relative to the demo config's folder
    overrides: list = field(default_factory=list)  # key=value for `internvl-chat train`


@dataclass
class EvalSettings:
    batch_size: int = 50
    dtype: str = "fp32"
    chat_image: str = "shapes-test-0"  # test sample id whose image the sample chat is about
    chat_questions: list = field(default_factory=lambda: [
        "Describe the image.", "How many shapes are there?", "What colour is the shape in the top left?"])


@dataclass
class DemoConfig:
    data: DataSettings = field(default_factory=DataSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    stage0: StageSettings = field(default_factory=StageSettings)
    stage1: StageSettings = field(default_factory=StageSettings)
    stage2: StageSettings = field(default_factory=StageSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    threads: int = 0  # torch CPU threads (0: all cores)
    base_dir: Path = Path(".")  # folder of the YAML file (stage configs are relative to it)

    def stage_config_path(self, stage: StageSettings) -> Path:
        return (self.base_dir / stage.config).resolve()


SECTIONS = ("data", "llm", "stage0", "stage1", "stage2", "eval")
STAGES = ("stage0", "stage1", "stage2")


def _set(cfg: DemoConfig, section: str, key: str, value, where: str, raw: str | None = None) -> None:
    if section in STAGES and key not in ("config", "overrides"):
        # Anything else is a training-stack key: keep it as a `key=value` override for that stage.
        text = raw if raw is not None else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        getattr(cfg, section).overrides.append(f"{key}={text}")
        return
    sec = getattr(cfg, section)
    hints = typing.get_type_hints(type(sec))
    if key not in hints:
        raise DemoConfigError(f"{where}: unknown key {section}.{key}; valid keys: {', '.join(hints)}")
    try:  # strict: the YAML value must already have the field's type
        setattr(sec, key, coerce(value, hints[key], strict=True))
    except OverrideTypeError:
        raise DemoConfigError(f"{where}: {section}.{key} must be a {type(getattr(sec, key)).__name__}, "
                              f"got {value!r}") from None


def _threads(value, where: str) -> int:
    try:
        return coerce(value, int, strict=True)
    except OverrideTypeError:
        raise DemoConfigError(f"{where}: threads must be a whole number (0: all cores), got {value!r}") from None


def load_demo_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DemoConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    data = read_yaml(path, DemoConfigError, "demo config")
    cfg = DemoConfig(base_dir=path.resolve().parent)
    for section, body in data.items():
        if section == "threads":
            cfg.threads = _threads(body, f"{path}: threads")
            continue
        if section not in SECTIONS or not isinstance(body, dict):
            raise DemoConfigError(f"{path}: {section!r} must be one of the sections {', '.join(SECTIONS)}, threads "
                                  "and hold a mapping")
        for key, value in body.items():
            _set(cfg, section, key, value, f"{path}: {section}.{key}")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            if key == "threads" and sep:
                cfg.threads = _threads(load_yaml(raw), f"override {item!r}")
                continue
            raise DemoConfigError(f"override {item!r}: expected section.key=value (e.g. data.n_train=8, stage1.max_steps=2)")
        section, sub = key.split(".", 1)
        if section not in SECTIONS:
            raise DemoConfigError(f"override {item!r}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
        _set(cfg, section, sub, load_yaml(raw), f"override {item!r}", raw=raw)
    for stage in STAGES:
        if not getattr(cfg, stage).config:
            raise DemoConfigError(f"{path}: {stage}.config (the stage's training YAML) is not set")
        p = cfg.stage_config_path(getattr(cfg, stage))
        if not p.is_file():
            raise DemoConfigError(f"{path}: {stage}.config points to {p}, which does not exist")
    if cfg.llm.source not in ("auto", "smollm2", "scratch"):
        raise DemoConfigError(f"llm.source must be auto, smollm2 or scratch, got {cfg.llm.source!r}")
    return cfg
