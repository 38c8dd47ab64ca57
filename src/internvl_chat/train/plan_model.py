"""The model a config trains, as a config only (no weights): what `internvl-chat plan` builds at full size.

Sources, as `model_setup.load_source_model` reads them: the tiny preset (built for
real, it is small), a released InternVL-Chat folder's config.json, or the V1.2
recipe's parts (the InternViT folder's and the LLM folder's config.json, the
embeddings grown by the InternVL special tokens as `compose_from_parts` does).
Planning usually happens before the weights are downloaded, so when the parts'
folders are absent and they are the published V1.2 parts (InternViT-6B-448px-V1-2
and Nous-Hermes-2-Yi-34B, matched by folder name) the published shapes are used
(`presets.v1_2_config`, 40.07B parameters), and the plan says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..constants import IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN
from ..model import InternVLChatConfig
from ..model.tokenizer import ADDED_SPECIAL_TOKENS
from .config import ConfigError, TrainConfig

V1_2_PARTS = ("InternViT-6B-448px-V1-2", "Nous-Hermes-2-Yi-34B")


@dataclass
class PlannedModel:
    config: InternVLChatConfig
    token_ids: dict[str, int]  # IMG_START / IMG_CONTEXT / IMG_END
    note: str = ""  # where the shapes came from, when not from the configured files


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the model config: {e}") from None


def _special_ids(vocab_size: int) -> dict[str, int]:
    """Ids of the InternVL tokens when no tokenizer is at hand: they are appended last, in this order."""
    first = vocab_size - len(ADDED_SPECIAL_TOKENS)
    ids = {t: first + i for i, t in enumerate(ADDED_SPECIAL_TOKENS)}
    return {t: ids[t] for t in (IMG_START_TOKEN, IMG_CONTEXT_TOKEN, IMG_END_TOKEN)}


def _with_recipe(config: InternVLChatConfig, cfg: TrainConfig, parts: bool = True) -> InternVLChatConfig:
    """The fine-tuning overrides load_source_model applies to a checkpoint (and, composing from
    parts, the image size and downsampling compose_from_parts takes from the config)."""
    m = cfg.model
    data = config.to_dict()
    data.update(template=m.template, select_layer=m.select_layer, ps_version=m.ps_version,
                use_llm_lora=0, use_backbone_lora=0)
    if parts:
        data["downsample_ratio"] = m.downsample_ratio
        data["force_image_size"] = m.force_image_size or data["vision_config"]["image_size"]
    data["vision_config"]["drop_path_rate"] = m.drop_path_rate
    return InternVLChatConfig(**data)


def _from_parts(cfg: TrainConfig) -> PlannedModel:
    m = cfg.model
    vision, llm = Path(m.vision_path), Path(m.llm_path)
    if (vision / "config.json").is_file() and (llm / "config.json").is_file():
        vcfg, lcfg = _read_json(vision / "config.json"), _read_json(llm / "config.json")
        # compose_from_parts grows the embeddings to len(tokenizer) once the InternVL tokens are added.
        added = len(ADDED_SPECIAL_TOKENS)
        tokenizer_json = llm / "tokenizer.json"
        if tokenizer_json.is_file():
            vocab = _read_json(tokenizer_json).get("added_tokens", [])
            added -= sum(1 for t in vocab if t.get("content") in ADDED_SPECIAL_TOKENS)
        lcfg["vocab_size"] = int(lcfg["vocab_size"]) + added
        config = InternVLChatConfig(vision_config=vcfg, llm_config=lcfg)
        return PlannedModel(_with_recipe(config, cfg), _special_ids(lcfg["vocab_size"]))
    if (vision.name, llm.name) == V1_2_PARTS:
        from ..model.presets import v1_2_config

        config = _with_recipe(v1_2_config(), cfg)
        note = (f"{vision} / {llm} not found: planned with the published V1.2 shapes "
                "(internvl_chat.model.presets.v1_2_config)")
        return PlannedModel(config, _special_ids(config.llm_config.vocab_size), note)
    missing = vision if not (vision / "config.json").is_file() else llm
    raise ConfigError(f"model: {missing / 'config.json'} not found (the planner needs the parts' config.json files)")


def planned_model(cfg: TrainConfig) -> PlannedModel:
    m = cfg.model
    if m.preset:
        from .model_setup import load_source_model, load_tokenizer

        tokenizer = load_tokenizer(cfg)
        source = load_source_model(cfg, tokenizer)
        config = InternVLChatConfig(**dict(source.config.to_dict(), use_llm_lora=0, use_backbone_lora=0))
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (IMG_START_TOKEN, IMG_CONTEXT_TOKEN, IMG_END_TOKEN)}
        return PlannedModel(config, ids)
    if m.path:
        path = Path(m.path) / "config.json"
        if not path.is_file():
            raise ConfigError(f"model.path: {path} not found")
        config = InternVLChatConfig(**_read_json(path))
        return PlannedModel(_with_recipe(config, cfg, parts=False), _special_ids(config.llm_config.vocab_size))
    return _from_parts(cfg)
