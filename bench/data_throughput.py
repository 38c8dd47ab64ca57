"""Samples/s of the SFT loader (JSONL read + tokenization with labels + image load/resize/normalise + collation).

Synthetic V1.2-style data at 448 px, 256 image tokens, max_length 2048, for 1 and 2
DataLoader workers, once per tokenizer: the tiny byte-level BPE (tokenizer.json) and a Yi-shaped
sentencepiece folder (tokenizer.model only, slow-Llama-exact ids; tests/data/tokenizers/internvl_released).
Also prints tokenization's share of one sample's time (tokenize_conversation vs the whole dataset item,
in one process). Usage:

    .venv/bin/python bench/data_throughput.py [--n-per-task 64] [--workers 1 2] [--tokenizer DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from internvl_chat.data import Collator, MixSampler, SupervisedDataset
from internvl_chat.data.preprocess import tokenize_conversation
from internvl_chat.data.synth import generate
from machine import machine_info


def measure(ds, tok, workers: int, batch_size: int, epochs: int) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=MixSampler(len(ds), seed=0),
                                         collate_fn=Collator(tok.pad_token_id), num_workers=workers,
                                         persistent_workers=workers > 0)
    next(iter(loader))  # start the workers and warm caches before timing
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += batch.num_samples + len(batch.rejects)
    return n / (time.perf_counter() - t0)


def tokenization_share(ds, meta: Path, num_image_token: int, max_length: int, tok, limit: int = 64) -> tuple:
    """(ms per sample tokenizing, ms per whole dataset item, share) over the first `limit` records, one process."""
    convs = []
    for spec in json.loads(meta.read_text()).values():
        with open(meta.parent / spec["annotation"], encoding="utf-8") as f:
            convs += [json.loads(line)["conversations"] for line in f if line.strip()]
    convs = convs[:limit]
    t0 = time.perf_counter()
    for c in convs:
        tokenize_conversation(c, tok, "Hermes-2", num_image_token, max_length)
    t_tok = (time.perf_counter() - t0) / len(convs)
    idx = list(range(min(limit, len(ds))))
    t0 = time.perf_counter()
    for i in idx:
        ds[i]
    t_item = (time.perf_counter() - t0) / len(idx)
    return 1e3 * t_tok, 1e3 * t_item, t_tok / t_item


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-per-task", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--num-image-token", type=int, default=256)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokenizer", nargs="*", default=None,
                    help="tokenizer folder(s) (default: the tiny BPE and the sentencepiece test folder)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # one thread per loader process, as in training
    from internvl_chat.model.tokenizer import build_tiny_tokenizer, load_tokenizer

    sp_folder = Path(__file__).resolve().parents[1] / "tests" / "data" / "tokenizers" / "internvl_released"
    if args.tokenizer:
        toks = [(load_tokenizer(t), t) for t in args.tokenizer]
    else:
        toks = [(build_tiny_tokenizer(), "tiny BPE (1000 tokens, tokenizer.json)"),
                (load_tokenizer(sp_folder), "Yi-shaped sentencepiece (1207 tokens, tokenizer.model only)")]
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores; python {info['python']}, torch {info['torch']}, "
          f"commit {info['commit']}; load average {info['load']} (other work on the machine slows the loader)")
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, n_train=args.n_per_task, n_test=0, seed=0, image_size=args.image_size)
        for tok, tok_name in toks:
            ds = SupervisedDataset(Path(tmp) / "meta.json", tok, num_image_token=args.num_image_token,
                                   image_size=args.image_size, max_length=args.max_length,
                                   cache_dir=Path(tmp) / "cache")
            print(f"data: {len(ds)} synthetic samples ({args.image_size} px PNG, 4 task families), "
                  f"{args.num_image_token} image tokens, max_length {args.max_length}, tokenizer {tok_name}, "
                  f"batch {args.batch_size}, {args.epochs} epochs per setting")
            t_tok, t_item, share = tokenization_share(ds, Path(tmp) / "meta.json", args.num_image_token,
                                                      args.max_length, tok)
            print(f"  tokenization {t_tok:.2f} ms of {t_item:.2f} ms per sample ({100 * share:.1f}% of a sample's time)")
            for w in args.workers:
                rate = measure(ds, tok, w, args.batch_size, args.epochs)
                print(f"  workers={w}: {rate:8.1f} samples/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
