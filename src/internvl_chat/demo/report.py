"""The demo's outputs: report.json, the per-task table on stdout, and one loss curve over both stages.

Accuracies are percentages (0-100), as the evaluation harness reports them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ..train.monitor import read_metrics


def build_report(metrics: dict, blank: dict, chat: dict, *, llm_name: str, model_dir: Path, train_minutes: float,
                 stage_minutes: dict, setup_minutes: float, total_minutes: float, loss_curve: Path | None,
                 settings) -> dict:
    """Combine the harness's synthetic scores (real and blank images) into the demo's report."""
    tasks, blank_tasks = metrics["tasks"], blank["tasks"]
    missing = sorted(set(tasks) ^ set(blank_tasks))
    if missing:
        raise ValueError(f"tasks differ between the real-image and blank-image runs: {missing}")
    per_task = {
        t: {"accuracy": round(v["accuracy"], 2), "chance": round(v["chance"], 2),
            "blank_image_accuracy": round(blank_tasks[t]["accuracy"], 2), "n": v["n"]}
        for t, v in sorted(tasks.items())
    }
    settings_dict = {k: v for k, v in dataclasses.asdict(settings).items() if k != "base_dir"}
    return {
        "accuracy": round(metrics["accuracy"], 2),
        "per_task": per_task,
        "chance": round(metrics["chance"], 2),
        "blank_image_accuracy": round(blank["accuracy"], 2),
        "units": "percent",
        "train_minutes": round(train_minutes, 3),
        "stage_minutes": {k: round(v, 3) for k, v in stage_minutes.items()},
        "setup_minutes": round(setup_minutes, 3),
        "total_minutes": round(total_minutes, 3),
        "llm": llm_name,
        "model_dir": str(model_dir),
        "loss_curve": str(loss_curve) if loss_curve else None,
        "sample_chat": chat,
        "settings": settings_dict,
    }


def format_table(report: dict) -> str:
    rows = [("task", "accuracy", "blank image", "chance", "n")]
    for task, v in report["per_task"].items():
        rows.append((task, f"{v['accuracy']:.1f}", f"{v['blank_image_accuracy']:.1f}", f"{v['chance']:.1f}",
                     str(v["n"])))
    n_all = sum(v["n"] for v in report["per_task"].values())
    rows.append(("overall", f"{report['accuracy']:.1f}", f"{report['blank_image_accuracy']:.1f}",
                 f"{report['chance']:.1f}", str(n_all)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(report: dict) -> None:
    print()
    print(f"Held-out synthetic benchmark ({report['llm']}; accuracy in %):")
    print(format_table(report))
    print()
    chat = report["sample_chat"]
    print(f"Sample chat about {chat['image']}:")
    for turn in chat["turns"]:
        print(f"  USER: {turn['question']}")
        print(f"  MODEL: {turn['answer']}")
    print()
    stages = ", ".join(f"{k.replace('stage', 'stage ')} {v:.1f}" for k, v in report["stage_minutes"].items())
    print(f"Training {report['train_minutes']:.1f} min ({stages}); "
          f"total {report['total_minutes']:.1f} min including {report['setup_minutes']:.1f} min of setup.")


def write_loss_curve(metric_files: list[Path], labels: list[str], out_png: Path) -> Path | None:
    """One plot of the training loss over all stages, steps counted on from one stage to the next."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset, plotted = 0, False
    for path, label in zip(metric_files, labels):
        rows = [r for r in read_metrics(path) if isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"])]
        if not rows:
            continue
        ax.plot([offset + r["step"] for r in rows], [r["loss"] for r in rows], lw=1.2, label=label)
        offset += rows[-1]["step"]
        plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("optimizer step (all stages, one after the other)")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
