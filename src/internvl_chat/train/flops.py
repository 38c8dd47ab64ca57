"""Model FLOPs per training step, and the peak FLOP/s they are compared with (MFU).

Forward FLOPs (multiply-add = 2 FLOPs), counted per component:

- matmuls: 2 x (weights applied per token) per token, for
  ViT (patch-embedding conv + qkv/proj/fc1/fc2 of every block) per patch token incl. CLS,
  projector (mlp1's two linears) per image token after pixel shuffle,
  LLM (every decoder linear; the embedding lookup is free) per text token, and lm_head per
  supervised token only (the trainer applies it only where a label is supervised);
- attention scores and values: 2 x 2 x d_attn x T^2 per layer for a sequence of T
  (QK^T and AV), halved for the causal LLM; packed rows count each sample's own T_i^2.

Training = forward + backward. The backward of a matmul costs one forward for the
input gradient and one for the weight gradient; here the input-gradient part is
counted only when something upstream of (or inside) the component trains, and the
weight-gradient part in proportion to the component's trainable matmul weights
(so a frozen ViT costs 1x, a LoRA-tuned LLM about 2x, a fully trained one 3x).
Recomputation by activation checkpointing is deliberately not counted: this is
MFU (model FLOPs), not hardware FLOPs utilisation. With everything trained this
reduces to the PaLM / nanoGPT rule 6N + 12 L d T per token (causal: 6 L d T).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Dense bf16 tensor-core peak per device (no sparsity), from the vendors' data sheets.
PEAK_BF16_FLOPS = {
    "H200": 989e12, "H100": 989e12, "H800": 989e12, "GH200": 989e12, "B200": 2250e12,
    "A100": 312e12, "A800": 312e12, "A6000": 155e12, "L40S": 362e12, "L40": 181e12, "L4": 121e12,
    "A10": 125e12, "4090": 165e12, "V100": 125e12,
}
# CPU fallback, a nominal figure (override with logging.peak_flops): two 256-bit FMA pipes =
# 16 fp32 multiply-adds = 32 FLOPs per cycle at 3.0 GHz, per thread used.
CPU_FLOPS_PER_THREAD = 32 * 3.0e9


def peak_flops_per_device(device: torch.device, override: float = 0.0) -> float:
    if override > 0:
        return override
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_BF16_FLOPS.items():
            if key in name:
                return value
        return 312e12  # unknown GPU: assume A100-class so MFU stays a conservative number
    return torch.get_num_threads() * CPU_FLOPS_PER_THREAD


@dataclass
class ComponentCost:
    matmul_params: int  # weights applied per token
    trainable_fraction: float  # of those weights
    any_trainable: bool  # any parameter (norms, lora, ...) trains


@dataclass
class FlopModel:
    vit: ComponentCost
    mlp: ComponentCost
    llm: ComponentCost
    vit_layers: int
    vit_width: int
    vit_tokens: int  # patches + CLS per image
    llm_layers: int
    llm_attn_width: int  # heads x head_dim
    image_tokens: int  # LLM tokens per image after pixel shuffle
    lm_head_params: int = 0  # vocab x hidden, applied per supervised token (0: counted in llm per token)

    def _multipliers(self, cost: ComponentCost, upstream_trains: bool) -> tuple[float, float]:
        """(matmul multiplier, attention multiplier) over one forward."""
        input_grad = 1.0 if (upstream_trains or cost.any_trainable) else 0.0
        return 1.0 + input_grad + cost.trainable_fraction, 1.0 + 2.0 * input_grad

    def step_flops(self, num_images: int, sample_lengths: list[int] | torch.Tensor,
                   supervised_tokens: float | None = None) -> float:
        """Training FLOPs for `num_images` images and text samples of the given token lengths, of which
        `supervised_tokens` carry a label (default: all)."""
        lengths = torch.as_tensor(sample_lengths, dtype=torch.float64)
        tokens, sq = float(lengths.sum()), float((lengths ** 2).sum())
        supervised = tokens if supervised_tokens is None else float(supervised_tokens)
        vit_mm, vit_at = self._multipliers(self.vit, False)
        mlp_mm, _ = self._multipliers(self.mlp, self.vit.any_trainable)
        llm_mm, llm_at = self._multipliers(self.llm, self.vit.any_trainable or self.mlp.any_trainable)
        vit = num_images * (2.0 * self.vit.matmul_params * self.vit_tokens * vit_mm
                            + 4.0 * self.vit_layers * self.vit_width * self.vit_tokens ** 2 * vit_at)
        mlp = num_images * 2.0 * self.mlp.matmul_params * self.image_tokens * mlp_mm
        llm = 2.0 * self.llm.matmul_params * tokens * llm_mm + 2.0 * self.llm_layers * self.llm_attn_width * sq * llm_at
        head = 2.0 * self.lm_head_params * supervised * llm_mm
        return vit + mlp + llm + head


def _cost(module: nn.Module, skip: tuple[nn.Module, ...] = ()) -> ComponentCost:
    skip_ids = {id(p) for m in skip for p in m.parameters()}
    total = trainable = 0
    any_trainable = False
    for mod in module.modules():
        for p in mod.parameters(recurse=False):
            if id(p) in skip_ids:
                continue
            any_trainable |= p.requires_grad
            if isinstance(mod, (nn.Linear, nn.Conv2d)) and p is mod.weight:
                n = p.numel()
                total += n
                trainable += n if p.requires_grad else 0
    # LoRA matrices are Linear too; they count as (small) trainable matmuls, which is what they are.
    return ComponentCost(total, trainable / total if total else 0.0, any_trainable)


def flop_model(model) -> FlopModel:
    """Read sizes and trainability from an (unsharded or FSDP2-sharded) InternVLChatModel."""
    cfg = model.config
    vcfg, lcfg = cfg.vision_config, cfg.llm_config
    llm = model.language_model
    embed = llm.get_input_embeddings()
    head = llm.get_output_embeddings()
    head_dim = getattr(lcfg, "head_dim", None) or lcfg.hidden_size // lcfg.num_attention_heads
    patches = cfg.image_size // vcfg.patch_size
    return FlopModel(
        vit=_cost(model.vision_model), mlp=_cost(model.mlp1), llm=_cost(llm, skip=(embed, head)),
        vit_layers=vcfg.num_hidden_layers, vit_width=vcfg.hidden_size, vit_tokens=patches * patches + 1,
        llm_layers=lcfg.num_hidden_layers, llm_attn_width=lcfg.num_attention_heads * head_dim,
        image_tokens=model.num_image_token, lm_head_params=head.weight.numel())

