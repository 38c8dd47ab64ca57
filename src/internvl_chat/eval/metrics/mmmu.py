"""MMMU scoring: the official parsers, ``eval_open`` and the ``main_eval_only`` tally.

Re-implemented from the prose in eval-metrics.md §2.1 (official MMMU
``mmmu/utils/eval_utils.py`` @ bb0b95a, also shipped inside InternVL).

InternVL's V1.2 flow: its ``post_process`` (``choice.internvl_post_process``)
turns multiple-choice outputs into a letter, writes ``{id: pred}``, and runs
``main_eval_only``, which compares MC letters exactly and runs
``parse_open_response`` on open answers. :func:`mmmu_score` is that tally.

The official multiple-choice parser falls back to ``random.choice`` seeded with
42 at import, so its result depends on how many fallbacks happened before. We
keep that behaviour with an explicit ``random.Random(42)`` (module default,
resettable with :func:`reset_mmmu_random`, or pass your own ``rng``).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .files import load_json, resolve_fixture

MMMU_DISCIPLINES: dict[str, tuple[str, ...]] = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": (
        "Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
        "Public_Health",
    ),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": (
        "Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics", "Energy_and_Power",
        "Materials", "Mechanical_Engineering",
    ),
}
MMMU_SUBJECTS: frozenset[str] = frozenset(s for subjects in MMMU_DISCIPLINES.values() for s in subjects)
MMMU_RANDOM_SEED = 42

_STRIP_CHARS = (",", ".", "!", "?", ";", ":", "'")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL_TAILS = (":", ",", ".", "!", "?", ";", ":", "'")
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
_SENTENCE_SPLIT = re.compile(r"\.\s(?=[A-Z])|\n")

_default_rng = random.Random(MMMU_RANDOM_SEED)


def reset_mmmu_random() -> None:
    """Re-seed the shared fallback generator, as importing the official module does."""
    _default_rng.seed(MMMU_RANDOM_SEED)


def mmmu_subject_of(sample_id: str) -> str:
    """``validation_Art_Theory_12`` -> ``Art_Theory`` (the tokens between the first and last '_')."""
    return "_".join(sample_id.split("_")[1:-1])


def mmmu_parse_multi_choice(
    response: str,
    index2ans: Mapping[str, str],
    all_choices: Sequence[str] | None = None,
    rng: random.Random | None = None,
) -> str:
    """The official ``parse_multi_choice_response``: a letter from ``all_choices`` (default: ``index2ans`` keys).

    When nothing matches it returns ``rng.choice(all_choices)`` (default: the shared
    generator seeded with 42), exactly like the reference.
    """
    if not isinstance(response, str):
        raise TypeError(f"mmmu_parse_multi_choice: response must be str, got {type(response).__name__}")
    choices = list(index2ans) if all_choices is None else list(all_choices)
    if not choices:
        raise ValueError("mmmu_parse_multi_choice: no choices")
    for char in _STRIP_CHARS:  # one after the other, as the reference does
        response = response.strip(char)
    padded = f" {response} "

    candidates = [c for c in choices if f"({c})" in padded]
    with_brackets = bool(candidates)
    by_text = False
    if not candidates:
        candidates = [c for c in choices if f" {c} " in padded]
    if not candidates and len(padded.split()) > 5:
        candidates = [letter for letter, text in index2ans.items() if text.lower() in padded.lower()]
        by_text = bool(candidates)

    if not candidates:
        return (rng or _default_rng).choice(choices)
    if len(candidates) == 1:
        return candidates[0]
    if by_text:
        positions = [padded.lower().rfind(index2ans[c].lower()) for c in candidates]
    elif with_brackets:
        positions = [padded.rfind(f"({c})") for c in candidates]
    else:
        positions = [padded.rfind(f" {c} ") for c in candidates]
    # The right-most last occurrence wins; ties go to the earlier candidate (numpy argmax).
    return candidates[positions.index(max(positions))]


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def mmmu_normalize_str(text: str) -> list[str | float]:
    """Official ``normalize_str``: a number -> [float rounded to 2 dp]; a 1-char string c -> [' c', 'c ']."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    if len(text) == 1:
        return [" " + text, text + " "]  # padding avoids trivial substring matches
    return [text]


def mmmu_extract_numbers(text: str) -> list[str]:
    """Every number the three official regexes find (comma-grouped, scientific, simple), in that order."""
    return _NUMBER_WITH_COMMAS.findall(text) + _NUMBER_SCIENTIFIC.findall(text) + _NUMBER_SIMPLE.findall(text)


