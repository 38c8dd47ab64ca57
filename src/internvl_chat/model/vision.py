"""InternViT, exactly as in InternVL-Chat-V1.2 (InternViT-6B-448px-V1-2: 45 layers, 3200 wide).

Pre-norm blocks with RMSNorm, a fused qkv projection, RMSNorm over the *full*
q and k vectors (all heads together), layer scale and stochastic depth; no final
norm. Parameter names match the released checkpoint (`embeddings.*`,
`encoder.layers.N.{attn.qkv,attn.q_norm,attn.k_norm,attn.proj,mlp.fc1,mlp.fc2,norm1,norm2,ls1,ls2}`).
Attention goes through `F.scaled_dot_product_attention`, which picks flash or
memory-efficient kernels on GPU by itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration import InternVisionConfig
from .strict_load import StrictLoading


class InternRMSNorm(nn.Module):
    """RMSNorm computed in fp32 and cast back before the weight (as the original)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


def _norm(config: InternVisionConfig, dim: int) -> nn.Module:
    if config.norm_type == "rms_norm":
        return InternRMSNorm(dim, eps=config.layer_norm_eps)
    return nn.LayerNorm(dim, eps=config.layer_norm_eps)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm semantics): zero the branch with prob p, scale survivors by 1/(1-p)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class InternVisionEmbeddings(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(1, 1, self.embed_dim))
        self.patch_embedding = nn.Conv2d(config.num_channels, self.embed_dim, config.patch_size, config.patch_size)
        self.num_patches = (config.image_size // config.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Parameter(torch.randn(1, self.num_positions, self.embed_dim))

    def _pos_embed(self, grid_h: int, grid_w: int, dtype: torch.dtype) -> torch.Tensor:
        pos = self.position_embedding
        if pos.shape[1] == grid_h * grid_w + 1:
            return pos.to(dtype)
        # Other resolutions: bicubic resize of the patch grid (the CLS slot is kept).
        return resize_position_embedding(pos, grid_h, grid_w).to(dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixel_values.to(dtype))  # (B, D, gh, gw)
        gh, gw = patches.shape[-2:]
        patches = patches.flatten(2).transpose(1, 2)  # row-major: index = row * gw + col
        cls = self.class_embedding.expand(patches.shape[0], 1, -1).to(dtype)
        return torch.cat([cls, patches], dim=1) + self._pos_embed(gh, gw, dtype)


def resize_position_embedding(pos: torch.Tensor, grid_h: int, grid_w: int | None = None) -> torch.Tensor:
    """(1, 1+g*g, D) -> (1, 1+grid_h*grid_w, D): bicubic in fp32, align_corners=False, CLS kept in front."""
    grid_w = grid_h if grid_w is None else grid_w
    cls, grid = pos[:, :1], pos[:, 1:]
    g = int(round(grid.shape[1] ** 0.5))
    if g * g != grid.shape[1]:
        raise ValueError(f"position embedding with {grid.shape[1]} patch slots is not a square grid")
    grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
    grid = grid.to(pos.dtype).flatten(2).transpose(1, 2)
    return torch.cat([cls, grid], dim=1)


class InternAttention(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(self.embed_dim, 3 * self.embed_dim, bias=config.qkv_bias)
        self.attention_dropout = config.attention_dropout
        self.proj_drop = nn.Dropout(config.dropout)
        self.qk_normalization = config.qk_normalization
        if self.qk_normalization:
            self.q_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
            self.k_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, C).unbind(2)  # each (B, N, C), heads packed in C
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attention_dropout if self.training else 0.0, scale=self.scale
        )
        out = out.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(out))


class InternMLP(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.act = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, config: InternVisionConfig, drop_path_rate: float):
        super().__init__()
        dim = config.hidden_size
        self.attn = InternAttention(config)
        self.mlp = InternMLP(config)
        self.norm1 = _norm(config, dim)
        self.norm2 = _norm(config, dim)
        self.ls1 = nn.Parameter(config.initializer_factor * torch.ones(dim))
        self.ls2 = nn.Parameter(config.initializer_factor * torch.ones(dim))
        self.drop_path1 = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.drop_path2 = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)) * self.ls1)
        return x + self.drop_path2(self.mlp(self.norm2(x)) * self.ls2)


class InternVisionEncoder(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        n = config.num_hidden_layers  # linear stochastic-depth schedule, as torch.linspace(0, rate, n)
        rates = [config.drop_path_rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
        self.layers = nn.ModuleList(InternVisionEncoderLayer(config, r) for r in rates)
        # The original checkpoints activations here by default while training; the
        # trainer switches it on explicitly (see train/parallel.py).
        self.gradient_checkpointing = False
        self.checkpoint_every = 1  # with gradient_checkpointing: layers 0, N, 2N, ... recompute

    def forward(self, x: torch.Tensor, output_hidden_states: bool = False):
        states = [x] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            if (self.gradient_checkpointing and i % self.checkpoint_every == 0 and self.training
                    and torch.is_grad_enabled()):
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            if output_hidden_states:
                states.append(x)
        return x, (tuple(states) if output_hidden_states else None)


class InternVisionPreTrainedModel(PreTrainedModel):
    config_class = InternVisionConfig
    base_model_prefix = "vision_model"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternVisionEncoderLayer"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, InternRMSNorm):
            module.weight.fill_(1.0)
        elif isinstance(module, InternVisionEmbeddings):
            module.class_embedding.normal_(0.0, std)
            module.position_embedding.normal_(0.0, std)
        elif isinstance(module, InternVisionEncoderLayer):
            module.ls1.fill_(self.config.initializer_factor)
            module.ls2.fill_(self.config.initializer_factor)


class InternVisionModel(StrictLoading, InternVisionPreTrainedModel):
    def __init__(self, config: InternVisionConfig):
        super().__init__(config)
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def resize_pos_embeddings(self, old_size: int, new_size: int, patch_size: int) -> None:
        """Permanently resample the position embedding from old_size to new_size pixels (V1.2's force_image_size)."""
        del old_size
        pos = resize_position_embedding(self.embeddings.position_embedding.data, new_size // patch_size)
        self.embeddings.position_embedding = nn.Parameter(pos)
        self.embeddings.image_size = new_size
        self.config.image_size = new_size

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None, return_dict: bool = True):
        if pixel_values is None or pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must be (B, 3, H, W), got {None if pixel_values is None else tuple(pixel_values.shape)}")
        hidden, states = self.encoder(self.embeddings(pixel_values), bool(output_hidden_states))
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=hidden[:, 0], hidden_states=states)
        return out if return_dict else out.to_tuple()
