"""`internvl-chat eval`: run benchmarks on a model directory and write the report.

    internvl-chat eval --model DIR --benchmarks mme,pope --data-root DATA --out OUT
    torchrun --nproc_per_node 8 -m internvl_chat.cli eval ...   (data-parallel)

Predictions are cached in OUT/<benchmark>/predictions.jsonl: re-running the same
command resumes an interrupted run, and re-scores a finished one without
loading the model at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from .benchmarks import benchmark_names, get_benchmark
from .benchmarks.base import FLAVOURS
from ..runtime import DistInfo, add_dtype_argument, init_distributed, shutdown_distributed, torch_dtype
from .runner import ModelGenerator, RunConfig, cache_dir, evaluate, model_identity, read_cache, validate


class LazyModelGenerator:
    """Loads the model on the first batch, so a fully cached run never touches the weights."""

    def __init__(self, model_dir: str, device: str, dtype: torch.dtype):
        self.model_dir, self.device, self.dtype = model_dir, device, dtype
        self._inner: ModelGenerator | None = None

    def __call__(self, images, prompts, generation_config):
        if self._inner is None:
            from ..model.loading import load_model_and_tokenizer

            self._inner = ModelGenerator(*load_model_and_tokenizer(self.model_dir, self.dtype, self.device))
        return self._inner(images, prompts, generation_config)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="internvl-chat eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory (config.json, weights, tokenizer)")
    p.add_argument("--benchmarks", help="comma-separated names (see --list)")
    p.add_argument("--data-root", type=Path, help="folder with one sub-folder per benchmark (docs/eval.md)")
    p.add_argument("--out", type=Path, help="output folder: caches, results.json, report.md, report.png")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="only the first N samples of each benchmark")
    p.add_argument("--flavour", choices=FLAVOURS, default="internvl",
                   help="scoring rules: InternVL's V1.2 scripts (default) or VLMEvalKit's")
    p.add_argument("--judge-url", help="OpenAI-compatible base URL (…/v1) of an LLM judge for answer extraction")
    p.add_argument("--judge-model", help="model name to ask at --judge-url")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap every benchmark's max_new_tokens (smoke runs; scores are then not comparable)")
    p.add_argument("--blank-images", action="store_true",
                   help="also run every benchmark with a blank image (OUT/<benchmark>-blank/)")
    p.add_argument("--device", default="auto",
                   help="auto (default: all visible GPUs, split; else the CPU), cuda, cuda:N or cpu; "
                        "under torchrun each rank takes its own GPU")
    p.add_argument("--dist-timeout-min", type=float, default=180.0,
                   help="collective timeout of a multi-process run, in minutes: ranks reach the barriers "
                        "between benchmarks far apart (NCCL's default is 10)")
    add_dtype_argument(p, "bf16", "fp16", "fp32", default="bf16" if torch.cuda.is_available() else "fp32")
    p.add_argument("--regenerate", action="store_true",
                   help="delete cached predictions made with another model or settings and generate them again "
                        "(default: refuse, naming what differs)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--oracle", action="store_true",
                   help="score the gold answers instead of a model (checks data and scoring; max score expected); "
                        "writes OUT/<benchmark>-oracle/")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p


def _cached_model_path(out: Path, names: list[str]) -> str:
    """Re-scoring without --model: the model recorded in the caches' keys (runner.cache_key)."""
    import json

    paths = set()
    for n in names:
        key = Path(out) / get_benchmark(n).name / "cache_key.json"
        model = json.loads(key.read_text(encoding="utf-8")).get("model") if key.is_file() else None
        paths.add((model or {}).get("path", "unknown"))
    return ", ".join(sorted(paths)) + " (from the cache)"


