"""MathVista scoring from an extracted answer (eval-metrics.md §2.2).

``mathvista_official``
    ``evaluation/calculate_score.py`` @ 53d5258 (the scorer InternVL runs):
    normalise the extraction by question/answer type, then compare strings.
    Multiple choice: a "(x)" letter, or an upper-case option letter, maps to that
    option's text, anything else to the option with the smallest Levenshtein
    distance. integer -> ``str(int(float(x)))``; float -> ``str(round(float(x),
    precision))``; list -> ``str(x)``.
``vlmevalkit_post_check``
    VLMEvalKit ``post_check`` on the extraction: ``can_infer`` for multiple
    choice, ``int()`` for integers, exact float equality (no rounding), and list
    answers always wrong.

The answer *extraction* itself (rules, then an LLM) is not a metric and lives
with the benchmark; these functions start from ``extraction``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import Levenshtein

from .choice import can_infer
from .files import load_json, resolve_fixture

_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")


def _most_similar(text: str, choices: Sequence[str]) -> str:
    distances = [Levenshtein.distance(text, choice) for choice in choices]
    return choices[distances.index(min(distances))]  # the first minimum wins


def mathvista_normalize(
    extraction: object,
    choices: Sequence[str] | None,
    question_type: str,
    answer_type: str,
    precision: int | float | str | None = None,
    ignore_empty_extractions: bool = False,
) -> str | None:
    """The official ``normalize_extracted_answer``; ``None`` when the extraction cannot be read as the type.

    With ``ignore_empty_extractions`` an empty multiple-choice extraction gives
    ``None`` instead of the option closest to "" (the shortest one).
    """
    if question_type == "multi_choice":
        if not choices:
            raise ValueError("mathvista_normalize: a multi_choice question needs a non-empty choices list")
        text = extraction.strip() if isinstance(extraction, str) else str(extraction)
        if ignore_empty_extractions and not text:
            return None
        letters = _PAREN_LETTER.findall(text)
        if letters:
            text = letters[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if text in options:
            return choices[options.index(text)]
        return _most_similar(text, list(choices))
    # The reference wraps each conversion in a bare try/except and stores None on any failure.
    if answer_type == "integer":
        try:
            return str(int(float(extraction)))  # truncates toward zero
        except (TypeError, ValueError, OverflowError):
            return None
    if answer_type == "float":
        try:
            return str(round(float(extraction), int(precision)))
        except (TypeError, ValueError, OverflowError):
            return None
    if answer_type == "list":
        return str(extraction)
    # Any other answer type: the reference leaves the extraction untouched (even a non-string).
    return extraction  # type: ignore[return-value]


def mathvista_is_correct(normalized: str | None, answer: object) -> bool:
    """Official ``safe_equal``: plain equality (so "1.2" never equals a gold "1.20")."""
    return normalized == answer


def vlmevalkit_post_check(
    extraction: str, answer: str, choices: Sequence[str] | None, question_type: str, answer_type: str
) -> bool:
    """VLMEvalKit ``post_check(row, prefetch=False)`` on an extraction; any failure counts as wrong."""
    if question_type == "multi_choice":
        if not choices:
            raise ValueError("vlmevalkit_post_check: a multi_choice question needs a non-empty choices list")
        letters = {chr(ord("A") + i): str(c) for i, c in enumerate(choices)}
        answer_letter = next((k for k, v in letters.items() if v == answer), None)
        if answer_letter is None:
            raise ValueError(f"vlmevalkit_post_check: answer {answer!r} is not one of the choices {list(choices)!r}")
        return can_infer(str(extraction), letters) == answer_letter
    try:
        if answer_type == "integer":
            return int(extraction) == int(answer)
        if answer_type == "float":
            return float(extraction) == float(answer)
    except (TypeError, ValueError, OverflowError):
        return False
    # Other types ('list') compare str(None) with the answer, so they are always wrong at e8e78f0.
    return str(answer) == "None"


@dataclass
class MathVistaScore:
    """Accuracy over records plus the per-pid verdicts."""

    correct: int
    total: int
    judgements: dict[str, bool] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


_REQUIRED = ("extraction", "choices", "question_type", "answer_type", "answer")


def mathvista_accuracy(records: Mapping[str, Mapping[str, object]] | Iterable[Mapping[str, object]]) -> MathVistaScore:
    """Normalise each record's ``extraction`` (with its own choices, types and precision) and tally.

    ``records`` is ``{pid: record}`` (the layout of MathVista's ``output_*.json``)
    or an iterable of records carrying ``pid``.
    """
    items = records.items() if isinstance(records, Mapping) else ((r.get("pid"), r) for r in records)
    score = MathVistaScore(correct=0, total=0)
    for pid, record in items:
        missing = [key for key in _REQUIRED if key not in record]
        if missing:
            raise ValueError(f"MathVista record pid={pid}: missing field(s) {', '.join(missing)}")
        normalized = mathvista_normalize(
            record["extraction"], record["choices"], record["question_type"], record["answer_type"],
            record.get("precision"),
        )
        correct = mathvista_is_correct(normalized, record["answer"])
        score.judgements[str(pid)] = correct
        score.correct += int(correct)
        score.total += 1
    return score


def _stored_verdict(pid: object, record: Mapping[str, object], path: object) -> bool:
    verdict = record.get("true_false")
    if isinstance(verdict, bool):
        return verdict
    if verdict in ("True", "False"):  # some exports stringify it
        return verdict == "True"
    raise ValueError(f"{path}: pid={pid} has no boolean true_false (got {verdict!r})")


def mathvista_end_to_end(file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """Re-score a MathVista ``output_*.json``; relative paths resolve against ``root`` or ``$INTERNVL_MATHVISTA_REPO``.

    Returns ``{correct, total, per_pid_true_false_matches_file}``, the last
    saying whether every recomputed verdict equals the file's ``true_false``.
    """
    path = resolve_fixture(file, root, "INTERNVL_MATHVISTA_REPO")
    records = load_json(path)
    if not isinstance(records, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by pid")
    score = mathvista_accuracy(records)
    matches = all(score.judgements[str(pid)] == _stored_verdict(pid, r, path) for pid, r in records.items())
    return {"correct": score.correct, "total": score.total, "per_pid_true_false_matches_file": matches}

