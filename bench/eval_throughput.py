"""Samples/s of the evaluation runner at batch 1 and batch 16 (tiny model, synthetic benchmark).

    .venv/bin/python bench/eval_throughput.py [--per-task 16] [--repeats 3] [--device cpu]

Measures the whole runner path (image decode + preprocessing, templating,
left-padded batched generation with the benchmark's greedy settings, cache
writes), not the model alone. Prints the machine, torch version and git commit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from internvl_chat.data.synth import generate as synth_generate
from machine import machine_info
from internvl_chat.eval.runner import ModelGenerator, RunConfig, evaluate
from internvl_chat.model.presets import build_tiny_model


def measure(model, tok, data: Path, batch_size: int, repeats: int) -> tuple[float, int]:
    rates, n = [], 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:  # a fresh cache each time: everything is generated
            run = evaluate(["synthetic"], ModelGenerator(model, tok),
                           RunConfig(data_root=data, out_dir=Path(out), batch_size=batch_size, progress=False))[0]
        rates.append(run.stats.samples_per_s)
        n = run.stats.generated
    return statistics.median(rates), n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-task", type=int, default=16, help="held-out questions per synthetic task (4 tasks)")
    p.add_argument("--repeats", type=int, default=3, help="median over this many runs per batch size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", default="1,16")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 suits the tiny model (more only add sync overhead); 0 = torch default")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    model, tok = build_tiny_model(seed=0)
    model = model.to(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        synth_generate(data, n_train=0, n_test=args.per_task, image_size=model.image_size)
        measure(model, tok, data, 16, 1)  # warm-up (allocator, kernels)
        print(f"{'batch':>5} {'samples':>8} {'samples/s':>10}")
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            rate, n = measure(model, tok, data, bs, args.repeats)
            print(f"{bs:>5} {n:>8} {rate:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