def _init_distributed(device: str, timeout_min: float = 180.0) -> tuple[DistInfo, str]:
    """A process group only under torchrun (WORLD_SIZE > 1); its backend follows the device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(), device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    # Explicit: a rank that finishes its share of a benchmark early waits at the barrier for the slowest.
    info = init_distributed("nccl" if device.startswith("cuda") else "gloo", timeout_min * 60)
    return info, str(info.device)


def _check_args(p: argparse.ArgumentParser, args) -> list[str]:
    """Every cheap check of the command line (p.error: one line, exit 2); the benchmark names."""
    for flag in ("benchmarks", "data_root", "out"):
        if getattr(args, flag) is None:
            p.error(f"--{flag.replace('_', '-')} is required")
    if bool(args.judge_url) != bool(args.judge_model):
        p.error("--judge-url and --judge-model go together")
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    if args.dist_timeout_min <= 0:
        p.error("--dist-timeout-min must be positive")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        p.error("--max-new-tokens must be at least 1")
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    try:
        for n in names:
            get_benchmark(n)
    except KeyError as e:
        p.error(str(e.args[0]))

    from ..validate import check_output_dir

    check_output_dir(args.out, "--out")
    if not args.data_root.is_dir():
        p.error(f"--data-root {args.data_root}: no such folder")
    if args.oracle and args.blank_images:
        p.error("--oracle and --blank-images do not go together")
    if args.model is None and not args.oracle:
        cfg0 = RunConfig(data_root=args.data_root, out_dir=args.out)
        if any(not read_cache(cache_dir(cfg0, get_benchmark(n))) for n in names):
            p.error("--model is required unless every benchmark is already cached under --out")
    return names


def _report(args, runs, judge, names: list[str]) -> None:
    """Rank 0: write the report files and print the per-benchmark figures and the table."""
    from .report import ReportInfo, markdown, table_rows, write_report

    model_name = "oracle (gold answers)" if args.oracle else str(args.model or _cached_model_path(args.out, names))
    info = ReportInfo(model=model_name, flavour=args.flavour, judge=judge.describe() if judge else None,
                      data_root=str(args.data_root), batch_size=args.batch_size, limit=args.limit)
    paths = write_report(runs, args.out, info)
    for run in runs:
        s = run.stats
        rate = f", {s.samples_per_s:.2f} samples/s" if s.samples_per_s else ""
        print(f"[eval] {run.benchmark}: {s.samples} samples, generated {s.generated}, cached {s.cached}{rate}")
    print(markdown(table_rows(runs), info))
    print(f"[eval] wrote {paths['json']}, {paths['md']}, {paths['png']}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """`internvl-chat eval`; bad data (BenchmarkDataError) is a user error of the CLI's contract (errors.py)."""
    p = _parser()
    args = p.parse_args(argv)
    if args.list:
        for name in benchmark_names():
            b = get_benchmark(name)
            print(f"{name:<20} {b.title} {b.split} ({b.metric}; data: <data-root>/{b.data_dir}/)")
        return 0
    names = _check_args(p, args)
    data = validate(names, args.data_root, args.limit)  # every benchmark's data first: the cheapest check to fail
    identity = None
    if args.model is not None:  # checked now, not when the first uncached batch needs the weights
        from ..validate import check_device, check_model_dir

        check_model_dir(args.model)
        check_device(args.device)
        identity = {**model_identity(args.model), "dtype": args.dtype}
    judge = None
    if args.judge_url:
        from .judge import Judge

        judge = Judge(base_url=args.judge_url, model=args.judge_model)
    dist_info, device = _init_distributed(args.device, args.dist_timeout_min)
    generator = LazyModelGenerator(args.model, device, torch_dtype(args.dtype))

    passes = [False, True] if args.blank_images else [False]
    runs = []
    try:
        for blank in passes:
            cfg = RunConfig(data_root=args.data_root, out_dir=args.out, batch_size=args.batch_size, limit=args.limit,
                            flavour=args.flavour, judge=judge, blank_images=blank, max_new_tokens=args.max_new_tokens,
                            progress=not args.no_progress, oracle=args.oracle, model_identity=identity,
                            match_model=args.model is not None, regenerate=args.regenerate)
            runs += evaluate(names, generator, cfg, dist_info, data=data)
    except KeyboardInterrupt:
        if dist_info.is_main:  # every finished batch is already on disk (flushed per batch)
            print(f"[eval] interrupted: the predictions made so far are kept under {args.out}; "
                  "re-run the same command to continue", file=sys.stderr)
        return 130

    if dist_info.is_main:
        _report(args, runs, judge, names)
    if dist_info.world_size > 1:
        shutdown_distributed()  # barrier first: without it a rank can abort at exit (environment.md §3.1)
    return 0
