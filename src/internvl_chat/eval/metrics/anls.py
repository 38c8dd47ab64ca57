"""ANLS, the Average Normalised Levenshtein Similarity of DocVQA / InfographicVQA.

Follows the RRC ``infographicsvqa_eval.py`` that InternVL ships (VLMEvalKit and
lmms-eval agree with it per item, eval-metrics.md §1.3). One quirk matters: the
distance is taken between whitespace-normalised, lower-cased strings, but the
length it is divided by is that of the *raw* strings, so padding in the
prediction lowers the score.
"""

from __future__ import annotations

from collections.abc import Sequence

import Levenshtein


def _normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(pred: str, gts: Sequence[str], threshold: float = 0.5) -> float:
    """Per-question ANLS: 1 - min normalised distance over ``gts``; below ``threshold`` it is 0.

    Exactly ``threshold`` is kept, as in the reference (``< threshold`` -> 0).
    """
    if isinstance(gts, str) or not gts:
        raise ValueError(f"anls: gts must be a non-empty list of answers, got {gts!r}")
    if not isinstance(pred, str) or not all(isinstance(gt, str) for gt in gts):
        raise TypeError("anls: pred and every gt must be str")
    normalised_pred = _normalise(pred)
    distances = []
    for gt in gts:
        # The reference measures len(x.upper()); for a few characters (e.g. 'ß') that differs from len(x).
        length = max(len(gt.upper()), len(pred.upper()))
        edit = Levenshtein.distance(_normalise(gt), normalised_pred)
        distances.append(0.0 if length == 0 else edit / length)
    similarity = 1 - min(distances)
    return 0.0 if similarity < threshold else similarity


def anls_mean(preds: Sequence[str], gts_per_question: Sequence[Sequence[str]], threshold: float = 0.5) -> float:
    """Dataset ANLS (a fraction): the mean per-question ANLS over aligned ``preds`` and gt lists."""
    if len(preds) != len(gts_per_question):
        raise ValueError(f"anls_mean: {len(preds)} preds but {len(gts_per_question)} gt lists")
    if not preds:
        raise ValueError("anls_mean: no questions to score")
    return sum(anls(p, g, threshold) for p, g in zip(preds, gts_per_question)) / len(preds)
