"""Training throughput of the real engine (FSDP2 loop): tokens/s, samples/s and MFU.

    python bench/train_throughput.py                                   # tiny model, CPU
    python bench/train_throughput.py --config configs/tiny.yaml per_device_batch_size=8
    python bench/train_throughput.py --gpu-preset 1b --steps 20        # ~1.3B model, packing, bf16
    torchrun --nproc_per_node=8 bench/train_throughput.py --gpu-preset 1b

It runs `internvl_chat.train.train` on random in-memory samples (nothing is
downloaded or written outside a temporary folder; no checkpoints, no export),
then reports medians over the steps after the warm-up. MFU = model FLOPs per
step / (step time x peak FLOP/s of all devices); the FLOP count is documented in
src/internvl_chat/train/flops.py (6N per token for trained matmuls, 2N for
frozen ones, plus the attention T^2 terms; recomputation is not counted).
The last line is a one-line summary starting with RESULT.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from machine import describe  # noqa: E402
from internvl_chat.model.presets import V1_2_LLM, V1_2_VISION  # noqa: E402
from internvl_chat.train import load_config, train  # noqa: E402
from internvl_chat.train.flops import peak_flops_per_device  # noqa: E402
from internvl_chat.train.monitor import read_metrics  # noqa: E402


def gpu_preset(name: str) -> tuple[dict, list[str]]:
    """A V1.2-shaped model of ~1.3B (1b) or ~2.2B (2b) parameters: InternViT-300M-like ViT at 448 px
    (1025 tokens, 256 image tokens after pixel shuffle) + a TinyLlama-like / wider Llama LLM, bf16, packing.
    Returns (model.preset_args, overrides)."""
    from internvl_chat.model.tokenizer import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    vit = dict(V1_2_VISION, image_size=448, hidden_size=1024, num_attention_heads=16, intermediate_size=4096,
               num_hidden_layers=24, initializer_range=0.02)
    if name == "1b":
        shape = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                     num_key_value_heads=4)
    else:
        shape = dict(hidden_size=2560, intermediate_size=6912, num_hidden_layers=24, num_attention_heads=20,
                     num_key_value_heads=4)
    llm = dict(V1_2_LLM, **shape, max_position_embeddings=4096, bos_token_id=None, vocab_size=len(tok),
               eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id)
    preset_args = {"image_size": 448, "vision_config": vit, "llm_config": llm}
    return preset_args, ["data.packing=true", "data.max_seq_length=4096", "per_device_batch_size=2",
                         "parallel.dtype=bf16", "activation_checkpointing=true", "optim.lr=1e-5"]


def machine() -> str:
    try:
        import flash_attn  # noqa: F401

        flash = "yes"
    except ImportError:
        flash = "no"
    return f"{describe()}, flash-attn {flash}"


def memory() -> str:
    """Peak GPU memory the caching allocator reserved (what the card must hold), next to what it allocated."""
    if not torch.cuda.is_available():
        return ""
    gib = 2 ** 30
    return (f" max_memory_reserved_gib={torch.cuda.max_memory_reserved() / gib:.2f}"
            f" max_memory_allocated_gib={torch.cuda.max_memory_allocated() / gib:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    p.add_argument("--gpu-preset", choices=["1b", "2b"], default=None)
    p.add_argument("--steps", type=int, default=10, help="measured optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="steps excluded from the medians")
    p.add_argument("--compile", action="store_true", help="torch.compile every sharded block")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = p.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", 1))
    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        base = [f"output_dir={tmp}", "data.source=random", "checkpoint.save_every=0", "checkpoint.export=false",
                "checkpoint.resume=false", "logging.tensorboard=false", "logging.plot=false", "data.num_workers=2",
                f"schedule.max_steps={args.warmup + args.steps}", "schedule.warmup_ratio=0"]
        preset_args = None
        if args.gpu_preset:
            preset_args, extra = gpu_preset(args.gpu_preset)
            base += ["model.preset=tiny", "model.path=null", "model.vision_path=null", "model.llm_path=null", *extra]
        if args.compile:
            base.append("parallel.compile=true")
        cfg = load_config(args.config, base + args.overrides)
        if preset_args is not None:
            cfg.model.preset_args = preset_args
        if not any(o.split("=", 1)[0].endswith("global_batch_size") for o in args.overrides):
            # One micro-batch per step unless the caller set the global batch.
            cfg.batch.global_batch_size = cfg.batch.per_device_batch_size * world
        # Enough random samples for every step (packed rows hold ~2 samples of 1/4..1 x max length).
        cfg.data.synthetic_train = 4 * cfg.batch.global_batch_size * (args.warmup + args.steps) + 64
        result = train(cfg)
        rows = read_metrics(Path(tmp) / "metrics.jsonl")
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    if result.status != "completed" or len(rows) <= args.warmup:
        print(f"benchmark did not complete: {result.status} {result.message}", file=sys.stderr)
        return 1
    timed = rows[args.warmup:]
    med = lambda key: statistics.median(r[key] for r in timed)  # noqa: E731
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    peak = peak_flops_per_device(device, cfg.logging.peak_flops)
    print(machine())
    print(f"config: {args.config}{' + gpu preset ' + args.gpu_preset if args.gpu_preset else ''}; world {world}; "
          f"per-device batch {cfg.batch.per_device_batch_size}; packing {cfg.data.packing}; "
          f"max length {cfg.data.max_seq_length}; dtype {cfg.parallel.dtype}; compile {args.compile}; "
          f"peak {peak / 1e12:.3g} TFLOP/s per device")
    print(f"steps measured: {len(timed)} (after {args.warmup} warm-up); median step {med('step_time_s'):.3f} s; "
          f"tokens/step {med('num_tokens'):.0f}")
    print(f"RESULT tokens/s={med('tokens_per_s'):.1f} samples/s={med('samples_per_s'):.2f} "
          f"mfu={100 * med('mfu'):.2f}% step_s={med('step_time_s'):.3f} device={'gpu' if device.type == 'cuda' else 'cpu'}"
          f" world={world}{memory()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
