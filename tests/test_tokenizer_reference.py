"""Ids and labels equal to what the original V1.2 code produced, on Yi-shaped sentencepiece tokenizer folders.

tests/data/tokenizers/reference.json was written by scripts/make_tokenizer_reference.py in a side environment
with transformers 4.37.2: `LlamaTokenizer.from_pretrained(folder, add_eos_token=False)`, `add_tokens(<nine
InternVL tokens>, special_tokens=True)`, then upstream `preprocess_mpt` (InternVL 75960d8) on each conversation.
Configurations: legacy true/false, ChatML tokens registered as added tokens or only sentencepiece user-defined
pieces, add_dummy_prefix on/off, a base vocabulary holding <img>/</img> as ordinary pieces, and a folder saved
the way the released InternVL-Chat-V1-2 tokenizer was (InternVL tokens already added).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_chat.constants import ADDED_SPECIAL_TOKENS, IGNORE_INDEX
from internvl_chat.data.preprocess import tokenize_conversation
from internvl_chat.model.tokenizer import load_tokenizer

DATA = Path(__file__).parent / "data" / "tokenizers"
REF = json.loads((DATA / "reference.json").read_text(encoding="utf-8"))
CONFIGS = sorted(REF["configs"])


@pytest.fixture(scope="module", params=CONFIGS)
def config(request):
    name = request.param
    return name, load_tokenizer(DATA / name), REF["configs"][name]


def _sample(case, tok):
    return tokenize_conversation(case["conversations"], tok, REF["template"], REF["num_image_token"],
                                 max_length=1_000_000, text_only=case["text_only"])


def test_reference_is_broad_enough():
    assert len(CONFIGS) >= 6
    for name in CONFIGS:
        cases = REF["configs"][name]["cases"]
        assert len(cases) >= 30, name
        assert any(c["wiped"] for c in cases) and any(not c["wiped"] for c in cases), name


def test_internvl_tokens_have_the_originals_ids(config):
    name, tok, ref = config
    assert {t: tok.convert_tokens_to_ids(t) for t in ADDED_SPECIAL_TOKENS} == ref["internvl_token_ids"]
    assert len(tok) == ref["len_tokenizer"]
    for t in ADDED_SPECIAL_TOKENS:  # never split, also where the base vocabulary holds them as ordinary pieces
        assert tok(f"x{t}y", add_special_tokens=False)["input_ids"][1:2] == [ref["internvl_token_ids"][t]]


def test_ids_equal_the_original_for_every_case(config):
    name, tok, ref = config
    wrong = [c["id"] for c in ref["cases"] if _sample(c, tok).input_ids.tolist() != c["input_ids"]]
    assert not wrong, f"{name}: ids differ from transformers 4.37.2 for {wrong}"


def test_labels_equal_the_original_where_it_did_not_wipe(config):
    name, tok, ref = config
    kept = [c for c in ref["cases"] if not c["wiped"]]
    assert len(kept) >= 30
    wrong = [c["id"] for c in kept if _sample(c, tok).labels.tolist() != c["labels"]]
    assert not wrong, f"{name}: labels differ from preprocess_mpt for {wrong}"


def _squash(s: str) -> str:
    return "".join(s.split()).replace("▁", "")


def test_wiped_cases_supervise_exactly_replies_and_their_end_token(config):
    """Where the original printed "tokenization mismatch" (all labels -100), ours follow the documented rule."""
    name, tok, ref = config
    wiped = [c for c in ref["cases"] if c["wiped"]]
    assert wiped
    for case in wiped:
        assert all(lab == IGNORE_INDEX for lab in case["labels"])  # what the original did
        sample = _sample(case, tok)
        ids, labels = sample.input_ids.tolist(), sample.labels.tolist()
        assert all(lab in (IGNORE_INDEX, i) for lab, i in zip(labels, ids))
        runs, run = [], []
        for i, lab in zip(ids, labels):
            if lab != IGNORE_INDEX:
                run.append(i)
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
        replies = [t["value"] for t in case["conversations"] if t["from"] == "gpt"]
        if case["conversations"][0]["from"] == "gpt":
            replies = replies[1:]
        got = [_squash(tok.decode(r)) for r in runs]
        assert got == [_squash(r + "<|im_end|>") for r in replies], (name, case["id"], got)