def _key_subresponses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    sentences = _SENTENCE_SPLIT.split(response)
    tails = []
    for index, sentence in enumerate(sentences):
        indicators = list(_KEY_INDICATORS)
        if index == len(sentences) - 1:
            indicators.append("=")  # the last sentence may be a bare equation
        shortest: str | None = None
        for indicator in indicators:
            if indicator in sentence:
                tail = sentence.split(indicator)[-1].strip()
                # `not shortest` (not `is None`): an empty tail is replaced by the next one, as in the reference.
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL_TAILS:
            tails.append(shortest)
    return tails or [response]


def mmmu_parse_open(response: str) -> list[str | float]:
    """Official ``parse_open_response``: the de-duplicated normalised candidates (order not meaningful)."""
    if not isinstance(response, str):
        raise TypeError(f"mmmu_parse_open: response must be str, got {type(response).__name__}")
    tails = _key_subresponses(response)
    candidates: list[str] = list(tails)
    for tail in tails:
        candidates.extend(mmmu_extract_numbers(tail))
    normalised: list[str | float] = []
    for candidate in candidates:
        normalised.extend(mmmu_normalize_str(candidate))
    return list(set(normalised))


def mmmu_eval_open(gold: str | Sequence[str], parsed: Sequence[str | float]) -> bool:
    """Official ``eval_open``: a string candidate containing a string gold, or an equal float."""
    golds: list[str | float] = []
    for answer in [gold] if isinstance(gold, str) else list(gold):
        golds.extend(mmmu_normalize_str(answer))
    for candidate in parsed:
        if isinstance(candidate, str):
            if any(isinstance(g, str) and g in candidate for g in golds):
                return True
        elif candidate in golds:
            return True
    return False


def mmmu_eval_multi_choice(gold: str | Sequence[str], pred: str) -> bool:
    """Official ``eval_multi_choice``: exact equality with the gold (or one of a gold list)."""
    return pred in gold if isinstance(gold, list | tuple) else pred == gold


@dataclass
class MMMUScore:
    """Instance-level MMMU accuracy, as ``main_eval_only`` computes it."""

    correct: int
    total: int
    per_subject: dict[str, tuple[int, int]] = field(default_factory=dict)  # subject -> (correct, total)
    judgements: dict[str, bool] = field(default_factory=dict)  # sample id -> correct

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def per_discipline(self) -> dict[str, tuple[int, int]]:
        out = {}
        for discipline, subjects in MMMU_DISCIPLINES.items():
            present = [self.per_subject[s] for s in subjects if s in self.per_subject]
            out[discipline] = (sum(c for c, _ in present), sum(t for _, t in present))
        return out


def mmmu_score(outputs: Mapping[str, object], answers: Mapping[str, Mapping[str, object]]) -> MMMUScore:
    """Score ``{id: prediction}`` against ``{id: {question_type, ground_truth}}`` like ``main_eval_only``.

    Multiple-choice predictions must already be letters (they are compared
    exactly); open predictions are raw text and go through :func:`mmmu_parse_open`.
    Like the reference, ids whose subject is not an MMMU subject, or whose
    subject has no answers at all, are skipped; an id missing from an answered
    subject is an error.
    """
    answered_subjects = {mmmu_subject_of(i) for i in answers}
    result = MMMUScore(correct=0, total=0)
    for sample_id, pred in outputs.items():
        subject = mmmu_subject_of(sample_id)
        if subject not in MMMU_SUBJECTS or subject not in answered_subjects:
            continue
        if sample_id not in answers:
            raise KeyError(f"mmmu_score: prediction for {sample_id!r} has no entry in the answer dict")
        answer = answers[sample_id]
        gold = answer["ground_truth"]
        if answer["question_type"] == "multiple-choice":
            correct = mmmu_eval_multi_choice(gold, pred)
        else:
            if not isinstance(pred, str):
                raise TypeError(f"mmmu_score: open-question prediction for {sample_id!r} is not a string: {pred!r}")
            correct = mmmu_eval_open(gold, mmmu_parse_open(pred))
        c, t = result.per_subject.get(subject, (0, 0))
        result.per_subject[subject] = (c + int(correct), t + 1)
        result.judgements[sample_id] = correct
        result.correct += int(correct)
        result.total += 1
    return result


def mmmu_end_to_end(
    output_file: str | os.PathLike[str], answer_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> MMMUScore:
    """``main_eval_only`` on two files; relative paths resolve against ``root`` or ``$INTERNVL_MMMU_REPO``."""
    outputs = load_json(resolve_fixture(output_file, root, "INTERNVL_MMMU_REPO"))
    answers = load_json(resolve_fixture(answer_file, root, "INTERNVL_MMMU_REPO"))
    if not isinstance(outputs, dict) or not isinstance(answers, dict):
        raise ValueError(f"{output_file} and {answer_file} must both hold a JSON object keyed by sample id")
    return mmmu_score(outputs, answers)
