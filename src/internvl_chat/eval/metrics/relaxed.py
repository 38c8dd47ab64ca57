"""ChartQA relaxed accuracy (pix2struct rule, eval-metrics.md §1.4).

A number within 5% relative error of the target is correct; anything else needs
a case-insensitive exact match. Two flavours differ in which side is the
"target":

``internvl_swapped``
    InternVL ``evaluate_relaxed_accuracy`` (unchanged from v1.2.3 to HEAD) passes
    the stripped prediction as the target, so the error is relative to |pred|
    and a prediction of "0" falls back to string comparison. This produced the
    InternVL ChartQA numbers.
``vlmevalkit_gt_relative``
    VLMEvalKit: relative to the ground truth, prediction stripped.
"""

from __future__ import annotations

from collections.abc import Sequence

RELAXED_FLAVOURS = ("internvl_swapped", "vlmevalkit_gt_relative")
MAX_RELATIVE_CHANGE = 0.05


def _to_float(text: str) -> float | None:
    # float() tolerates surrounding whitespace and rejects '$', ',' and units, as the reference does.
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correctness(target: str, prediction: str, max_relative_change: float = MAX_RELATIVE_CHANGE) -> bool:
    """The pix2struct rule with explicit ``target``/``prediction`` roles."""
    prediction_value = _to_float(prediction)
    target_value = _to_float(target)
    # A target of 0 (falsy) cannot be used as a denominator: compare strings instead.
    if prediction_value is not None and target_value:
        return abs(prediction_value - target_value) / abs(target_value) <= max_relative_change
    return prediction.lower() == target.lower()


def relaxed_accuracy(pred: str, gt: str | Sequence[str], flavour: str = "internvl_swapped") -> float:
    """1.0 if ``pred`` is relaxed-correct against any of ``gt`` (a string or a list), else 0.0."""
    if flavour not in RELAXED_FLAVOURS:
        raise ValueError(f"unknown relaxed_accuracy flavour {flavour!r}; known: {', '.join(RELAXED_FLAVOURS)}")
    gts = [gt] if isinstance(gt, str) else list(gt)
    if not gts:
        raise ValueError("relaxed_accuracy: empty gt list")
    if not isinstance(pred, str) or not all(isinstance(g, str) for g in gts):
        raise TypeError("relaxed_accuracy: pred and every gt must be str")
    stripped = pred.strip()
    if flavour == "internvl_swapped":
        hits = [relaxed_correctness(stripped, g) for g in gts]
    else:
        hits = [relaxed_correctness(g, stripped) for g in gts]
    return 1.0 if any(hits) else 0.0
