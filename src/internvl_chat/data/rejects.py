"""Bookkeeping of rejected (and truncated) samples for a training run.

The trainer calls `log.update(batch)` once per collated batch: every reject goes
to `rejects.jsonl` as it is seen, counts are kept per dataset and reason, and the
run aborts with `TooManyRejects` once the rejected fraction passes the limit (a
run on mostly broken data should stop, not train on what is left).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .batch import Batch
from .formats import RejectedSample


class TooManyRejects(RuntimeError):
    pass


class RejectLog:
    def __init__(self, path: str | Path | None, max_reject_fraction: float = 0.05, min_samples: int = 100):
        """`path=None` keeps counts only. The fraction is checked once `min_samples` have been seen,
        so one bad sample in the first batch does not end a run."""
        if not 0.0 <= max_reject_fraction <= 1.0:
            raise ValueError(f"max_reject_fraction must be in [0, 1], got {max_reject_fraction}")
        self.path = Path(path) if path is not None else None
        self.max_reject_fraction, self.min_samples = max_reject_fraction, min_samples
        self.seen = 0
        self.rejected: Counter = Counter()  # (dataset, kind) -> count
        self.truncated: Counter = Counter()  # dataset -> count
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")

    def add(self, record: RejectedSample, kept: bool = False) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps({**record.to_json(), "kept": kept}, ensure_ascii=False) + "\n")
            self._fh.flush()
        if kept:
            self.truncated[record.dataset] += 1
        else:
            self.rejected[(record.dataset, record.kind)] += 1

    def update(self, batch: Batch) -> None:
        """Account for one collated batch (its `rejects`, `truncated` and sample count)."""
        self.seen += batch.num_samples + len(batch.rejects)
        for rec in batch.rejects:
            self.add(rec)
        for rec in batch.truncated:
            self.add(rec, kept=True)
        self.check()

    @property
    def num_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def reject_fraction(self) -> float:
        return self.num_rejected / self.seen if self.seen else 0.0

    def check(self) -> None:
        if self.seen >= self.min_samples and self.reject_fraction > self.max_reject_fraction:
            raise TooManyRejects(
                f"{self.num_rejected} of {self.seen} samples rejected ({self.reject_fraction:.1%} > "
                f"{self.max_reject_fraction:.1%}); see {self.path or 'the reject counts'}: {self.summary()}")

    def summary(self) -> dict:
        """Counts for the run summary: per dataset, per reason kind."""
        per_dataset: dict[str, dict[str, int]] = {}
        for (ds, kind), n in sorted(self.rejected.items()):
            per_dataset.setdefault(ds, {})[kind] = n
        return {"seen": self.seen, "rejected": self.num_rejected, "reject_fraction": round(self.reject_fraction, 6),
                "rejected_by_dataset": per_dataset, "truncated_by_dataset": dict(self.truncated)}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
