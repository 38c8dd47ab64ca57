"""Configs that read and write the released InternVL-Chat-V1.2 `config.json` layout.

`InternVisionConfig` (model_type `intern_vit_6b`) and `InternVLChatConfig`
(model_type `internvl_chat`, with `vision_config` and `llm_config` dicts) keep the
original field names and defaults, so a released config loads unchanged and a
saved one is readable by the original code. Unknown keys (`auto_map`,
`dynamic_image_size`, ...) are kept and written back.
"""

from __future__ import annotations

import copy
from typing import Any

import transformers
from transformers import AutoConfig, PreTrainedConfig

# Keys that transformers 5 adds to every config dict but the released files never had.
_NOISE_KEYS = ("output_hidden_states", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder",
               "id2label", "label2id", "problem_type", "output_attentions")


class InternVisionConfig(PreTrainedConfig):
    """InternViT. Defaults are the class defaults of the original (224 px, 48 layers);
    the V1.2 checkpoint overrides them (448 px, 45 layers), so always read the checkpoint."""

    model_type = "intern_vit_6b"

    def __init__(
        self,
        num_channels: int = 3,
        patch_size: int = 14,
        image_size: int = 224,
        qkv_bias: bool = False,
        hidden_size: int = 3200,
        num_attention_heads: int = 25,
        intermediate_size: int = 12800,
        qk_normalization: bool = True,
        num_hidden_layers: int = 48,
        use_flash_attn: bool = True,
        hidden_act: str = "gelu",
        norm_type: str = "rms_norm",
        layer_norm_eps: float = 1e-6,
        dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        attention_dropout: float = 0.0,
        initializer_range: float = 0.02,
        initializer_factor: float = 0.1,
        **kwargs,
    ):
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.image_size = image_size
        self.qkv_bias = qkv_bias
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.qk_normalization = qk_normalization
        self.num_hidden_layers = num_hidden_layers
        self.use_flash_attn = use_flash_attn
        self.hidden_act = hidden_act
        self.norm_type = norm_type
        self.layer_norm_eps = layer_norm_eps
        self.dropout = dropout
        self.drop_path_rate = drop_path_rate
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.initializer_factor = initializer_factor
        _torch_dtype_to_dtype(kwargs)
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}")
        if norm_type not in ("rms_norm", "layer_norm"):
            raise ValueError(f"norm_type must be 'rms_norm' or 'layer_norm', got {norm_type!r}")

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Read a stand-alone InternViT folder, or the `vision_config` of a chat checkpoint."""
        config_dict, kwargs = cls.get_config_dict(path, **kwargs)
        config_dict = config_dict.get("vision_config", config_dict)
        return cls.from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return _clean(super().to_dict())


def _torch_dtype_to_dtype(kwargs: dict) -> None:
    """Released files say `torch_dtype`; transformers 5 calls it `dtype` (we write `torch_dtype` back)."""
    if "torch_dtype" in kwargs:
        kwargs.setdefault("dtype", kwargs.pop("torch_dtype"))


def _llm_config_from_dict(d: dict) -> PreTrainedConfig:
    d = dict(d)
    model_type = d.pop("model_type", None)
    if model_type is None:
        arch = (d.get("architectures") or [""])[0]
        model_type = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "MistralForCausalLM": "mistral"}.get(arch)
        if model_type is None:
            raise ValueError(f"llm_config has no model_type and an unknown architecture {arch!r}")
    if model_type == "internlm2":
        raise ValueError("InternLM2 LLMs need remote code, which this project never runs; convert the LLM to Llama layout first")
    # The released configs name flash-attn; which kernel runs is a runtime choice (see modeling).
    d.pop("attn_implementation", None)
    d.pop("_attn_implementation", None)
    _torch_dtype_to_dtype(d)
    return AutoConfig.for_model(model_type, **d)


class InternVLChatConfig(PreTrainedConfig):
    model_type = "internvl_chat"
    is_composition = True

    def __init__(
        self,
        vision_config: dict | InternVisionConfig | None = None,
        llm_config: dict | PreTrainedConfig | None = None,
        use_backbone_lora: int = 0,
        use_llm_lora: int = 0,
        pad2square: bool = False,
        select_layer: int = -4,
        force_image_size: int | None = None,
        downsample_ratio: float = 0.5,
        template: str | None = None,
        ps_version: str = "v1",
        **kwargs,
    ):
        if not isinstance(vision_config, InternVisionConfig):
            vision_config = InternVisionConfig(**(vision_config or {}))
        if not isinstance(llm_config, PreTrainedConfig):
            llm_config = _llm_config_from_dict({"model_type": "llama"} if llm_config is None else llm_config)
        self.vision_config, self.llm_config = vision_config, llm_config
        self.use_backbone_lora = use_backbone_lora
        self.use_llm_lora = use_llm_lora
        self.pad2square = pad2square
        self.select_layer = select_layer
        self.force_image_size = force_image_size
        self.downsample_ratio = downsample_ratio
        self.template = template
        if ps_version not in ("v1", "v2"):
            raise ValueError(f"ps_version must be 'v1' (V1.2) or 'v2' (V1.5+), got {ps_version!r}")
        self.ps_version = ps_version
        kwargs.setdefault("architectures", ["InternVLChatModel"])
        _torch_dtype_to_dtype(kwargs)
        super().__init__(**kwargs)

    @property
    def image_size(self) -> int:
        return self.force_image_size or self.vision_config.image_size

    @property
    def num_image_token(self) -> int:
        grid = self.image_size // self.vision_config.patch_size
        return int(grid**2 * self.downsample_ratio**2)

    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in ("vision_config", "llm_config")})
        out.pop("kwargs", None)
        out["transformers_version"] = transformers.__version__
        self._remove_keys_not_serialized(out)
        self.dict_dtype_to_str(out)
        out = _clean(out)
        out["vision_config"] = self.vision_config.to_dict()
        out["llm_config"] = _llm_dict(self.llm_config)
        out["model_type"] = self.model_type
        return out


def _llm_dict(cfg: PreTrainedConfig) -> dict[str, Any]:
    d = _clean(cfg.to_dict())
    # transformers 5 folds rope_theta/rope_scaling into rope_parameters; older readers
    # (including the original code's transformers 4.36) only know the flat keys.
    rope = d.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        d["rope_theta"] = rope["rope_theta"]
        extra = {k: v for k, v in rope.items() if k != "rope_theta"}
        d["rope_scaling"] = None if extra.get("rope_type", "default") == "default" else {
            ("type" if k == "rope_type" else k): v for k, v in extra.items()}
    return d


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    d = {k: v for k, v in d.items() if not k.startswith("_") or k == "_name_or_path"}
    for k in _NOISE_KEYS:
        d.pop(k, None)
    dtype = d.pop("dtype", None)
    if dtype is not None:
        d["torch_dtype"] = str(dtype).replace("torch.", "")
    return d
