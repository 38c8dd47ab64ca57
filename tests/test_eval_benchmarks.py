"""Scoring of every benchmark on its fixture: right answers score full marks, known cases score exactly
what the reference flavour gives, and splits without answers write their official submission files."""

from __future__ import annotations

import json

import pytest
from test_eval_fixtures import write_all

from internvl_chat.eval.benchmarks import ScoreContext, benchmark_names, get_benchmark


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("bench_data"))


def right_answer(name: str, s) -> str:
    """What a perfect model would say (in the form InternVL's prompts ask for)."""
    if isinstance(s.answer, list):
        return s.answer[0]
    if name == "mme":
        return s.answer  # "Yes" / "No"
    return str(s.answer)


EXPECTED_FULL = {  # benchmark -> headline of a perfect run on the fixture
    "mme": 400.0,  # two perception subtasks in the fixture, 200 each (cognition tested below)
}


@pytest.mark.parametrize("flavour", ["internvl", "vlmevalkit"])
@pytest.mark.parametrize("name", [n for n in benchmark_names() if get_benchmark(n).has_answers])
def test_right_answers_score_full_marks(data_root, tmp_path, name, flavour):
    bench = get_benchmark(name)
    samples = bench.load(data_root)
    preds = [right_answer(name, s) for s in samples]
    result = bench.score(samples, preds, ScoreContext(flavour=flavour, out_dir=tmp_path))
    assert result.headline == pytest.approx(EXPECTED_FULL.get(name, 100.0)), (name, result.metrics)
    assert result.num_samples == len(samples)
    if name == "mme":
        assert result.metrics["cognition"] == pytest.approx(200.0)


@pytest.mark.parametrize("name", ["mmbench-dev-en", "mmvp", "scienceqa-img", "seed-image", "ai2d-test", "gqa-testdev",
                                  "textvqa-val", "docvqa-val", "chartqa-test", "mmmu-val", "synthetic"])
def test_unrelated_answers_score_zero(data_root, tmp_path, name):
    bench = get_benchmark(name)
    samples = bench.load(data_root)
    result = bench.score(samples, ["zzz qqq"] * len(samples), ScoreContext(out_dir=tmp_path))
    assert result.headline == pytest.approx(0.0), (name, result.metrics)


def test_mmbench_circular_one_wrong_pass_fails_the_question(data_root):
    bench = get_benchmark("mmbench-dev-en")
    samples = bench.load(data_root)
    preds = [s.answer for s in samples]
    preds[1] = "A" if samples[1].answer != "A" else "B"  # question 1, pass 1 wrong
    result = bench.score(samples, preds, ScoreContext())
    assert result.headline == pytest.approx(50.0)
    assert result.metrics["by_category"] == {"attribute_recognition": 0.0, "object_localization": 100.0}
    # InternVL's post_process reads the first character: "B. dog" -> B; VLMEvalKit's can_infer agrees
    text_preds = [f"{s.answer}. {s.choices[s.answer]}" for s in samples]
    for flavour in ("internvl", "vlmevalkit"):
        assert bench.score(samples, text_preds, ScoreContext(flavour=flavour)).headline == pytest.approx(100.0)


def test_chartqa_flavours_differ_on_the_swapped_tolerance(data_root):
    bench = get_benchmark("chartqa-test")
    samples = bench.load(data_root)  # human: 100, 2015; augmented: 0.5
    preds = ["105.2", "2015", "50%"]
    ivl = bench.score(samples, preds, ScoreContext(flavour="internvl"))
    vek = bench.score(samples, preds, ScoreContext(flavour="vlmevalkit"))
    # |105.2-100|/105.2 <= 5% (InternVL divides by the prediction), /100 > 5% (VLMEvalKit)
    assert ivl.metrics["by_category"] == {"augmented": 100.0, "human": 100.0}
    assert vek.metrics["by_category"] == {"augmented": 100.0, "human": 50.0}
    assert vek.headline == pytest.approx(75.0)  # mean of the two splits, as InternVL reports


def test_pope_official_parse_and_mean_f1(data_root):
    bench = get_benchmark("pope")
    samples = bench.load(data_root)
    # every answer "Yes, there is." -> yes: recall 1, precision = share of yes labels
    result = bench.score(samples, ["Yes, there is."] * len(samples), ScoreContext())
    f1 = {k: v["f1"] for k, v in result.metrics["splits"].items()}
    assert f1["adversarial"] == pytest.approx(100 * 2 * 0.5 / 1.5)  # labels yes,no: P=0.5 R=1
    assert f1["random"] == pytest.approx(100 * 2 * 0.5 / 1.5)  # yes,no,yes,no
    assert result.headline == pytest.approx(sum(f1.values()) / 3)
    # "no" everywhere: the reference divides by zero; we report it and count F1 as 0
    result = bench.score(samples, ["No."] * len(samples), ScoreContext())
    assert result.headline == 0.0 and len(result.notes) == 3
    assert result.metrics["splits"]["popular"]["TN"] == 1


