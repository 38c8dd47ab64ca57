"""Samples/s of the SFT loader (JSONL read + tokenization with labels + image load/resize/normalise + collation).

Synthetic V1.2-style data at 448 px, 256 image tokens, max_length 2048, for 1 and 2
DataLoader workers. Usage:

    .venv/bin/python bench/data_throughput.py [--n-per-task 64] [--workers 1 2] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from internvl_chat.data import Collator, MixSampler, SupervisedDataset
from internvl_chat.data.synth import generate
from internvl_chat.machine import machine_info


def measure(ds, tok, workers: int, batch_size: int, epochs: int) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=MixSampler(len(ds), seed=0),
                                         collate_fn=Collator(tok.pad_token_id), num_workers=workers,
                                         persistent_workers=workers > 0)
    next(iter(loader))  # start the workers and warm caches before timing
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += batch["num_samples"] + len(batch["rejects"])
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-per-task", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--num-image-token", type=int, default=256)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the tiny test tokenizer)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # one thread per loader process, as in training
    if args.tokenizer:
        from transformers import AutoTokenizer

        from internvl_chat.model.tokenizer import add_internvl_tokens
        tok = AutoTokenizer.from_pretrained(args.tokenizer, use_fast=True)
        add_internvl_tokens(tok)
        tok_name = args.tokenizer
    else:
        from internvl_chat.model.tokenizer import build_tiny_tokenizer
        tok, tok_name = build_tiny_tokenizer(), "tiny BPE (1000 tokens)"
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores; python {info['python']}, torch {info['torch']}, "
          f"commit {info['commit']}; load average {info['load']} (other work on the machine slows the loader)")
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, n_train=args.n_per_task, n_test=0, seed=0, image_size=args.image_size)
        ds = SupervisedDataset(Path(tmp) / "meta.json", tok, num_image_token=args.num_image_token,
                               image_size=args.image_size, max_length=args.max_length, cache_dir=Path(tmp) / "cache")
        print(f"data: {len(ds)} synthetic samples ({args.image_size} px PNG, 4 task families), "
              f"{args.num_image_token} image tokens, max_length {args.max_length}, tokenizer {tok_name}, "
              f"batch {args.batch_size}, {args.epochs} epochs per setting")
        for w in args.workers:
            rate = measure(ds, tok, w, args.batch_size, args.epochs)
            print(f"workers={w}: {rate:8.1f} samples/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
