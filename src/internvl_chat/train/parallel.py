"""Process groups and FSDP2 sharding. All parallelism lives here; the model files know nothing of it.

Layout: `fully_shard` on every InternViT block and every LLM decoder layer, on the LLM
embedding, [final norm, lm_head], the projector and the ViT embeddings, then on the root. Parameters are kept in fp32
as the optimizer's master copy; with bf16 a MixedPrecisionPolicy gathers them
in bf16 for compute and reduce-scatters gradients in fp32.

Weights reach the shards without every rank holding a full copy: rank 0 loads
the checkpoint, every rank builds the model on the meta device, shards it,
allocates its shards, and rank 0 broadcasts tensor by tensor
(`set_model_state_dict(..., broadcast_from_rank0=True)`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

from ..runtime import DistInfo, dtype_choices, torch_dtype
from .config import ParallelConfig
from .lora import unwrapped

VIT_BLOCK = "InternVisionEncoderLayer"
DTYPES = {name: torch_dtype(name) for name in dtype_choices("bf16", "fp32")}


def param_dtype(cfg: ParallelConfig, device: torch.device) -> torch.dtype:
    if cfg.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[cfg.dtype]


def sharded_blocks(model: nn.Module) -> list[nn.Module]:
    """Every ViT block and every LLM decoder layer, in forward order (found by class name, so LoRA
    wrappers around either tower do not matter)."""
    names = {VIT_BLOCK, *(getattr(unwrapped(model.language_model), "_no_split_modules", None) or [])}
    return [m for m in model.modules() if type(m).__name__ in names]


def enable_activation_checkpointing(model: nn.Module, every: int = 1) -> None:
    """Recompute the activations of every `every`-th ViT block and LLM decoder layer in backward
    (1: all, the original's setting; 2: every other one: more activation memory, less recompute)."""
    vision_base = unwrapped(model.vision_model)
    vision_base.encoder.gradient_checkpointing = True
    vision_base.encoder.checkpoint_every = every
    llm = unwrapped(model.language_model)
    llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if every > 1:
        for i, layer in enumerate(llm.get_decoder().layers):
            layer.gradient_checkpointing = i % every == 0


def extra_groups(model: nn.Module) -> list[tuple[list[nn.Module], bool]]:
    """(modules, reshard_after_forward) sharded as their own FSDP groups, torchtitan-style, so the
    root holds almost nothing: the LLM embedding, [final norm, lm_head] (used last in forward and
    first in backward: kept gathered), the projector and the ViT embeddings. A tied lm_head stays
    in one group with its embedding (one parameter cannot live in two groups)."""
    llm = unwrapped(model.language_model)
    embed, head = llm.get_input_embeddings(), llm.get_output_embeddings()
    norm = getattr(llm.get_decoder(), "norm", None)
    tail = [m for m in (norm, head) if m is not None]
    tied = head is not None and head.weight is embed.weight
    groups = [([embed, *tail], False)] if tied else [([embed], True), (tail, False)]
    groups.append(([model.mlp1], True))
    groups.append(([unwrapped(model.vision_model).embeddings], True))
    return groups


def shard_model(model: nn.Module, cfg: ParallelConfig, info: DistInfo, extra: bool | None = None) -> nn.Module:
    """Apply FSDP2 in place (blocks, the `extra_groups`, then the root) and return the model.

    `extra` (default: with 2+ processes) shards the embeddings/head/projector groups separately; one
    process has nothing to overlap, and on a CPU the extra groups' hooks cost a few % of a tiny step."""
    if cfg.cpu_offload and info.device.type != "cuda":
        raise ValueError("parallel.cpu_offload needs a GPU (on CPU the parameters already live in host memory)")
    mesh = init_device_mesh(info.device.type, (info.world_size,))
    compute = param_dtype(cfg, info.device)
    mp = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=DTYPES[cfg.reduce_dtype]) \
        if compute != torch.float32 else MixedPrecisionPolicy()
    offload = CPUOffloadPolicy() if cfg.cpu_offload else OffloadPolicy()
    blocks = sharded_blocks(model)
    if not blocks:
        raise RuntimeError("found no ViT blocks or LLM decoder layers to shard; is this an InternVLChatModel?")
    for block in blocks:
        if cfg.compile:
            block.compile()
        fully_shard(block, mesh=mesh, mp_policy=mp, offload_policy=offload,
                    reshard_after_forward=cfg.reshard_after_forward)
    for modules, reshard in (extra_groups(model) if (info.world_size > 1 if extra is None else extra) else []):
        fully_shard(modules if len(modules) > 1 else modules[0], mesh=mesh, mp_policy=mp, offload_policy=offload,
                    reshard_after_forward=reshard and cfg.reshard_after_forward)
    # The root keeps what is left (ViT/LLM odds and ends: a few KB), gathered through the step.
    fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=offload, reshard_after_forward=False)
    return model


def materialise_from_rank0(model: nn.Module, source: nn.Module | None, info: DistInfo,
                           cpu_offload: bool = False) -> None:
    """Allocate the sharded meta model and fill it from `source` (a full model, rank 0 only)."""
    # With CPU offload FSDP2 keeps the sharded parameters in host memory.
    device = "cpu" if info.device.type == "cpu" or cpu_offload else info.device
    model.to_empty(device=device)
    if cpu_offload and info.device.type == "cuda":
        for module in model.modules():  # buffers (rotary tables) are not offloaded: compute needs them on GPU
            for name, buf in module._buffers.items():
                if buf is not None:
                    module._buffers[name] = buf.to(info.device)
    full = source.state_dict() if info.is_main else {}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    # Non-persistent buffers (rotary inv_freq, ...) are outside the state dict: copy and broadcast them.
    src_buffers = dict(source.named_buffers()) if info.is_main else {}
    for name, buf in model.named_buffers():
        if info.is_main:
            buf.copy_(src_buffers[name].to(buf.dtype))
        dist.broadcast(buf, src=0)