def test_mme_internvl_post_processing_and_vlmevalkit_unknown(data_root):
    bench = get_benchmark("mme")
    samples = bench.load(data_root)
    # "True" is rewritten to "yes" by InternVL's MME runner; VLMEvalKit reads it as Unknown
    preds = ["True" if s.answer == "Yes" else "No" for s in samples]
    ivl = bench.score(samples, preds, ScoreContext(flavour="internvl"))
    vek = bench.score(samples, preds, ScoreContext(flavour="vlmevalkit"))
    assert ivl.headline == pytest.approx(400.0)
    assert vek.metrics["subtasks"]["count"]["score"] == pytest.approx(50.0)  # acc 1/2, acc+ 0


def test_mmmu_open_and_multiple_choice_parsing(data_root):
    bench = get_benchmark("mmmu-val")
    samples = {s.id: s for s in bench.load(data_root)}
    ordered = list(samples.values())
    preds = {"validation_Accounting_1": "B. 20", "validation_Accounting_2": "The answer is 4",
             "validation_Art_Theory_1": "Cubism"}
    result = bench.score(ordered, [preds[s.id] for s in ordered], ScoreContext())
    hits = {r["id"]: r["hit"] for r in result.per_sample}
    assert hits == {"validation_Accounting_1": 1.0, "validation_Accounting_2": 1.0, "validation_Art_Theory_1": 0.0}
    assert result.metrics["by_subject"] == {"Accounting": 100.0, "Art_Theory": 0.0}


def test_mathvista_rule_extraction_and_normalisation(data_root):
    bench = get_benchmark("mathvista-testmini")
    samples = bench.load(data_root)
    preds = ["The answer is (B) 8/11", "14.0", "Answer: 1.25"]
    result = bench.score(samples, preds, ScoreContext(flavour="internvl"))
    assert [r["normalized"] for r in result.per_sample] == ["8/11", "14", "1.2"]
    assert result.headline == pytest.approx(100.0)
    assert "rule-based" in result.notes[0]
    vek = bench.score(samples, preds, ScoreContext(flavour="vlmevalkit"))
    assert [r["hit"] for r in vek.per_sample] == [1.0, 0.0, 0.0]  # VEK: int("14.0") fails, 1.25 != 1.2


def test_mmvp_pairs(data_root):
    bench = get_benchmark("mmvp")
    samples = bench.load(data_root)
    result = bench.score(samples, ["A", "B", "A", "A"], ScoreContext())
    assert result.headline == pytest.approx(50.0)
    assert result.metrics["question_accuracy"] == pytest.approx(75.0)


def test_empty_outputs_count_as_wrong_not_crash(data_root):
    for name in ("scienceqa-img", "seed-image", "mmvp", "mmbench-dev-en"):
        bench = get_benchmark(name)
        samples = bench.load(data_root)
        result = bench.score(samples, [""] * len(samples), ScoreContext())
        assert result.headline == 0.0 and result.metrics["empty_predictions"] == len(samples)


def test_synthetic_scores_per_task_with_chance(data_root):
    bench = get_benchmark("synthetic")
    samples = bench.load(data_root)
    preds = ["Red.", "blue", "B", "two"]
    result = bench.score(samples, preds, ScoreContext())
    tasks = result.metrics["tasks"]
    assert tasks["colour"] == {"accuracy": 50.0, "chance": pytest.approx(20.0), "n": 2}
    assert tasks["shape"]["accuracy"] == 100.0 and tasks["count"]["accuracy"] == 100.0  # "two" -> "2"
    assert result.headline == pytest.approx(75.0)
    assert result.metrics["chance"] == pytest.approx(100 * (0.2 + 0.2 + 0.5 + 0.25) / 4)


def test_submission_files(data_root, tmp_path):
    from openpyxl import load_workbook

    ctx = ScoreContext(out_dir=tmp_path)
    mmb = get_benchmark("mmbench-test-en")
    samples = mmb.load(data_root)
    res = mmb.score(samples, ["B. dog"] + ["C"] * (len(samples) - 1), ctx)
    assert res.headline is None
    ws = load_workbook(res.submission).active
    header = [c.value for c in ws[1]]
    assert "prediction" in header and "image" not in header and "index" in header
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(samples) and rows[0][header.index("prediction")] == "B"

    mmmu = get_benchmark("mmmu-test")
    samples = mmmu.load(data_root)
    res = mmmu.score(samples, ["C. 30", "7", "Cubism"], ctx)
    assert json.loads(open(res.submission).read()) == {
        "test_Accounting_1": "C", "test_Accounting_2": "7", "test_Art_Theory_1": "B"}

    viz = get_benchmark("vizwiz-test")
    samples = viz.load(data_root)
    res = viz.score(samples, ["Soup.", "Unanswerable"], ctx)
    assert json.loads(open(res.submission).read()) == [
        {"image": "VizWiz_test_00000000.jpg", "answer": "soup"},
        {"image": "VizWiz_test_00000001.jpg", "answer": "unanswerable"}]

    doc = get_benchmark("docvqa-test")
    samples = doc.load(data_root)
    res = doc.score(samples, ["1/8/93", "ITC"], ctx)
    assert json.loads(open(res.submission).read()) == [{"questionId": 49153, "answer": "1/8/93"},
                                                        {"questionId": 24580, "answer": "ITC"}]
