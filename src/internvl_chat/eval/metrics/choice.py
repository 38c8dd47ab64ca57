"""Multiple-choice answer matching (eval-metrics.md §1.6).

``internvl_post_process``
    InternVL's ``post_process`` (MMMU, MMBench, SEED, MMVP and, at v1.2.3, also
    ScienceQA): a 1-character answer is returned as is; else a leading option
    letter; else the first option whose text occurs in the answer; else the
    stripped answer unchanged. An empty answer makes the reference raise
    IndexError, and so do we (:class:`ReferenceIndexError`).
``internvl_post_process_scienceqa``
    The later ScienceQA copy (InternVL HEAD): also maps "X.…" -> X and "(X)…" -> X
    and returns "" for an empty answer.
``vlmevalkit_can_infer``
    VLMEvalKit ``can_infer`` at e8e78f0: a lone option letter among the last 4
    tokens, "Z" for refusals, the "answer is X" phrase, then a unique option text
    contained in the answer; ``None`` when nothing matches (the LLM-judge case).

``choices`` maps option letters to option texts, in option order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import ReferenceIndexError

CHOICE_FLAVOURS = ("internvl_post_process", "internvl_post_process_scienceqa", "vlmevalkit_can_infer")

_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_TOKEN_SEPARATORS = ".()[],:;!*#{}"
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def _check_choices(choices: Mapping[str, str], where: str, text_must_be_str: bool = True) -> None:
    if not isinstance(choices, Mapping) or not choices:
        raise ValueError(f"{where}: choices must be a non-empty mapping letter -> option text, got {choices!r}")
    for letter, text in choices.items():
        if not (isinstance(letter, str) and len(letter) == 1 and "A" <= letter <= "Z"):
            raise ValueError(f"{where}: choice key {letter!r} is not a single upper-case letter")
        if text_must_be_str and not isinstance(text, str):
            raise ValueError(f"{where}: option {letter} text must be str, got {text!r}")


def internvl_post_process(pred: str, choices: Mapping[str, str], scienceqa: bool = False) -> str:
    """InternVL's letter extraction; returns a letter or the stripped prediction unchanged."""
    _check_choices(choices, "internvl_post_process")
    if not isinstance(pred, str):
        raise TypeError(f"internvl_post_process: pred must be str, got {type(pred).__name__}")
    text = pred.strip()
    if len(text) == 1:
        return text
    if not text:
        if scienceqa:
            return text
        # The reference evaluates pred[0] here and crashes; report it rather than guess a letter.
        raise ReferenceIndexError(
            "internvl_post_process: empty prediction (InternVL's post_process raises IndexError on it)"
        )
    if text[0] in choices:
        return text[0]
    for letter, option in choices.items():
        if option in text:
            return letter
    if scienceqa:
        if text[1] == ".":
            text = text[0]
        if len(text) > 1 and text[0] == "(":
            if len(text) < 3:
                raise ReferenceIndexError(
                    f"internvl_post_process (scienceqa): {pred!r} opens '(' with no third character; "
                    "the reference raises IndexError"
                )
            if text[2] == ")":
                text = text[1]
    return text


def _can_infer_option(pred: str, choices: Mapping[str, str], article_guard: bool) -> str | None:
    if "Failed to obtain answer via API" in pred:
        return None
    for refusal in _REFUSALS:
        if refusal in pred:
            return "Z"
    spaced = pred
    for mark in _TOKEN_SEPARATORS:
        spaced = spaced.replace(mark, " ")
    tokens = spaced.split()
    present = [letter for letter in choices if letter in tokens]
    if len(present) == 1:
        # VLMEvalKit's VERBOSE mode rejects a lone "A" in a longer string as a possible article.
        if article_guard and "A" in tokens and len(tokens) > 3:
            return None
        letter = present[0]
        if tokens.index(letter) > len(tokens) - 5:
            return letter
    elif not present and "Z" in tokens:
        return "Z"
    phrase = _ANSWER_IS.search(pred)
    if phrase and phrase.group(1).upper() in choices:
        return phrase.group(1).upper()
    return None


def _can_infer_text(pred: str, choices: Mapping[str, str]) -> str | None:
    lowered = pred.lower()
    # Guard added in VLMEvalKit c3371551: long answers are not text-matched.
    if len(lowered) > 2 * sum(len(str(option)) for option in choices.values()):
        return None
    hits = [letter for letter, option in choices.items() if str(option).lower() in lowered]
    return hits[0] if len(hits) == 1 else None


def can_infer(pred: str, choices: Mapping[str, str], article_guard: bool = False) -> str | None:
    """VLMEvalKit ``can_infer``: an option letter, ``"Z"`` (refusal / none of them) or ``None``."""
    # VLMEvalKit applies str() to option texts (TSV cells may be numbers), so any value is accepted here.
    _check_choices(choices, "can_infer", text_must_be_str=False)
    text = str(pred)
    return _can_infer_option(text, choices, article_guard) or _can_infer_text(text, choices)


def match_choice(pred: str, choices: Mapping[str, str], flavour: str = "internvl_post_process") -> str | None:
    """Turn a raw multiple-choice answer into a letter with the named flavour's rules."""
    if flavour == "internvl_post_process":
        return internvl_post_process(pred, choices)
    if flavour == "internvl_post_process_scienceqa":
        return internvl_post_process(pred, choices, scienceqa=True)
    if flavour == "vlmevalkit_can_infer":
        return can_infer(pred, choices)
    raise ValueError(f"unknown match_choice flavour {flavour!r}; known: {', '.join(CHOICE_FLAVOURS)}")
