"""The synthetic-data knobs the demo uses (internvl_chat.data.synth.generate): one question kind per
task, one question per image, InternVL's short-answer suffix and a fixed option order."""

from __future__ import annotations

import json

import pytest

from internvl_chat.data import synth

DEMO_KINDS = {"shapes": ["count"], "charts": ["highest"], "documents": ["lines"], "choice": ["colour"]}


def _train(out, task):
    return [json.loads(line) for line in (out / task / "train.jsonl").read_text().splitlines()]


def test_demo_knobs_ask_only_the_chosen_kinds_with_the_suffix(tmp_path):
    out = tmp_path / "d"
    synth.generate(out, n_train=12, n_test=8, image_size=56, question_kinds=DEMO_KINDS, single_question=True,
                   short_answer_suffix=True, fixed_choice_order=True)
    stems = {"shapes": "How many shapes are there?", "charts": "Which bar is the highest?",
             "documents": "How many lines of text are there?"}
    for task, stem in stems.items():
        for rec in _train(out, task):
            human, gpt = rec["conversations"]  # exactly one question turn, no caption
            assert human["value"] == f"<image>\n{stem}\n{synth.SHORT_ANSWER_SUFFIX}", rec["id"]
            assert gpt["value"] in {"1", "2", "3", "4", "A", "B", "C"}, rec["id"]
    for rec in _train(out, "choice"):
        human, gpt = rec["conversations"]
        assert human["value"].startswith("<image>\nWhat colour is the shape?\nA. red\nB. green\nC. blue\nD. yellow\n")
        assert human["value"].endswith(synth.CHOICE_SUFFIX) and synth.SHORT_ANSWER_SUFFIX not in human["value"]
    tests = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert len(tests) == 32
    for rec in tests:
        if rec["task"] == "choice":
            assert rec["choices"] == {"A": "red", "B": "green", "C": "blue", "D": "yellow"}
            assert rec["chance"] == 0.25
        else:
            assert rec["question"] == f"{stems[rec['task']]}\n{synth.SHORT_ANSWER_SUFFIX}"


def test_fixed_order_keeps_the_images_and_answers_of_the_shuffled_order(tmp_path):
    synth.generate(tmp_path / "a", n_train=0, n_test=12, image_size=56, question_kinds={"choice": ["colour"]},
                   tasks=["choice"])
    synth.generate(tmp_path / "b", n_train=0, n_test=12, image_size=56, question_kinds={"choice": ["colour"]},
                   tasks=["choice"], fixed_choice_order=True)
    a = [json.loads(line) for line in (tmp_path / "a" / "test.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b" / "test.jsonl").read_text().splitlines()]
    for ra, rb in zip(a, b):
        assert (tmp_path / "a" / ra["image"]).read_bytes() == (tmp_path / "b" / rb["image"]).read_bytes()
        assert ra["choices"][ra["answer"]] == rb["choices"][rb["answer"]]  # the same colour, maybe another letter
    assert any(ra["choices"] != rb["choices"] for ra, rb in zip(a, b))


def test_unknown_question_kinds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="question_kinds"):
        synth.generate(tmp_path, n_train=1, n_test=1, question_kinds={"shapes": ["size"]})
    with pytest.raises(ValueError, match="question_kinds"):
        synth.generate(tmp_path, n_train=1, n_test=1, question_kinds={"maps": ["count"]})
