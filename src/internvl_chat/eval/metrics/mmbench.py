"""MMBench circular evaluation (eval-metrics.md §2.3).

Every question appears once per circular pass with its options rotated; the
pass-k row has ``index = original + k * 1_000_000`` and its own (rotated)
``answer``. A question (group) scores 1 only if every pass is answered right.

``vlmevalkit_mcq_circular_eval_exact_matching`` (the leaderboard code, no LLM
judge): each row's prediction goes through ``can_infer``; any parsed letter that
differs from the row's answer fails the group; a group with an unparsed row also
fails (the judge would be asked; without one the answer is 'Z', always wrong).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .choice import can_infer

MMBENCH_FLAVOURS = ("vlmevalkit_mcq_circular_eval_exact_matching",)
CIRCULAR_OFFSET = 1_000_000
_OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class CircularResult:
    """Group hits keyed by original index, plus the pass-0 row of each group (for categories)."""

    group_hits: dict[int, int]
    first_rows: dict[int, Mapping[str, object]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return sum(self.group_hits.values()) / len(self.group_hits) if self.group_hits else 0.0

    def accuracy_by(self, key: str) -> dict[str, float]:
        """Mean group hit per value of ``key`` of the pass-0 row (``category``, ``l2-category``, ``split``)."""
        buckets: dict[str, list[int]] = {}
        for group, hit in self.group_hits.items():
            row = self.first_rows[group]
            if key not in row:
                raise KeyError(f"MMBench group {group}: pass-0 row has no {key!r} column")
            buckets.setdefault(str(row[key]), []).append(hit)
        return {value: sum(hits) / len(hits) for value, hits in buckets.items()}


def _is_missing(value: object) -> bool:
    # TSV readers give NaN (a float) for absent options.
    return value is None or (isinstance(value, float) and value != value)


def row_choices(row: Mapping[str, object]) -> dict[str, str]:
    """Option letter -> text for the letters present (and not NaN/None) in a TSV row."""
    return {letter: str(row[letter]) for letter in _OPTION_LETTERS if letter in row and not _is_missing(row[letter])}


def mmbench_circular(
    rows: Sequence[Mapping[str, object]],
    preds: Sequence[str],
    flavour: str = "vlmevalkit_mcq_circular_eval_exact_matching",
) -> CircularResult:
    """Group the passes by ``index mod 1e6`` and score each group with exact matching."""
    if flavour not in MMBENCH_FLAVOURS:
        raise ValueError(f"unknown MMBench flavour {flavour!r}; known: {', '.join(MMBENCH_FLAVOURS)}")
    if len(rows) != len(preds):
        raise ValueError(f"mmbench_circular: {len(rows)} rows but {len(preds)} predictions")
    groups: dict[int, list[tuple[Mapping[str, object], str]]] = {}
    first_rows: dict[int, Mapping[str, object]] = {}
    for number, (row, pred) in enumerate(zip(rows, preds)):
        for key in ("index", "answer"):
            if key not in row:
                raise ValueError(f"mmbench_circular: row {number} has no {key!r} column")
        index = int(row["index"])
        group = index % CIRCULAR_OFFSET
        groups.setdefault(group, []).append((row, pred))
        if index < CIRCULAR_OFFSET:
            first_rows[group] = row
    missing_first = sorted(set(groups) - set(first_rows))
    if missing_first:
        raise ValueError(f"mmbench_circular: group(s) {missing_first[:5]} have no pass-0 row (index < 1e6)")
    hits: dict[int, int] = {}
    for group, members in groups.items():
        parsed = [can_infer(str(pred), row_choices(row)) for row, pred in members]
        answers = [str(row["answer"]) for row, _ in members]
        # A parsed letter that differs from the gt fails the group; unparsed rows fail it too (no judge).
        hits[group] = int(all(p is not None and p == a for p, a in zip(parsed, answers)))
    return CircularResult(group_hits=hits, first_rows=first_rows)
