"""Yes/No answer parsing for MME and POPE (eval-metrics.md §1.7).

``mme_official``
    The MME calculation script (InternVL ``eval/mme/calculation.py``): lower-case
    (the caller's job in the reference; done here), then exactly "yes"/"no", else
    look for "yes" then "no" in the first 4 characters, else "other" (wrong).
``pope_official``
    POPE ``evaluate.py`` (= InternVL ``eval_pope.py``): the text before the first
    '.', commas removed, split on single spaces; a token "No", "not" or "no"
    means "no", *anything else* (even "" or "NO") means "yes".
``vlmevalkit``
    VLMEvalKit ``YOrN_Extraction``: lower-case, VLMEvalKit punctuation handling,
    whitespace split; "Yes"/"No" when exactly one of the two words occurs,
    otherwise "Unknown".
"""

from __future__ import annotations

import re

from .vqa import _DIGIT_COMMA, _PERIOD_AWAY_FROM_DIGITS, _process_punctuation

YESNO_FLAVOURS = ("mme_official", "pope_official", "vlmevalkit")

_CJK = re.compile(r"[\u4e00-\u9fa5]")


def _check(pred: object) -> str:
    if not isinstance(pred, str):
        raise TypeError(f"parse_yes_no: pred must be str, got {type(pred).__name__}")
    return pred


def parse_yes_no(pred: str, flavour: str = "mme_official") -> str:
    """Map a raw answer to the flavour's label set (see the module docstring)."""
    if flavour not in YESNO_FLAVOURS:
        raise ValueError(f"unknown yes/no flavour {flavour!r}; known: {', '.join(YESNO_FLAVOURS)}")
    text = _check(pred)
    if flavour == "mme_official":
        text = text.lower()
        if text in ("yes", "no"):
            return text
        head = text[:4]
        if "yes" in head:
            return "yes"
        if "no" in head:
            return "no"
        return "other"
    if flavour == "pope_official":
        if "." in text:
            text = text.split(".")[0]
        words = text.replace(",", "").split(" ")
        return "no" if ("No" in words or "not" in words or "no" in words) else "yes"
    words = _process_punctuation(text.lower(), _DIGIT_COMMA, _PERIOD_AWAY_FROM_DIGITS, 0).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return "Yes"
    if has_no and not has_yes:
        return "No"
    return "Unknown"


def internvl_mme_postprocess(response: str) -> str:
    """InternVL's MME runner rewrite of a raw answer before ``mme_official`` parsing.

    Removes newlines, maps the Chinese 不是/是/否 to No/Yes/No, lower-cases, maps
    true/false to yes/no and deletes the remaining CJK characters
    (``eval/mme/eval.py`` ``post_processing``, eval-metrics.md §1.7).
    """
    text = _check(response).replace("\n", "").replace("不是", "No").replace("是", "Yes").replace("否", "No")
    text = text.lower().replace("true", "yes").replace("false", "no")
    return _CJK.sub("", text)
