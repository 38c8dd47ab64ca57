"""`internvl-chat data stats`: token-length distribution per dataset (image block included)."""

from __future__ import annotations

import numpy as np

BUCKETS = (128, 256, 512, 1024, 2048, 4096)


def length_stats(lengths: np.ndarray, max_length: int) -> dict:
    """Summary of valid (non-zero) lengths; zeros mark records that failed validation."""
    valid = lengths[lengths > 0]
    out = {"samples": int(valid.size), "invalid": int((lengths == 0).sum())}
    if valid.size:
        q = np.percentile(valid, [50, 90, 99])
        out.update(min=int(valid.min()), mean=round(float(valid.mean()), 1), p50=int(q[0]), p90=int(q[1]),
                   p99=int(q[2]), max=int(valid.max()), over_max_length=int((valid > max_length).sum()),
                   tokens=int(valid.sum()))
        edges = [0, *BUCKETS, np.inf]
        counts, _ = np.histogram(valid, bins=edges)
        out["histogram"] = {f"<={int(hi)}" if np.isfinite(hi) else f">{BUCKETS[-1]}": int(c)
                            for hi, c in zip(edges[1:], counts)}
    return out


def dataset_stats(dataset, show_progress: bool = True) -> dict[str, dict]:
    """Per dataset of a SupervisedDataset (lines of each file once, before repeat_time)."""
    return {part.spec.name: length_stats(dataset.line_lengths(part, show_progress), dataset.max_length)
            for part in dataset.parts}


def print_stats(stats: dict[str, dict], console, max_length: int) -> None:
    from rich.table import Table

    table = Table(title=f"token lengths (max_length {max_length})")
    cols = ("samples", "invalid", "min", "mean", "p50", "p90", "p99", "max", "over_max_length")
    headers = ("n", "bad", "min", "mean", "p50", "p90", "p99", "max", f">{max_length}")
    table.add_column("dataset", no_wrap=True)
    for h in headers:
        table.add_column(h, justify="right")
    for name, s in stats.items():
        table.add_row(name, *(str(s.get(c, "-")) for c in cols))
    console.print(table)
    hist = Table(title="length histogram (samples per bucket)")
    hist.add_column("dataset")
    labels = [f"<={b}" for b in BUCKETS] + [f">{BUCKETS[-1]}"]
    for lab in labels:
        hist.add_column(lab, justify="right")
    for name, s in stats.items():
        h = s.get("histogram", {})
        hist.add_row(name, *(str(h.get(lab, 0)) for lab in labels))
    console.print(hist)
