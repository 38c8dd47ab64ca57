"""MMVP pair accuracy (eval-metrics.md §2.4).

Questions come in pairs (rows 2i, 2i+1 share the question with opposite
answers); a pair counts only if both are right. InternVL (consecutive records)
and VLMEvalKit ``report_acc_MMVP`` compute the same numbers; VLMEvalKit also
reports the per-question mean as ``Average``.
"""

from __future__ import annotations

from collections.abc import Sequence


def mmvp_pair_accuracy(hits: Sequence[int | bool]) -> dict[str, float]:
    """``{Average: per-question accuracy, Overall: pair accuracy}`` as fractions."""
    if not hits:
        raise ValueError("mmvp_pair_accuracy: no questions")
    if len(hits) % 2:
        raise ValueError(f"mmvp_pair_accuracy: {len(hits)} questions; MMVP needs an even number (pairs)")
    bad = [i for i, h in enumerate(hits) if h not in (0, 1)]
    if bad:
        raise ValueError(f"mmvp_pair_accuracy: hits must be 0/1 (or bool); bad positions {bad[:5]}")
    pairs = len(hits) // 2
    both = sum(1 for i in range(pairs) if hits[2 * i] and hits[2 * i + 1])
    return {"Average": sum(bool(h) for h in hits) / len(hits), "Overall": both / pairs}
