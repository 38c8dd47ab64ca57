"""`internvl-chat train CONFIG.yaml key=value ...` and `internvl-chat merge-lora --model IN --output OUT`.

Under torchrun every process runs `main`; run directly it trains in one process.
Exit codes: 0 finished or pre-empted / interrupted with a checkpoint saved (re-run to resume),
1 stopped by non-finite losses or too many rejected samples (checkpoint saved) or nothing trained,
2 bad config, arguments or inputs (one line, found before any rank loads the model; errors.py).
"""

from __future__ import annotations

import argparse
import sys

from .config import load_config

USAGE = """usage: internvl-chat train CONFIG.yaml [key=value ...]
       torchrun --nproc_per_node=N -m internvl_chat.train CONFIG.yaml [key=value ...]

Overrides: section.key=value (optim.lr=2e-5) or key=value when the key is unique
(output_dir=DIR max_steps=N save_every=K per_device_batch_size=4 freeze_llm=true).
Re-running the same command resumes from the newest complete checkpoint in output_dir."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    path, overrides = argv[0], argv[1:]
    if "=" in path:
        print(f"internvl-chat train: the first argument must be the config file, got {path!r}\n\n{USAGE}",
              file=sys.stderr)
        return 2
    from ..errors import is_rank0
    from .preflight import preflight

    cfg = load_config(path, overrides)
    preflight(cfg)  # a bad config or input is a UserError: one line and exit 2 (errors.run_command)
    from ..data.rejects import TooManyRejects
    from .loop import train

    try:
        result = train(cfg)
    except TooManyRejects as e:
        print(f"internvl-chat train: {e} (a checkpoint was saved)", file=sys.stderr)
        return 1
    if result.status in ("nonfinite", "nothing-trained"):
        if is_rank0():
            print(f"internvl-chat train: {result.message}", file=sys.stderr)
        return 1
    if result.export_dir is not None and is_rank0():
        from ..validate import check_model_dir

        check_model_dir(result.export_dir)  # the "exported to" line stands only for a complete folder
    return 0


def merge_lora_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="internvl-chat merge-lora",
                                description="Fold LoRA adapters of a trained export into a plain checkpoint.")
    p.add_argument("--model", required=True, help="exported checkpoint folder with LoRA adapters (use_*_lora > 0)")
    p.add_argument("--output", required=True, help="folder to write the merged checkpoint to")
    p.add_argument("--max-shard-size", default="5GB")
    args = p.parse_args(argv)
    from pathlib import Path

    from ..errors import UserError
    from ..validate import check_model_dir, check_output_dir
    from .lora import merge_lora_checkpoint

    check_model_dir(args.model)
    out = check_output_dir(args.output, "--output")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--output {out} already exists and is not empty; give a new folder (nothing is overwritten)")
    if out.resolve() == Path(args.model).resolve():
        raise UserError("--output must differ from --model")
    merged = merge_lora_checkpoint(args.model, out, args.max_shard_size)
    check_model_dir(out)  # "wrote" only once the folder is there and loadable by its headers
    if not merged:
        print(f"merge-lora: {args.model} has no LoRA adapters; wrote an unchanged copy to {out}", file=sys.stderr)
    else:
        print(f"merge-lora: wrote merged checkpoint to {out}", file=sys.stderr)
    return 0
