"""Padding fraction of the V1.2 recipe's micro-batches: uniform order vs length grouping vs packing.

    python bench/padding_fraction.py                # the V1.2 SFT mix, 64 GPUs x 8 per device
    python bench/padding_fraction.py --world 32 --samples 200000

The recipe pads every micro-batch to its longest sample, so the fraction of pad tokens is
compute spent on nothing. Sample lengths follow a synthetic stand-in of the official V1.2 SFT
mix (docs/reference: nine data sets, 1,267,819 samples, sizes exact): every sample is one
448 px image (256 <IMG_CONTEXT> + 2 markers) + the Hermes-2 template (~35 tokens) + its
conversation, drawn per data set from a log-normal around a typical text length (ESTIMATES,
listed in MIX below, for the Yi tokenizer; no real annotation was tokenized). Text-only
ShareGPT conversations in the 665K mix carry no image. Lengths are clipped at max_seq_length
as the trainer truncates. The sampler and packer are the trainer's own (internvl_chat.data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from internvl_chat.data.packing import PackedBatchSampler  # noqa: E402
from internvl_chat.data.sampler import MixSampler  # noqa: E402

IMAGE, TEMPLATE = 258, 35
# name: (samples, median conversation tokens, log-normal sigma, fraction without an image)
MIX = {
    "sharegpt4v_instruct_gpt4-vision_cap100k": (102_025, 260, 0.35, 0.0),  # one detailed GPT-4V caption
    "llava_instruct_150k_zh": (157_712, 420, 0.45, 0.0),  # multi-turn Chinese conversations
    "sharegpt4v_mix665k": (665_058, 150, 0.9, 0.06),  # VQA/GQA multi-QA, OCR-VQA, RefCOCO, 40K text-only ShareGPT
    "dvqa_train_200k": (200_000, 30, 0.4, 0.0),
    "chartqa_train_18k": (18_317, 30, 0.4, 0.0),
    "ai2d_train_12k": (12_413, 70, 0.3, 0.0),
    "docvqa_train_10k": (10_211, 30, 0.4, 0.0),
    "geoqa+": (72_318, 170, 0.4, 0.0),  # geometry problem + worked solution
    "synthdog_en": (29_765, 380, 0.4, 0.0),  # full text of a synthetic document
}


def mix_lengths(seed: int, max_len: int, samples: int | None = None) -> np.ndarray:
    g = np.random.default_rng(seed)
    parts = []
    for n, median, sigma, text_only in MIX.values():
        if samples:
            n = max(1, round(n * samples / 1_267_819))
        text = g.lognormal(np.log(median), sigma, n)
        image = np.where(g.random(n) < text_only, 0, IMAGE)
        parts.append(np.minimum(np.round(text + TEMPLATE + image), max_len).astype(np.int64))
    return np.concatenate(parts)


def padded_fraction(lengths: np.ndarray, order: list[int], world: int, per_device: int) -> float:
    """Pad tokens / all tokens when rank r's micro-batch k is global positions r + world*(per_device*k + j)."""
    step = world * per_device
    usable = len(order) // step * step
    lens = lengths[np.asarray(order[:usable])].reshape(-1, per_device, world)  # (micro-batch, sample, rank)
    real = lens.sum()
    return 1.0 - real / (lens.max(axis=1).sum() * per_device)


def packed_fraction(lengths: np.ndarray, order: list[int], world: int, rows: int, budget: int,
                    ranks: int = 4) -> tuple[float, float]:
    """(pad fraction, samples per micro-batch) of next-fit packing into `rows` rows of <= budget tokens,
    each micro-batch padded to its longest row (varlen flash-attention wastes nothing else)."""
    real = total = batches = samples = 0
    for r in range(min(ranks, world)):
        for batch in PackedBatchSampler(order[r::world], lengths, budget, rows):
            used, row_lens = 0, []
            for i in batch:
                if used + lengths[i] > budget:
                    row_lens.append(used)
                    used = 0
                used += int(lengths[i])
            row_lens.append(used)
            real += sum(row_lens)
            total += max(row_lens) * len(row_lens)
            batches += 1
            samples += len(batch)
    return 1.0 - real / total, samples / batches


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", type=int, default=64)
    p.add_argument("--per-device", type=int, default=8)
    p.add_argument("--global-batch", type=int, default=512)
    p.add_argument("--max-seq-length", type=int, default=2048)
    p.add_argument("--samples", type=int, default=0, help="scale the mix down to about this many samples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    lengths = mix_lengths(args.seed, args.max_seq_length, args.samples or None)
    q = np.percentile(lengths, [10, 50, 90, 99])
    print(f"samples {len(lengths):,}; tokens per sample p10/p50/p90/p99 = {q[0]:.0f}/{q[1]:.0f}/{q[2]:.0f}/{q[3]:.0f}, "
          f"mean {lengths.mean():.0f}; {args.world} ranks x {args.per_device} per micro-batch")
    uniform = MixSampler(len(lengths), seed=args.seed, world_size=1).global_order()
    grouped = MixSampler(len(lengths), seed=args.seed, world_size=1, lengths=lengths,
                         group_size=args.global_batch).global_order()
    rows = {"uniform order, pad to longest (recipe before)": padded_fraction(lengths, uniform, args.world, args.per_device),
            "group_by_length (recipe after)": padded_fraction(lengths, grouped, args.world, args.per_device)}
    frac, per_batch = packed_fraction(lengths, uniform, args.world, args.per_device, args.max_seq_length)
    rows[f"packing {args.per_device} rows x {args.max_seq_length} (varlen; {per_batch:.1f} samples/micro-batch)"] = frac
    for name, f in rows.items():
        print(f"{name:<72} padding {100 * f:5.1f}%")
    print("RESULT " + " ".join(f"{k.split(' (')[0].split(',')[0].replace(' ', '_')}={100 * v:.1f}%" for k, v in rows.items()))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
