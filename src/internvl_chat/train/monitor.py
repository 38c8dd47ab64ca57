"""Watching a run (rank 0 only): progress bar, metrics.jsonl, TensorBoard, and a loss-curve PNG.

metrics.jsonl holds one JSON line per logged optimizer step (every `logging.log_every` steps and the
run's last). On resume the lines after the checkpoint's step are dropped first, so the file always
describes the trajectory that the weights actually followed (no duplicated steps).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from tqdm import tqdm


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # A run killed mid-write leaves at most a partial last line; anything else is corruption.
                if n != len(lines):
                    raise ValueError(f"{path}:{n}: not valid JSON") from None
    return rows


def truncate_metrics(path: str | Path, last_step: int) -> None:
    path = Path(path)
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    tmp = path.with_suffix(".jsonl.part")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)


class Monitor:
    def __init__(self, output_dir: str | Path, total_steps: int, start_step: int, enabled: bool,
                 progress_bar: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.dir = Path(output_dir)
        self.metrics_path = self.dir / "metrics.jsonl"
        self._fh = self._tb = self._bar = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.metrics_path.exists():
            truncate_metrics(self.metrics_path, start_step)
        self._fh = open(self.metrics_path, "a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=start_step + 1)
        if progress_bar:
            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True,
                             file=sys.stderr, mininterval=0.5)

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(f"train/{key}", value, row["step"])
        if self._bar is not None:
            self._bar.update(row["step"] - self._bar.n)
            self._bar.set_postfix_str(
                f"loss {_fmt(row['loss'])} lr {row['lr']:.3g} tok/s {row['tokens_per_s']:.0f} "
                f"mfu {100 * row['mfu']:.1f}%", refresh=False)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        for obj in (self._bar, self._tb, self._fh):
            if obj is not None:
                obj.close()
        self._fh = self._tb = self._bar = None


def plot_loss_curve(metrics_path: str | Path, out_png: str | Path) -> Path | None:
    rows = [r for r in read_metrics(metrics_path) if isinstance(r.get("loss"), (int, float))
            and math.isfinite(r["loss"])]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1.2, label="loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in rows], [r["lr"] for r in rows], color="tab:orange", lw=0.8, alpha=0.6)
    ax2.set_ylabel("learning rate", color="tab:orange")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)
