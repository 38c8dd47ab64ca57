"""results.json, report.md (the release-table layout: published V1.2 / ours / diff) and report.png."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .benchmarks import get_benchmark
from .published import RELEASE_SOURCE, PublishedRow, rows_for
from .runner import BenchmarkRun

# Scores not in percent, and their maximum, so the chart can show them as % of max.
_SCALE_MAX = {("mme", "perception"): 2000.0, ("mme", "cognition"): 800.0}


@dataclass
class ReportInfo:
    model: str
    flavour: str
    judge: str | None  # "model @ url" or None (rule-based extraction)
    data_root: str = ""
    batch_size: int = 0
    limit: int | None = None


@dataclass
class TableRow:
    title: str
    split: str
    metric: str
    published: float | None
    ours: float | None
    diff: float | None
    benchmark: str
    samples: int
    note: str = ""
    submission: str | None = None


def _value(run: BenchmarkRun, key: str) -> float | None:
    r = run.result
    if r is None:
        return None
    v = r.headline if key == "headline" else r.metrics.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def table_rows(runs: list[BenchmarkRun]) -> list[TableRow]:
    rows = []
    for run in runs:
        if run.result is None:
            continue
        base = run.benchmark.removesuffix("-oracle")  # --oracle runs score the gold answers
        blank = base.endswith("-blank")
        name = base[: -len("-blank")] if blank else base
        bench = get_benchmark(name)
        published = rows_for(name) or [PublishedRow(bench.title, bench.split, bench.metric, None, name)]
        for p in published:
            ours = _value(run, p.key)
            value = None if blank else p.value
            diff = ours - value if ours is not None and value is not None else None
            note = p.note
            if name == "synthetic":
                chance = run.result.metrics.get("chance")
                note = f"chance {chance:.1f}" if isinstance(chance, float) else note
            skipped = run.result.metrics.get("skipped_rows") or {}
            if skipped:  # n is what upstream scores; say which rows of the files were left out
                extra = "skipped " + ", ".join(f"{k} {why}" for why, k in skipped.items())
                note = f"{note}; {extra}" if note else extra
            rows.append(TableRow(p.title + (" (blank images)" if blank else ""), p.split, p.metric, value, ours, diff,
                                 run.benchmark, run.result.num_samples, note, run.result.submission))
    return rows


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def markdown(rows: list[TableRow], info: ReportInfo) -> str:
    judge = f"LLM judge {info.judge}" if info.judge else "rule-based (no LLM judge)"
    lines = [
        "# InternVL-Chat-V1.2 benchmark report", "",
        f"- model: `{info.model}`",
        f"- scoring flavour: **{info.flavour}** (prompts are always InternVL's V1.2 prompts; greedy decoding)",
        f"- answer extraction (MathVista, MMBench, MCQ fallbacks): {judge}",
        f"- published numbers: {RELEASE_SOURCE}",
    ]
    if info.limit is not None:
        lines.append(f"- **--limit {info.limit}: partial benchmarks, not comparable with the published numbers**")
    lines += ["", "| benchmark | split | metric | published V1.2 | ours | diff | n | note |", "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        ours = _fmt(r.ours) if r.submission is None else f"submission: `{Path(r.submission).name}`"
        lines.append(f"| {r.title} | {r.split} | {r.metric} | {_fmt(r.published)} | {ours} | {_fmt(r.diff, True)} "
                     f"| {r.samples} | {r.note} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[TableRow], path: Path, info: ReportInfo) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.ours is not None or r.published is not None]
    labels, ours, published = [], [], []
    for r in shown:
        scale = _SCALE_MAX.get((r.benchmark, r.split))
        k = 100.0 / scale if scale else 1.0
        labels.append(f"{r.title} {r.split}" + (" (% of max)" if scale else "") + (" [server]" if r.submission else ""))
        ours.append((r.ours or 0.0) * k)
        published.append((r.published or 0.0) * k)
    height = max(2.5, 0.45 * len(shown) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    y = list(range(len(shown)))
    ax.barh([i + 0.2 for i in y], published, height=0.4, label="published V1.2", color="#9aa7b8")
    ax.barh([i - 0.2 for i in y], ours, height=0.4, label="ours", color="#2b6cb0")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel("score (%)")
    ax.set_title(f"InternVL-Chat-V1.2: published vs ours ({info.flavour} flavour)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(runs: list[BenchmarkRun], out_dir: Path, info: ReportInfo) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(runs)
    results = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "info": asdict(info),
        "benchmarks": {
            run.benchmark: {
                "headline": run.result.headline, "metrics": run.result.metrics, "num_samples": run.result.num_samples,
                "submission": run.result.submission, "notes": run.result.notes,
                "generation": {"generated": run.stats.generated, "cached": run.stats.cached,
                               "seconds": round(run.stats.seconds, 3), "samples_per_s": run.stats.samples_per_s},
            }
            for run in runs if run.result is not None
        },
        "table": [asdict(r) for r in rows],
    }
    paths = {"json": out_dir / "results.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    paths["json"].write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    paths["md"].write_text(markdown(rows, info))
    chart(rows, paths["png"], info)
    return paths
