"""VQA answer normalisation and the 10-annotator VQA accuracy (TextVQA, VizWiz).

Four implementations are in use and they do not agree (eval-metrics.md §1.1-1.2):

``official_vqav2``
    GT-Vision-Lab ``vqaEval.py`` after the "processing answers" fix: newline/tab
    cleanup always; punctuation + digit/article normalisation of gts *and* pred
    only when the gts are not all identical.
``internvl_v12_lavis``
    The salesforce/LAVIS ``VQAEval`` copy that InternVL's V1.2-era
    ``eval/vqa/evaluate_vqa.py`` (tag v1.2.3) used for TextVQA and VizWiz val:
    the pred is always fully normalised, the gts get only punctuation processing
    and only when they differ. This is the flavour behind the V1.2 table.
``evalai_m4c``
    EvalAI/m4c ``EvalAIAnswerProcessor`` (InternVL HEAD, LLaVA, lmms-eval): always
    normalise both sides, after deleting ``,`` and ``?`` and splitting ``'s``.
``vlmevalkit``
    VLMEvalKit ``process_answer``: always normalise; its period rule keeps a
    period that touches a digit, so ``"2."`` stays ``"2."``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

VQA_FLAVOURS = ("internvl_v12_lavis", "official_vqav2", "evalai_m4c", "vlmevalkit")  # normalisation and accuracy

# The 21 punctuation characters of the VQA tables; '.', "'", ':', '$', '%', '#', '&', '*' are not in it.
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# Note that "none" maps to "0": the references do this, so we do too.
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
# 120 entries, identical in all three references. Four keys have capitals and can
# never fire because words are lower-cased first; kept for fidelity.
CONTRACTIONS = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't",
    'couldve': "could've", 'couldnt': "couldn't", "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've", 'didnt': "didn't", 'doesnt': "doesn't",
    'dont': "don't", 'hadnt': "hadn't", "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've", 'hasnt': "hasn't", 'havent': "haven't",
    'hed': "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    'hes': "he's", 'howd': "how'd", 'howll': "how'll",
    'hows': "how's", "Id've": "I'd've", "I'dve": "I'd've",
    'Im': "I'm", 'Ive': "I've", 'isnt': "isn't",
    'itd': "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    'itll': "it'll", "let's": "let's", 'maam': "ma'am",
    'mightnt': "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    'mightve': "might've", 'mustnt': "mustn't", 'mustve': "must've",
    'neednt': "needn't", 'notve': "not've", 'oclock': "o'clock",
    'oughtnt': "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", 'shant': "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", 'shouldve': "should've",
    'shouldnt': "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    'somebodyll': "somebody'll", 'somebodys': "somebody's", 'someoned': "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", 'someonell': "someone'll",
    'someones': "someone's", 'somethingd': "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", 'somethingll': "something'll", 'thats': "that's",
    'thered': "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    'therere': "there're", 'theres': "there's", 'theyd': "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", 'theyll': "they'll",
    'theyre': "they're", 'theyve': "they've", 'twas': "'twas",
    'wasnt': "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    'weve': "we've", 'werent': "weren't", 'whatll': "what'll",
    'whatre': "what're", 'whats': "what's", 'whatve': "what've",
    'whens': "when's", 'whered': "where'd", 'wheres': "where's",
    'whereve': "where've", 'whod': "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", 'wholl': "who'll", 'whos': "who's",
    'whove': "who've", 'whyll': "why'll", 'whyre': "why're",
    'whys': "why's", 'wont': "won't", 'wouldve': "would've",
    'wouldnt': "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    'yall': "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    'youd': "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    'youll': "you'll", 'youre': "you're", 'youve': "you've",
}

_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
# m4c's variant runs after all commas were deleted, so in practice it never matches.
_DIGIT_COMMA_M4C = re.compile(r"(?<=\d)(\,)+(?=\d)")
# A mistyped look-behind in the references: it means "a period not followed by a digit".
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"(?!<=\d)(\.)(?!\d)")
# VLMEvalKit's real look-behind: remove a period only if no digit is on either side.
_PERIOD_AWAY_FROM_DIGITS = re.compile(r"(?<!\d)\.(?!\d)")
# The references pass re.UNICODE (== 32) positionally as `count`, capping removals at 32.
_REFERENCE_PERIOD_COUNT = int(re.UNICODE)


def _process_punctuation(text: str, digit_comma: re.Pattern[str], period: re.Pattern[str], period_count: int) -> str:
    # The tests look at the *original* text; the replacements accumulate in `out`.
    drop_all = digit_comma.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if drop_all or (mark + " ") in text or (" " + mark) in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return period.sub("", out, count=period_count)


def _process_digit_article(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def _official_full(text: str) -> str:
    text = _clean_whitespace(text)
    text = _process_punctuation(text, _DIGIT_COMMA, _PERIOD_NOT_BEFORE_DIGIT, _REFERENCE_PERIOD_COUNT)
    return _process_digit_article(text)


def _m4c(text: str) -> str:
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _clean_whitespace(text)
    text = _process_punctuation(text, _DIGIT_COMMA_M4C, _PERIOD_NOT_BEFORE_DIGIT, _REFERENCE_PERIOD_COUNT)
    return _process_digit_article(text)


def _vlmevalkit(text: str) -> str:
    text = _process_punctuation(_clean_whitespace(text), _DIGIT_COMMA, _PERIOD_AWAY_FROM_DIGITS, 0)
    return _process_digit_article(text)


def _check_flavour(flavour: str, known: Sequence[str], what: str) -> None:
    if flavour not in known:
        raise ValueError(f"unknown {what} flavour {flavour!r}; known: {', '.join(known)}")


def vqa_normalize(text: str, flavour: str = "internvl_v12_lavis") -> str:
    """Normalise one answer string the way ``flavour`` normalises a prediction.

    For ``official_vqav2`` this is the normalisation applied when the 10 gts are
    not all identical (otherwise the official script only cleans whitespace);
    ``internvl_v12_lavis`` normalises the prediction the same way, always.
    """
    _check_flavour(flavour, VQA_FLAVOURS, "vqa_normalize")
    if not isinstance(text, str):
        raise TypeError(f"vqa_normalize: text must be str, got {type(text).__name__}")
    if flavour == "evalai_m4c":
        return _m4c(text)
    if flavour == "vlmevalkit":
        return _vlmevalkit(text)
    return _official_full(text)


def _leave_one_out(pred: str, gts: Sequence[str]) -> float:
    # For each annotator i: min(1, #(other annotators equal to pred) / 3), averaged over i.
    total_equal = sum(1 for gt in gts if gt == pred)
    scores = []
    for gt in gts:
        others_equal = total_equal - (1 if gt == pred else 0)
        scores.append(min(1.0, others_equal / 3))
    return sum(scores) / len(scores)


def vqa_accuracy(pred: str, gts: Sequence[str], flavour: str = "internvl_v12_lavis") -> float:
    """Per-question VQA accuracy in [0, 1] for one prediction against the annotators' answers.

    With k of the (normalised) gts equal to the (normalised) pred this is 0, 0.3,
    0.6, 0.9, 1.0 for k = 0, 1, 2, 3, >=4 with 10 gts. The m4c reference asserts
    exactly 10 gts; we accept any non-empty list, the formula being the same.
    """
    _check_flavour(flavour, VQA_FLAVOURS, "vqa_accuracy")
    if isinstance(gts, str) or not gts:
        raise ValueError(f"vqa_accuracy: gts must be a non-empty list of answers, got {gts!r}")
    if not isinstance(pred, str) or not all(isinstance(gt, str) for gt in gts):
        raise TypeError("vqa_accuracy: pred and every gt must be str")
    if flavour == "evalai_m4c":
        return _leave_one_out(_m4c(pred), [_m4c(gt) for gt in gts])
    if flavour == "vlmevalkit":
        return _leave_one_out(_vlmevalkit(pred), [_vlmevalkit(gt) for gt in gts])
    if flavour == "internvl_v12_lavis":
        gt_answers = list(gts)
        if len(set(gt_answers)) > 1:
            gt_answers = [
                _process_punctuation(gt, _DIGIT_COMMA, _PERIOD_NOT_BEFORE_DIGIT, _REFERENCE_PERIOD_COUNT)
                for gt in gt_answers
            ]
        return _leave_one_out(_official_full(pred), gt_answers)
    # official_vqav2: whitespace cleanup always, the rest only when the gts differ.
    gt_answers = [_clean_whitespace(gt) for gt in gts]
    pred_answer = _clean_whitespace(pred)
    if len(set(gt_answers)) > 1:
        gt_answers = [_official_full(gt) for gt in gt_answers]
        pred_answer = _official_full(pred_answer)
    return _leave_one_out(pred_answer, gt_answers)
