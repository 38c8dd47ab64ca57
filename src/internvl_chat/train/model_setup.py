"""Build the model to train: rank 0 loads real weights, every rank builds the same skeleton on meta.

Three sources (config `model.*`): a released InternVL-Chat folder (`path`), the
V1.2 recipe's parts (`vision_path` + `llm_path` + `mlp_path`), or the `tiny`
preset. Like the original, fine-tuning overrides drop_path_rate, template,
select_layer and ps_version on a loaded checkpoint.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..constants import IMG_CONTEXT_TOKEN
from ..model import InternVLChatConfig, InternVLChatModel, compose_from_parts
from ..model.modeling import resolve_attn_implementation
from ..runtime import DistInfo
from .config import TrainConfig
from .lora import apply_tuning
from .parallel import enable_activation_checkpointing, materialise_from_rank0, param_dtype, shard_model


def load_tokenizer(cfg: TrainConfig):
    m = cfg.model
    if m.preset:
        from ..model.tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer(**({"vocab_size": m.preset_args["vocab_size"]} if "vocab_size" in m.preset_args else {}))
    from ..model.tokenizer import load_tokenizer as load_folder

    return load_folder(m.path or m.llm_path)  # registers the nine InternVL tokens


def load_source_model(cfg: TrainConfig, tokenizer, parts_dtype: torch.dtype = torch.float32) -> InternVLChatModel:
    """The full model with real weights (rank 0 only): a checkpoint in its own dtype, parts in
    `parts_dtype` (the compute dtype: bf16 as the original on GPU, fp32 on CPU)."""
    m = cfg.model
    if m.preset:
        from ..model.presets import build_tiny_model

        args = {k: v for k, v in m.preset_args.items() if k != "vocab_size"}
        model, _ = build_tiny_model(tokenizer=tokenizer, seed=cfg.seed, **args)
        # Only the state dict of this source is used; the trained skeleton is built from this config,
        # so setting drop path here is enough for its DropPath modules to exist.
        model.config.vision_config.drop_path_rate = m.drop_path_rate
        return model.float()
    if m.path:
        config = InternVLChatConfig.from_pretrained(m.path)
        config.vision_config.drop_path_rate = m.drop_path_rate
        config.template, config.select_layer, config.ps_version = m.template, m.select_layer, m.ps_version
        # The checkpoint's own dtype (bf16 for the release): half the host memory of fp32 on rank 0;
        # values are upcast exactly when they are copied into the fp32 shards.
        # The source only hands over its weights (it never runs): SDPA whatever the trained model uses.
        model = InternVLChatModel.from_pretrained(m.path, config=config, dtype="auto", attn_implementation="sdpa")
        if len(tokenizer) > model.language_model.get_input_embeddings().weight.shape[0]:
            raise ValueError(f"tokenizer of {m.path} has {len(tokenizer)} tokens but the model's embedding has "
                             f"{model.language_model.get_input_embeddings().weight.shape[0]} rows")
        return model
    model, _ = compose_from_parts(m.vision_path, m.llm_path, m.mlp_path, template=m.template,
                                  downsample_ratio=m.downsample_ratio, force_image_size=m.force_image_size,
                                  select_layer=m.select_layer, ps_version=m.ps_version,
                                  drop_path_rate=m.drop_path_rate, dtype=parts_dtype, attn_implementation="sdpa")
    return model


def _attn_impl(cfg: TrainConfig, info: DistInfo) -> str:
    """The LLM attention of the trained model: the config's choice if it can run on this device and
    compute dtype, else flash_attention_2 where possible (bf16 on CUDA with flash-attn), else SDPA."""
    return resolve_attn_implementation(cfg.model.attn_implementation, param_dtype(cfg.parallel, info.device),
                                       info.device)


def cast_frozen(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Keep frozen parameters in the compute dtype: they need no fp32 master copy (no optimizer step),
    and in fp32 the LoRA recipe's frozen 34B LLM alone takes ~75 GiB per GPU on 2 GPUs. Returns how many."""
    n = 0
    for p in model.parameters():
        if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            p.data = p.data.to(dtype)
            n += 1
    return n


def build_skeleton(cfg: TrainConfig, config: InternVLChatConfig, img_context_token_id: int,
                   info: DistInfo) -> InternVLChatModel:
    """The model every rank trains, sharded but not allocated (meta): trainability, activation
    checkpointing and FSDP2 applied. `internvl-chat plan` builds exactly this at full size."""
    with torch.device("meta"):
        model = InternVLChatModel(config, attn_implementation=_attn_impl(cfg, info))
    model.float()  # fp32 master weights whatever the checkpoint's dtype; bf16 is FSDP's compute copy
    apply_tuning(model, cfg.tune)
    cast_frozen(model, param_dtype(cfg.parallel, info.device))  # ...but only for what trains
    model.bind_token_ids(img_context_token_id)
    if cfg.parallel.activation_checkpointing:
        enable_activation_checkpointing(model, cfg.parallel.activation_checkpointing_every)
    shard_model(model, cfg.parallel, info)
    return model


def build_sharded_model(cfg: TrainConfig, info: DistInfo):
    """(sharded model ready to train, tokenizer). Trainability flags are applied before sharding."""
    tokenizer = load_tokenizer(cfg)
    source = None
    payload = [None]
    if info.is_main:
        source = load_source_model(cfg, tokenizer, param_dtype(cfg.parallel, info.device))
        apply_tuning(source, cfg.tune)
        # The skeleton is built from the plain config; LoRA is applied to it by apply_tuning below.
        payload = [dict(source.config.to_dict(), use_llm_lora=0, use_backbone_lora=0)]
    dist.broadcast_object_list(payload, src=0)
    config = InternVLChatConfig(**payload[0])
    model = build_skeleton(cfg, config, tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN), info)
    materialise_from_rank0(model, source, info, cfg.parallel.cpu_offload)
    del source
    return model, tokenizer
