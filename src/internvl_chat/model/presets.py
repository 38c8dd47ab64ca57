"""Named model configurations and `internvl-chat init`.

- `v1_2`: InternVL-Chat-V1.2 exactly (InternViT-6B-448px-V1-2 + Nous-Hermes-2-Yi-34B, 40.07B parameters).
  Useful as a reference config and on the meta device; nobody should random-init 40B weights.
- `tiny`: the same architecture, a few hundred thousand parameters, for tests and smoke runs.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import torch

from .configuration import InternVLChatConfig

V1_2_VISION = dict(
    num_channels=3, patch_size=14, image_size=448, qkv_bias=False, hidden_size=3200, num_attention_heads=25,
    intermediate_size=12800, qk_normalization=True, num_hidden_layers=45, use_flash_attn=True, hidden_act="gelu",
    norm_type="rms_norm", layer_norm_eps=1e-6, dropout=0.0, drop_path_rate=0.0, attention_dropout=0.0,
    initializer_range=1e-10, initializer_factor=0.1, architectures=["InternVisionModel"],
)

V1_2_LLM = dict(
    model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=7168, intermediate_size=20480,
    num_hidden_layers=60, num_attention_heads=56, num_key_value_heads=8, hidden_act="silu", rms_norm_eps=1e-5,
    rope_theta=5_000_000.0, max_position_embeddings=4096, vocab_size=64007, tie_word_embeddings=False,
    attention_bias=False, bos_token_id=1, eos_token_id=7, pad_token_id=0,
)


def v1_2_config() -> InternVLChatConfig:
    return InternVLChatConfig(
        vision_config=dict(V1_2_VISION), llm_config=dict(V1_2_LLM), template="Hermes-2", select_layer=-1,
        force_image_size=448, downsample_ratio=0.5, ps_version="v1", pad2square=False,
        use_backbone_lora=0, use_llm_lora=0, dtype="bfloat16",
    )


def tiny_config(vocab_size: int = 1000, image_size: int = 56, patch_size: int = 14, vit_hidden: int = 32,
                vit_layers: int = 2, llm_hidden: int = 48, llm_layers: int = 2, eos_token_id: int = 4,
                pad_token_id: int = 0, **overrides) -> InternVLChatConfig:
    """A miniature V1.2: same blocks and semantics, 56 px images -> 16 patches -> 4 image tokens.
    `overrides` are InternVLChatConfig arguments; any other key is refused (the config would keep it as
    an attribute nobody reads)."""
    config_keys = [k for k in inspect.signature(InternVLChatConfig.__init__).parameters if k not in ("self", "kwargs")]
    if unknown := sorted(set(overrides) - set(config_keys)):
        known = sorted(config_keys + [k for k in inspect.signature(tiny_config).parameters if k != "overrides"])
        raise TypeError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    cfg = dict(
        vision_config=dict(V1_2_VISION, image_size=image_size, patch_size=patch_size, hidden_size=vit_hidden,
                           num_attention_heads=4, intermediate_size=vit_hidden * 2, num_hidden_layers=vit_layers,
                           initializer_range=0.02),
        llm_config=dict(V1_2_LLM, hidden_size=llm_hidden, intermediate_size=llm_hidden * 2, num_hidden_layers=llm_layers,
                        num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab_size,
                        max_position_embeddings=2048, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                        bos_token_id=None),
        template="Hermes-2", select_layer=-1, force_image_size=image_size, downsample_ratio=0.5, ps_version="v1",
    )
    cfg.update(overrides)
    return InternVLChatConfig(**cfg)


def build_tiny_model(tokenizer=None, seed: int = 0, dtype=torch.float32, **overrides):
    """(model, tokenizer): a random tiny chat model and a tiny BPE tokenizer, img_context_token_id set."""
    from .modeling import InternVLChatModel
    from .tokenizer import build_tiny_tokenizer

    tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer()
    overrides.setdefault("vocab_size", len(tokenizer))
    overrides.setdefault("eos_token_id", tokenizer.convert_tokens_to_ids("<|im_end|>"))
    overrides.setdefault("pad_token_id", tokenizer.pad_token_id)
    config = tiny_config(**overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InternVLChatModel(config)
    model.bind_tokenizer(tokenizer)
    return model.to(dtype).eval(), tokenizer


def init_model_dir(preset: str, out_dir, seed: int = 0, **overrides) -> Path:
    """Write a random-initialised model + tokenizer in the released layout (tiny), or only the config (v1_2)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if preset == "tiny":
        model, tok = build_tiny_model(seed=seed, **overrides)
        model.save_pretrained(out)
        tok.save_pretrained(out)
    elif preset == "v1_2":
        v1_2_config().save_pretrained(out)
    else:
        raise ValueError(f"unknown preset {preset!r}; choose 'tiny' or 'v1_2'")
    return out


def cli_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="internvl-chat init", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=["tiny", "v1_2"], default="tiny")
    p.add_argument("--output", required=True, help="folder to write (config.json, weights, tokenizer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=None, help="tiny only: image size in pixels (multiple of 28)")
    args = p.parse_args(argv)
    from ..errors import UserError
    from ..validate import check_model_dir, check_output_dir

    out_dir = check_output_dir(args.output, "--output")
    if (out_dir / "config.json").exists():
        raise UserError(f"--output {out_dir} already holds a model (config.json); choose a new folder")
    overrides = {}
    if args.image_size:
        if args.preset != "tiny":
            p.error("--image-size applies to the tiny preset only")
        overrides["image_size"] = args.image_size
    out = init_model_dir(args.preset, args.output, seed=args.seed, **overrides)
    if args.preset == "tiny":
        check_model_dir(out)  # "wrote" only for a folder whose files are complete
    what = "config only (40.07B parameters; load real weights instead)" if args.preset == "v1_2" else "weights + tokenizer"
    print(f"wrote {args.preset} model to {out}: {what}", file=sys.stderr)
    return 0
