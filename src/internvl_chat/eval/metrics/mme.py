"""MME subtask scores and the perception / cognition totals (eval-metrics.md §2.5).

``mme_official``
    The MME calculation script InternVL runs: rows are taken two at a time in
    file order (one image, two questions); acc = correct questions / questions,
    acc+ = images with both right / images, score = 100·acc + 100·acc+ (max 200).
    Answers are parsed with the ``mme_official`` yes/no rule; "other" is wrong.
``vlmevalkit_MME_rating``
    VLMEvalKit: ``YOrN_Extraction`` ("Unknown" is wrong), rows grouped by image
    name rather than by position; same 100·acc + 100·acc+ formula.

InternVL additionally rewrites raw answers before scoring
(:func:`internvl_mme_postprocess`); pass ``internvl_postprocess=True`` for that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .yesno import internvl_mme_postprocess, parse_yes_no

MME_FLAVOURS = ("mme_official", "vlmevalkit_MME_rating")
MME_PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


@dataclass(frozen=True)
class MMERow:
    """One MME question: image name, gold "Yes"/"No" and the model's raw answer."""

    image: str
    gt: str
    pred: str


def _rows(rows: Sequence[Sequence[str] | MMERow], subtask: str) -> list[MMERow]:
    out = []
    for number, row in enumerate(rows):
        if not isinstance(row, MMERow):
            if isinstance(row, str) or len(row) != 3:
                raise ValueError(f"MME {subtask}: row {number} must be [image, gt, pred], got {row!r}")
            row = MMERow(*row)
        if row.gt.lower() not in ("yes", "no"):
            raise ValueError(f"MME {subtask}: row {number} ({row.image}) has gt {row.gt!r}; expected Yes or No")
        if not isinstance(row.pred, str):
            raise ValueError(f"MME {subtask}: row {number} ({row.image}) prediction is not a string: {row.pred!r}")
        out.append(row)
    if not out:
        raise ValueError(f"MME {subtask}: no rows")
    return out


def _official(rows: list[MMERow], subtask: str) -> dict[str, float]:
    if len(rows) % 2:
        raise ValueError(f"MME {subtask}: {len(rows)} rows; the official script needs two consecutive rows per image")
    correct = [parse_yes_no(r.pred.lower(), "mme_official") == r.gt.lower() for r in rows]
    images = len(rows) // 2
    both = sum(1 for i in range(images) if correct[2 * i] and correct[2 * i + 1])
    acc = sum(correct) / len(rows)
    acc_plus = both / images
    return {"acc": acc, "acc_plus": acc_plus, "score": acc * 100 + acc_plus * 100}


def _vlmevalkit(rows: list[MMERow], subtask: str) -> dict[str, float]:
    by_image: dict[str, list[bool]] = {}
    for r in rows:
        by_image.setdefault(r.image, []).append(parse_yes_no(r.pred, "vlmevalkit") == r.gt.capitalize())
    short = [image for image, hits in by_image.items() if len(hits) < 2]
    if short:
        raise ValueError(f"MME {subtask}: image(s) {short!r} have fewer than two questions")
    every = [hit for hits in by_image.values() for hit in hits]
    acc = sum(every) / len(every)
    # VLMEvalKit multiplies the first two verdicts of each image.
    acc_plus = sum(1 for hits in by_image.values() if hits[0] and hits[1]) / len(by_image)
    return {"acc": acc, "acc_plus": acc_plus, "score": acc * 100 + acc_plus * 100}


def mme_subtask_score(
    rows: Sequence[Sequence[str] | MMERow],
    flavour: str = "mme_official",
    subtask: str = "subtask",
    internvl_postprocess: bool = False,
) -> dict[str, float]:
    """``{acc, acc_plus, score}`` of one subtask; acc and acc_plus are fractions, score is out of 200."""
    checked = _rows(rows, subtask)
    if internvl_postprocess:
        checked = [MMERow(r.image, r.gt, internvl_mme_postprocess(r.pred)) for r in checked]
    if flavour == "mme_official":
        return _official(checked, subtask)
    if flavour == "vlmevalkit_MME_rating":
        return _vlmevalkit(checked, subtask)
    raise ValueError(f"unknown MME flavour {flavour!r}; known: {', '.join(MME_FLAVOURS)}")


def mme_totals(subtask_scores: Mapping[str, float]) -> dict[str, float]:
    """Perception (10 subtasks, max 2000) and cognition (4 subtasks, max 800) sums of subtask scores.

    All 14 subtasks must be present: a missing one would silently lower the total.
    """
    missing = [name for name in MME_PERCEPTION + MME_COGNITION if name not in subtask_scores]
    if missing:
        raise ValueError(f"mme_totals: missing subtask score(s) {', '.join(missing)}")
    unknown = sorted(set(subtask_scores) - set(MME_PERCEPTION) - set(MME_COGNITION))
    if unknown:
        raise ValueError(f"mme_totals: unknown subtask(s) {', '.join(unknown)}")
    return {
        "perception": sum(subtask_scores[name] for name in MME_PERCEPTION),
        "cognition": sum(subtask_scores[name] for name in MME_COGNITION),
    }
