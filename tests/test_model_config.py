"""Configs read and write the released config.json layout; the full V1.2 model has 40.07B parameters."""

import json

import pytest
import torch

from internvl_chat.model import InternVisionConfig, InternVLChatConfig, InternVLChatModel
from internvl_chat.model.presets import v1_2_config

# An excerpt-faithful V1.2 config.json as written by the original code (transformers 4.36).
RELEASED_CONFIG = {
    "_name_or_path": "internvl_chat_hermes2_yi34b_448_chinese",
    "architectures": ["InternVLChatModel"],
    "auto_map": {
        "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
        "AutoModel": "modeling_internvl_chat.InternVLChatModel",
    },
    "downsample_ratio": 0.5,
    "force_image_size": 448,
    "llm_config": {
        "_name_or_path": "NousResearch/Nous-Hermes-2-Yi-34B",
        "architectures": ["LlamaForCausalLM"],
        "attn_implementation": "flash_attention_2",
        "bos_token_id": 1, "eos_token_id": 7, "pad_token_id": 0,
        "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 20480,
        "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 56,
        "num_hidden_layers": 60, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 5000000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_cache": False, "vocab_size": 64007,
    },
    "model_type": "internvl_chat",
    "pad2square": False,
    "select_layer": -1,
    "template": "Hermes-2",
    "torch_dtype": "bfloat16",
    "transformers_version": None,
    "use_backbone_lora": 0,
    "use_llm_lora": 0,
    "dynamic_image_size": False,
    "vision_config": {
        "architectures": ["InternVisionModel"], "attention_dropout": 0.0, "drop_path_rate": 0.0, "dropout": 0.0,
        "hidden_act": "gelu", "hidden_size": 3200, "image_size": 448, "initializer_factor": 0.1,
        "initializer_range": 1e-10, "intermediate_size": 12800, "layer_norm_eps": 1e-06,
        "model_type": "intern_vit_6b", "num_attention_heads": 25, "num_channels": 3, "num_hidden_layers": 45,
        "patch_size": 14, "qk_normalization": True, "qkv_bias": False, "torch_dtype": "bfloat16",
        "use_flash_attn": True,
    },
}


def test_released_config_reads_and_writes_back_unchanged():
    cfg = InternVLChatConfig(**json.loads(json.dumps(RELEASED_CONFIG)))
    assert cfg.select_layer == -1 and cfg.template == "Hermes-2" and cfg.ps_version == "v1"
    assert cfg.num_image_token == 256 and cfg.image_size == 448
    assert cfg.llm_config.hidden_size == 7168 and cfg.llm_config.num_key_value_heads == 8
    assert cfg.llm_config.rope_parameters["rope_theta"] == 5_000_000.0
    out = cfg.to_dict()
    # Every released key survives, with its value (transformers_version is restamped, as any writer does).
    for key, value in RELEASED_CONFIG.items():
        if key in ("transformers_version", "llm_config", "vision_config"):
            continue
        assert out[key] == value, key
    for key, value in RELEASED_CONFIG["vision_config"].items():
        assert out["vision_config"][key] == value, key
    for key, value in RELEASED_CONFIG["llm_config"].items():
        if key in ("attn_implementation", "use_cache", "pretraining_tp"):
            continue  # runtime choices, not architecture
        assert out["llm_config"][key] == value, key
    # Older readers need the flat rope keys; the written dict loads back to an equal config.
    assert out["llm_config"]["rope_theta"] == 5_000_000.0 and out["llm_config"]["rope_scaling"] is None
    assert InternVLChatConfig(**out).to_dict() == out


def test_save_pretrained_config_roundtrip(tmp_path):
    cfg = InternVLChatConfig(**RELEASED_CONFIG)
    cfg.save_pretrained(tmp_path)
    again = InternVLChatConfig.from_pretrained(tmp_path)
    drop = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}  # noqa: E731  (set to the load path)
    assert drop(again.to_dict()) == drop(cfg.to_dict())
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "internvl_chat" and written["vision_config"]["model_type"] == "intern_vit_6b"
    assert written["llm_config"]["model_type"] == "llama"


def test_vision_config_defaults_are_the_originals_and_reads_chat_checkpoint(tmp_path):
    v = InternVisionConfig()
    assert (v.image_size, v.num_hidden_layers, v.hidden_size, v.num_attention_heads) == (224, 48, 3200, 25)
    (tmp_path / "config.json").write_text(json.dumps(RELEASED_CONFIG))
    v = InternVisionConfig.from_pretrained(tmp_path)
    assert (v.image_size, v.num_hidden_layers) == (448, 45)


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="ps_version"):
        InternVLChatConfig(ps_version="v3")
    with pytest.raises(ValueError, match="divisible"):
        InternVisionConfig(hidden_size=30, num_attention_heads=4)


def test_full_v1_2_model_on_meta_device_has_40_07B_parameters():
    with torch.device("meta"):
        model = InternVLChatModel(v1_2_config())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.vision_model) == 5_536_496_000
    assert count(model.mlp1) == 143_170_560
    assert count(model.language_model) == 34_389_017_600
    total = count(model)
    assert abs(total - 40.07e9) / 40.07e9 < 0.01
    assert model.num_image_token == 256
    # Released key names and shapes (reference §2.2).
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["vision_model.embeddings.position_embedding"] == (1, 1025, 3200)
    assert shapes["vision_model.encoder.layers.44.attn.qkv.weight"] == (9600, 3200)
    assert "vision_model.encoder.layers.44.attn.qkv.bias" not in shapes
    assert shapes["vision_model.encoder.layers.0.attn.q_norm.weight"] == (3200,)
    assert shapes["vision_model.encoder.layers.0.ls1"] == (3200,)
    assert "vision_model.encoder.layers.45.ls1" not in shapes
    assert shapes["mlp1.0.weight"] == (12800,) and shapes["mlp1.1.weight"] == (7168, 12800)
    assert shapes["mlp1.3.weight"] == (7168, 7168) and "mlp1.2.weight" not in shapes
    assert shapes["language_model.model.embed_tokens.weight"] == (64007, 7168)
    assert shapes["language_model.model.layers.59.self_attn.k_proj.weight"] == (1024, 7168)
    assert shapes["language_model.lm_head.weight"] == (64007, 7168)
    assert not any("norm.weight" in k and k.startswith("vision_model.encoder.") and ".layers." not in k for k in shapes)


def test_tiny_config_refuses_a_key_it_would_silently_keep():
    import pytest

    from internvl_chat.model.presets import tiny_config

    with pytest.raises(TypeError, match="unknown key\\(s\\) llm_hiden; known: .*llm_hidden"):
        tiny_config(llm_hiden=64)
    assert tiny_config(llm_hidden=64, template="Hermes-2").llm_config.hidden_size == 64
