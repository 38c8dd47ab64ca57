"""Exact-match accuracy variants (GQA, AI2D in InternVL; eval-metrics.md §1.5).

``llava_gqa_rstrip_period_lower``
    LLaVA/InternVL ``convert_gqa_for_eval.py``: ``pred.rstrip('.').lower()``, no
    whitespace strip, then the GQA ``eval.py`` compares with the gold verbatim.
    InternVL's V1.2 GQA number used this.
``vlmevalkit_strip_lower`` (alias ``internvl_strip_lower``)
    ``gt.strip().lower() == pred.strip().lower()``; identical to InternVL's
    ``evaluate_exact_match_accuracy`` (AI2D) and VLMEvalKit ``method='accuracy'``.
"""

from __future__ import annotations

from collections.abc import Sequence

EXACT_MATCH_FLAVOURS = ("llava_gqa_rstrip_period_lower", "vlmevalkit_strip_lower", "internvl_strip_lower")


def exact_match(pred: str, gt: str | Sequence[str], flavour: str = "llava_gqa_rstrip_period_lower") -> float:
    """1.0 if ``pred`` matches any of ``gt`` (a string or a list) under ``flavour``, else 0.0."""
    if flavour not in EXACT_MATCH_FLAVOURS:
        raise ValueError(f"unknown exact_match flavour {flavour!r}; known: {', '.join(EXACT_MATCH_FLAVOURS)}")
    gts = [gt] if isinstance(gt, str) else list(gt)
    if not gts:
        raise ValueError("exact_match: empty gt list")
    if not isinstance(pred, str) or not all(isinstance(g, str) for g in gts):
        raise TypeError("exact_match: pred and every gt must be str")
    if flavour == "llava_gqa_rstrip_period_lower":
        converted = pred.rstrip(".").lower()
        return 1.0 if any(converted == g for g in gts) else 0.0
    return 1.0 if any(pred.strip().lower() == g.strip().lower() for g in gts) else 0.0
