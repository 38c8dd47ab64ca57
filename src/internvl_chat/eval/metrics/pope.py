"""POPE: confusion counts and metrics per split (eval-metrics.md §2.7).

``pope_official``
    POPE ``evaluate.py`` = InternVL ``eval_pope.py``: parse each answer with the
    POPE yes/no rule (anything without a standalone No/no/not is "yes"), pair
    answers with labels by position, positive = yes. Fractions. yes_ratio is
    the *predicted* yes ratio. The V1.2 headline is the mean F1 of the three
    splits (adversarial, popular, random).
``vlmevalkit_POPE_rating``
    VLMEvalKit: ``YOrN_Extraction``; "Unknown" counts as a negative prediction for
    precision/recall/F1 and as an error for accuracy; percentages; a zero
    denominator gives 0 instead of raising. Labels must be "Yes"/"No".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from .errors import ReferenceZeroDivisionError
from .yesno import parse_yes_no

POPE_FLAVOURS = ("pope_official", "vlmevalkit_POPE_rating")
POPE_SPLITS = ("adversarial", "popular", "random")


@dataclass(frozen=True)
class PopeCounts:
    TP: int
    FP: int
    TN: int
    FN: int


def pope_metrics_from_counts(TP: int, FP: int, TN: int, FN: int) -> dict[str, float]:  # noqa: N803 (POPE's names)
    """accuracy, precision, recall, f1 and predicted yes_ratio (fractions) from a confusion matrix.

    Raises :class:`ReferenceZeroDivisionError` where the reference divides by zero
    (no positive prediction, no positive label, or P + R = 0).
    """
    for name, value in (("TP", TP), ("FP", FP), ("TN", TN), ("FN", FN)):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole or value < 0:
            raise ValueError(f"pope_metrics_from_counts: {name} must be a non-negative whole number, got {value!r}")
    total = TP + FP + TN + FN
    if TP + FP == 0 or TP + FN == 0 or TP == 0:
        raise ReferenceZeroDivisionError(
            f"POPE metrics undefined for TP={TP} FP={FP} TN={TN} FN={FN}: the reference divides by zero"
        )
    precision = TP / (TP + FP)
    recall = TP / (TP + FN)
    return {
        "accuracy": (TP + TN) / total,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "yes_ratio": (TP + FP) / total,
    }


def _aligned(labels: Sequence[str], preds: Sequence[str]) -> None:
    if len(labels) != len(preds):
        raise ValueError(f"POPE: {len(labels)} labels but {len(preds)} predictions; they are paired by position")
    if not labels:
        raise ValueError("POPE: no questions")


def pope_counts(labels: Sequence[str], preds: Sequence[str]) -> PopeCounts:
    """Official confusion counts: labels "yes"/"no" (anything but "no" is positive, as in the reference)."""
    _aligned(labels, preds)
    tp = fp = tn = fn = 0
    for label, pred in zip(labels, preds):
        positive_label = label != "no"
        positive_pred = parse_yes_no(pred, "pope_official") == "yes"
        if positive_pred and positive_label:
            tp += 1
        elif positive_pred:
            fp += 1
        elif not positive_label:
            tn += 1
        else:
            fn += 1
    return PopeCounts(tp, fp, tn, fn)


def _vlmevalkit_rating(labels: Sequence[str], preds: Sequence[str]) -> dict[str, float]:
    _aligned(labels, preds)
    bad = sorted({label for label in labels if label not in ("Yes", "No")})
    if bad:
        raise ValueError(f"POPE (vlmevalkit): labels must be 'Yes'/'No', got {bad!r}")
    extracted = [parse_yes_no(pred, "vlmevalkit") for pred in preds]
    tp = sum(1 for label, e in zip(labels, extracted) if label == "Yes" and e == "Yes")
    fp = sum(1 for label, e in zip(labels, extracted) if label == "No" and e == "Yes")
    fn = sum(1 for label, e in zip(labels, extracted) if label == "Yes" and e != "Yes")
    precision = tp / (tp + fp) if tp + fp else 0
    recall = tp / (tp + fn) if tp + fn else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0
    acc = sum(1 for label, e in zip(labels, extracted) if label == e) / len(labels)
    return {"acc": acc * 100, "precision": precision * 100, "recall": recall * 100, "f1_overall": f1 * 100}


def pope_metrics(labels: Sequence[str], preds: Sequence[str], flavour: str = "pope_official") -> dict[str, float]:
    """Metrics of one POPE split from aligned labels and raw predictions.

    ``pope_official``: ``{TP, FP, TN, FN, accuracy, precision, recall, f1, yes_ratio}`` (fractions);
    ``vlmevalkit_POPE_rating``: ``{acc, precision, recall, f1_overall}`` (percent).
    """
    if flavour == "pope_official":
        counts = pope_counts(labels, preds)
        return {**asdict(counts), **pope_metrics_from_counts(**asdict(counts))}
    if flavour == "vlmevalkit_POPE_rating":
        return _vlmevalkit_rating(labels, preds)
    raise ValueError(f"unknown POPE flavour {flavour!r}; known: {', '.join(POPE_FLAVOURS)}")


def pope_by_category(
    rows: Sequence[Mapping[str, str]], flavour: str = "pope_official"
) -> dict[str, dict[str, float]]:
    """Per-split metrics from rows ``{category, label, pred}`` (category = adversarial/popular/random...).

    Rows keep their order inside each category, so answers stay paired with labels.
    """
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    for number, row in enumerate(rows):
        missing = [key for key in ("category", "label", "pred") if key not in row]
        if missing:
            raise ValueError(f"pope_by_category: row {number} lacks {', '.join(missing)}")
        labels, preds = grouped.setdefault(str(row["category"]), ([], []))
        labels.append(row["label"])
        preds.append(row["pred"])
    return {category: pope_metrics(labels, preds, flavour) for category, (labels, preds) in grouped.items()}


def pope_headline_f1(per_category: Mapping[str, Mapping[str, float]]) -> float:
    """The LLaVA/InternVL headline: the mean of the splits' F1 (a fraction; x100 for the table)."""
    if not per_category:
        raise ValueError("pope_headline_f1: no categories")
    return sum(m["f1"] for m in per_category.values()) / len(per_category)
