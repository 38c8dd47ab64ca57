"""The MMMU / MathVista end-to-end scorers on small fixture files in the repositories' own formats."""

from __future__ import annotations

import json

import pytest

from internvl_chat.eval.metrics import mathvista_end_to_end, mmmu_end_to_end, score


def _write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture()
def mmmu_root(tmp_path):
    """An MMMU-like checkout: mmmu/answer_dict_val.json plus an {id: prediction} output file."""
    answers = {
        "validation_Art_Theory_1": {"question_type": "multiple-choice", "ground_truth": "B"},
        "validation_Art_Theory_2": {"question_type": "multiple-choice", "ground_truth": "C"},
        "validation_Math_1": {"question_type": "open", "ground_truth": "4"},
        "validation_Math_2": {"question_type": "open", "ground_truth": ["24/7", "3.429"]},
        "validation_Math_3": {"question_type": "open", "ground_truth": "1.06"},
        "validation_Physics_1": {"question_type": "multiple-choice", "ground_truth": ["A", "D"]},
    }
    outputs = {
        "validation_Art_Theory_1": "B",  # right
        "validation_Art_Theory_2": "(C)",  # MC is not parsed here: wrong
        "validation_Math_1": "The answer is 4",  # right (4.0)
        "validation_Math_2": "24/7",  # right (substring)
        "validation_Math_3": "about 2",  # wrong
        "validation_Physics_1": "D",  # right (gold list)
        "validation_Cooking_1": "A",  # not an MMMU subject: skipped, like main_eval_only
    }
    _write(tmp_path / "mmmu" / "answer_dict_val.json", answers)
    _write(tmp_path / "mmmu" / "example_outputs" / "tiny_val.json", outputs)
    return tmp_path


def test_mmmu_end_to_end_totals(mmmu_root):
    result = mmmu_end_to_end("mmmu/example_outputs/tiny_val.json", "mmmu/answer_dict_val.json", root=mmmu_root)
    assert (result.correct, result.total) == (4, 6)
    assert result.per_subject == {"Art_Theory": (1, 2), "Math": (2, 3), "Physics": (1, 1)}
    assert result.per_discipline()["Science"] == (3, 4)
    assert result.judgements["validation_Art_Theory_2"] is False
    out = score("mmmu_end_to_end", output_file="mmmu/example_outputs/tiny_val.json",
                answer_file="mmmu/answer_dict_val.json", root=str(mmmu_root))
    assert out == {"correct": 4, "total": 6}


def test_mmmu_end_to_end_reads_the_root_from_the_environment(mmmu_root, monkeypatch):
    monkeypatch.setenv("INTERNVL_MMMU_REPO", str(mmmu_root))
    out = score("mmmu_end_to_end", output_file="mmmu/example_outputs/tiny_val.json",
                answer_file="mmmu/answer_dict_val.json")
    assert out == {"correct": 4, "total": 6}


def test_mmmu_end_to_end_errors_name_the_problem(mmmu_root, monkeypatch):
    monkeypatch.delenv("INTERNVL_MMMU_REPO", raising=False)
    with pytest.raises(FileNotFoundError, match="INTERNVL_MMMU_REPO"):
        mmmu_end_to_end("mmmu/example_outputs/tiny_val.json", "mmmu/answer_dict_val.json")
    _write(mmmu_root / "extra.json", {"validation_Math_9": "1"})
    with pytest.raises(KeyError, match="validation_Math_9"):
        mmmu_end_to_end("extra.json", "mmmu/answer_dict_val.json", root=mmmu_root)
    (mmmu_root / "broken.json").write_text('{"validation_Math_1": ', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json: invalid JSON at line 1"):
        mmmu_end_to_end("broken.json", "mmmu/answer_dict_val.json", root=mmmu_root)


def _mv_record(pid, extraction, answer, true_false, question_type="free_form", answer_type="integer",
               choices=None, precision=None):
    return {
        "pid": pid, "extraction": extraction, "answer": answer, "true_false": true_false,
        "question_type": question_type, "answer_type": answer_type, "choices": choices, "precision": precision,
        "response": "...", "query": "...",
    }


@pytest.fixture()
def mathvista_root(tmp_path):
    choices = ["3/11", "8/11", "6/11", "3/5"]
    records = {
        "1": _mv_record("1", "14.0", "14", True),
        "2": _mv_record("2", "fourteen", "14", False),
        "3": _mv_record("3", "1.25", "1.2", True, answer_type="float", precision=1),
        "4": _mv_record("4", "1.2", "1.20", False, answer_type="float", precision=2),
        "5": _mv_record("5", "B", "8/11", True, question_type="multi_choice", answer_type="text", choices=choices),
        "6": _mv_record("6", "", "8/11", False, question_type="multi_choice", answer_type="text", choices=choices),
        "7": _mv_record("7", "[2007,2008]", "[2007, 2008]", False, answer_type="list"),
    }
    _write(tmp_path / "results" / "tiny" / "output_tiny.json", records)
    stale = dict(records, **{"2": _mv_record("2", "2.0", "2", False)})  # an older rule stored "2.0" as wrong
    _write(tmp_path / "results" / "tiny" / "output_stale.json", stale)
    return tmp_path


def test_mathvista_end_to_end_totals(mathvista_root):
    assert mathvista_end_to_end("results/tiny/output_tiny.json", root=mathvista_root) == {
        "correct": 3, "total": 7, "per_pid_true_false_matches_file": True,
    }
    assert score("mathvista_end_to_end", file="results/tiny/output_tiny.json", root=str(mathvista_root))["correct"] == 3


def test_mathvista_end_to_end_flags_stored_verdicts_that_disagree(mathvista_root, monkeypatch):
    monkeypatch.setenv("INTERNVL_MATHVISTA_REPO", str(mathvista_root))
    assert mathvista_end_to_end("results/tiny/output_stale.json") == {
        "correct": 4, "total": 7, "per_pid_true_false_matches_file": False,
    }
