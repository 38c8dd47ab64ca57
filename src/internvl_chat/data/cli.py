"""`internvl-chat data check | stats | synth`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError, report_user_error
from .formats import MetaError


def _tokenizer(path: str | None, console):
    from ..model.tokenizer import build_tiny_tokenizer, load_tokenizer

    if path is None:
        console.print("[yellow]no --tokenizer given: using the built-in tiny tokenizer, so token lengths are "
                      "approximate (pass the model or LLM folder for exact lengths)[/yellow]")
        return build_tiny_tokenizer()
    from ..validate import check_tokenizer_dir

    check_tokenizer_dir(path, "--tokenizer")
    return load_tokenizer(path)  # never runs remote code; a damaged folder is a TokenizerLoadError (exit 2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("meta", help="meta JSON: {name: {root, annotation, data_augment, repeat_time, length}}")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: tiny tokenizer, approximate lengths)")
    p.add_argument("--template", default="Hermes-2")
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--num-image-token", type=int, default=256)
    p.add_argument("--base-dir", default=None,
                   help="resolve relative root/annotation paths against this folder (default: the meta file's folder)")
    p.add_argument("--no-progress", action="store_true")


def _check_numbers(args) -> None:
    from ..validate import check_positive

    check_positive(args.max_length, "--max-length")
    check_positive(args.num_image_token, "--num-image-token")


def _check(args, console) -> int:
    from .check import check_meta, print_report, write_rejects

    from ..validate import check_output_dir

    _check_numbers(args)
    if Path(args.rejects).is_dir():
        raise UserError(f"--rejects {args.rejects} is a folder; give a file name")
    check_output_dir(Path(args.rejects).parent or ".", "--rejects folder")
    tok = _tokenizer(args.tokenizer, console)
    report = check_meta(args.meta, tok, args.template, args.num_image_token, args.max_length,
                        check_images=not args.skip_images, progress=not args.no_progress, base_dir=args.base_dir)
    print_report(report, console)
    write_rejects(report.rejects, args.rejects)
    total = sum(r.lines for r in report.datasets)
    if report.interrupted:
        checked = sum(r.ok + r.bad for r in report.datasets)
        print(f"data check: interrupted after {checked} records; the report above covers those, and their "
              f"{len(report.rejects)} rejects are in {args.rejects}", file=sys.stderr)
        return 130
    if report.ok:
        console.print(f"OK: {total} records in {len(report.datasets)} datasets; no problems "
                      f"(empty rejects file {args.rejects})")
        return 0
    console.print(f"[red]FAILED: {len(report.rejects)} of {total} records have problems; "
                  f"written to {args.rejects}[/red]")
    return 1


def _stats(args, console) -> int:
    import json

    from .dataset import SupervisedDataset
    from .stats import dataset_stats, print_stats

    _check_numbers(args)
    if args.json and Path(args.json).is_dir():
        raise UserError(f"--json {args.json} is a folder; give a file name")
    tok = _tokenizer(args.tokenizer, console)
    ds = SupervisedDataset(args.meta, tok, args.template, args.num_image_token, image_size=14,
                           max_length=args.max_length, base_dir=args.base_dir)
    stats = dataset_stats(ds, show_progress=not args.no_progress)
    print_stats(stats, console, args.max_length)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(stats, f, indent=2)
    return 0


def _synth(args, console) -> int:
    from .synth import TASKS, generate

    from ..validate import check_output_dir, check_positive

    check_output_dir(args.out, "--out")
    check_positive(args.n, "--n", minimum=0)
    check_positive(args.n_test, "--n-test", minimum=0)
    check_positive(args.image_size, "--image-size", minimum=16)
    tasks = args.tasks.split(",") if args.tasks else list(TASKS)
    n_test = args.n_test if args.n_test is not None else max(1, args.n // 4)
    counts = generate(args.out, args.n, n_test, seed=args.seed, image_size=args.image_size, tasks=tasks,
                      image_format=args.image_format)
    for task, c in counts.items():
        console.print(f"{task}: {c['train']} train, {c['test']} test")
    console.print(f"wrote {args.out}/meta.json, {args.out}/<task>/train.jsonl, {args.out}/test.jsonl, images under "
                  f"{args.out}/images/")
    return 0


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="internvl-chat data", description="V1.2 SFT data tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="validate every record; write the rejects file; non-zero exit on problems")
    _common(p)
    p.add_argument("--rejects", default="rejects.jsonl", help="where to write the rejected records")
    p.add_argument("--skip-images", action="store_true", help="do not open the images (faster, less thorough)")
    p = sub.add_parser("stats", help="token-length distribution per dataset")
    _common(p)
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p = sub.add_parser("synth", help="write a synthetic V1.2-style data set")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, required=True, help="training samples per task")
    p.add_argument("--n-test", type=int, default=None, help="test questions per task (default n/4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--tasks", default=None, help="comma-separated subset of shapes,charts,documents,choice")
    p.add_argument("--image-format", default="png", choices=("png", "jpg"))
    args = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    try:
        return {"check": _check, "stats": _stats, "synth": _synth}[args.cmd](args, console)
    except (MetaError, UserError, ValueError, FileNotFoundError) as e:
        report_user_error(f"internvl-chat data {args.cmd}", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
