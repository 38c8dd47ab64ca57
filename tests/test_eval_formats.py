"""The other downloadable layouts of each benchmark (VLMEvalKit TSV, Hugging Face parquet, InternVL jsonl)
load into the same samples as the layout the main fixtures use."""

from __future__ import annotations

import pytest
from test_eval_fixtures import b64, png_bytes, save_image, write_fixture, write_json, write_jsonl, write_parquet, write_tsv

from internvl_chat.eval.benchmarks import ScoreContext, get_benchmark


def _view(samples):
    return [(s.question, s.answer, dict(s.choices), s.hint) for s in samples]


def _img(i):
    return {"bytes": png_bytes(i), "path": None}


def _mcq_tsv_rows(samples, with_answer=True, extra=None):
    rows = []
    for i, s in enumerate(samples):
        row = {"index": i, "image": b64(i), "question": s.question, "hint": s.hint if s.hint else "nan"}
        for letter in "ABCDE":
            row[letter] = s.choices.get(letter, "nan")
        if with_answer:
            row["answer"] = s.answer
        row["category"] = s.meta.get("category") or "c"
        row.update((extra or {}).get(i, {}))
        rows.append(row)
    return rows


@pytest.mark.parametrize("name,tsv", [("scienceqa-img", "ScienceQA_TEST.tsv"), ("seed-image", "SEEDBench_IMG.tsv"),
                                      ("mmvp", "MMVP.tsv")])
def test_vlmevalkit_mcq_tsv_matches_original_layout(tmp_path, name, tsv):
    bench = get_benchmark(name)
    original = bench.load(write_fixture(name, tmp_path / "a"))
    write_tsv(tmp_path / "b" / bench.data_dir / tsv, _mcq_tsv_rows(original))
    loaded = bench.load(tmp_path / "b")
    assert _view(loaded) == _view(original)
    assert [bench.prompt(s) for s in loaded] == [bench.prompt(s) for s in original]


@pytest.mark.parametrize("name,tsv", [("textvqa-val", "TextVQA_VAL.tsv"), ("docvqa-val", "DocVQA_VAL.tsv"),
                                      ("vizwiz-val", "VizWiz.tsv"), ("gqa-testdev", "GQA_TestDev_Balanced.tsv"),
                                      ("chartqa-test", "ChartQA_TEST.tsv")])
def test_vlmevalkit_vqa_tsv_matches_original_layout(tmp_path, name, tsv):
    bench = get_benchmark(name)
    original = bench.load(write_fixture(name, tmp_path / "a"))
    rows = [{"index": i, "image": b64(i), "question": s.question,
             "answer": str(s.answer) if isinstance(s.answer, list) else s.answer,
             "split": f"{s.meta.get('category', '')}_test"} for i, s in enumerate(original)]
    write_tsv(tmp_path / "b" / bench.data_dir / tsv, rows)
    assert _view(bench.load(tmp_path / "b")) == _view(original)


def test_mmmu_vlmevalkit_tsv(tmp_path):
    bench = get_benchmark("mmmu-val")
    original = bench.load(write_fixture("mmmu-val", tmp_path / "a"))
    rows = _mcq_tsv_rows(original)
    for r, s in zip(rows, original):
        r.update(id=s.id, split="validation", image=f'["{b64(0)}"]')
    rows.append(dict(rows[0], index=99, id="dev_Accounting_1", split="dev"))  # dev rows are not validation
    write_tsv(tmp_path / "b" / "mmmu" / "MMMU_DEV_VAL.tsv", rows)
    loaded = bench.load(tmp_path / "b")
    assert [s.id for s in loaded] == [s.id for s in original]
    assert [bench.prompt(s) for s in loaded] == [bench.prompt(s) for s in original]
    assert loaded[1].meta["question_type"] == "open" and loaded[0].meta["subject"] == "Accounting"


def test_mathvista_original_json_and_tsv(tmp_path):
    bench = get_benchmark("mathvista-testmini")
    original = bench.load(write_fixture("mathvista-testmini", tmp_path / "a"))
    data = {s.id: {"question": "q", "query": s.question, "image": f"images/{s.id}.jpg", "answer": s.answer,
                   "choices": s.meta["choices"], "question_type": s.meta["question_type"],
                   "answer_type": s.meta["answer_type"], "precision": s.meta["precision"],
                   "metadata": {"task": s.meta["task"]}} for s in original}
    write_json(tmp_path / "b" / "mathvista" / "testmini.json", data)
    for i, s in enumerate(original):
        save_image(tmp_path / "b" / "mathvista" / "images" / f"{s.id}.jpg", i)
    from_json = bench.load(tmp_path / "b")
    assert [(s.id, s.question, s.answer, s.meta) for s in from_json] == [(s.id, s.question, s.answer, s.meta) for s in original]
    rows = [{"index": s.id, "image": b64(i), "question": s.question, "answer": s.answer,
             "choices": str(s.meta["choices"]) if s.meta["choices"] else "nan", "question_type": s.meta["question_type"],
             "answer_type": s.meta["answer_type"], "precision": s.meta["precision"] or "nan", "task": s.meta["task"]}
            for i, s in enumerate(original)]
    write_tsv(tmp_path / "c" / "mathvista" / "MathVista_MINI.tsv", rows)
    assert [(s.question, s.answer, s.meta) for s in bench.load(tmp_path / "c")] == [
        (s.question, s.answer, s.meta) for s in original]


def test_mme_parquet_and_internvl_txt_layouts(tmp_path):
    bench = get_benchmark("mme")
    original = bench.load(write_fixture("mme", tmp_path / "a"))
    rows = [{"question_id": s.meta["image_key"], "question": s.question, "answer": s.answer,
             "category": s.meta["category"], "image": _img(i)} for i, s in enumerate(original)]
    write_parquet(tmp_path / "b" / "mme" / "data" / "test-00000-of-00001.parquet", rows)
    txt = tmp_path / "c" / "mme"
    (txt / "Your_Results").mkdir(parents=True)
    for s in original:
        task, img = s.meta["image_key"].split("/")
        with open(txt / "Your_Results" / f"{task}.txt", "a") as f:
            f.write(f"{img}\t{s.question}\t{s.answer}\n")
        save_image(txt / "images" / task / img, 0)
    preds = [s.answer for s in original]
    for root in (tmp_path / "b", tmp_path / "c"):
        loaded = bench.load(root)
        assert sorted((s.meta["category"], s.question, s.answer) for s in loaded) == sorted(
            (s.meta["category"], s.question, s.answer) for s in original)
        assert bench.score(loaded, preds_for(loaded, original, preds), ScoreContext()).headline == pytest.approx(400.0)


def preds_for(loaded, original, preds):
    by_q = {s.question: p for s, p in zip(original, preds)}
    return [by_q[s.question] for s in loaded]


def test_pope_tsv_with_multi_split_category_and_parquet(tmp_path):
    bench = get_benchmark("pope")
    rows = [{"index": 0, "image": b64(0), "question": "Is there a dog in the image?", "answer": "yes",
             "category": "adversarial,popular"},
            {"index": 1, "image": "0", "question": "Is there a cat in the image?", "answer": "no", "category": "random"}]
    write_tsv(tmp_path / "a" / "pope" / "POPE.tsv", rows)
    samples = bench.load(tmp_path / "a")
    assert samples[0].meta["splits"] == ["adversarial", "popular"]
    result = bench.score(samples, ["Yes", "No"], ScoreContext())
    assert set(result.metrics["splits"]) == {"adversarial", "popular", "random"}
    pq_rows = [{"question_id": str(i), "question": r["question"], "answer": r["answer"], "category": c,
                "image": _img(i)} for i, (r, c) in enumerate(zip(rows, ("popular", "random")))]
    write_parquet(tmp_path / "b" / "pope" / "data" / "test-00000-of-00001.parquet", pq_rows)
    assert [s.id for s in bench.load(tmp_path / "b")] == ["popular/0", "random/1"]


def test_huggingface_parquet_layouts(tmp_path):
    root = tmp_path
    write_parquet(root / "textvqa" / "data" / "validation-00000-of-00001.parquet",
                  [{"question_id": 1, "question": "what brand?", "answers": ["nokia"] * 10, "image": _img(0)}])
    write_parquet(root / "chartqa" / "data" / "test-00000-of-00001.parquet",
                  [{"query": "peak?", "label": ["100"], "human_or_machine": 0, "image": _img(0)},
                   {"query": "share?", "label": ["0.5"], "human_or_machine": 1, "image": _img(1)}])
    write_parquet(root / "docvqa" / "DocVQA" / "validation-00000-of-00001.parquet",
                  [{"questionId": 7, "question": "date?", "answers": ["1/8/93"], "image": _img(0)}])
    write_parquet(root / "vizwiz" / "data" / "val-00000-of-00001.parquet",
                  [{"question_id": "VizWiz_val_0.jpg", "question": "what?", "answers": ["soup"] * 10, "image": _img(0)}])
    write_parquet(root / "ai2d" / "data" / "test-00000-of-00001.parquet",
                  [{"question": "Which eats grass?", "options": ["rabbit", "hawk"], "answer": "0", "image": _img(0)}])
    write_parquet(root / "scienceqa" / "data" / "test-00000-of-00001.parquet",
                  [{"question": "Which is a mammal?", "choices": ["shark", "whale"], "answer": 1, "hint": "",
                    "subject": "biology", "image": _img(0)},
                   {"question": "No image here", "choices": ["a", "b"], "answer": 0, "hint": "", "subject": "x",
                    "image": None}])
    mmb = [{"index": 1, "question": "Which animal?", "hint": None, "A": "cat", "B": "dog", "C": None, "D": None,
            "answer": "B", "category": "c", "l2-category": "l", "split": "dev", "image": _img(0)}]
    write_parquet(root / "mmbench" / "en" / "dev-00000-of-00001.parquet", mmb)
    expect = {"textvqa-val": ("what brand?", ["nokia"] * 10), "docvqa-val": ("date?", ["1/8/93"]),
              "vizwiz-val": ("what?", ["soup"] * 10), "ai2d-test": ("Which eats grass?", "A"),
              "scienceqa-img": ("Which is a mammal?", "B"), "mmbench-dev-en": ("Which animal?", "B")}
    for name, (question, answer) in expect.items():
        samples = get_benchmark(name).load(root)
        assert len(samples) == 1 and samples[0].question == question and samples[0].answer == answer, name
        assert samples[0].image.load().size == (16, 16)
    assert get_benchmark("mmbench-dev-en").load(root)[0].choices == {"A": "cat", "B": "dog"}
    chart = get_benchmark("chartqa-test").load(root)
    assert [s.meta["category"] for s in chart] == ["human", "augmented"]


def test_internvl_jsonl_layouts(tmp_path):
    write_jsonl(tmp_path / "gqa" / "llava_gqa_testdev_balanced_qwen_format.jsonl",
                [{"question_id": "q1", "image": "images/a.jpg", "question": "Is it red?", "answer": "yes"}])
    write_jsonl(tmp_path / "ai2d" / "test.jsonl",
                [{"image": "ai2d/a.png", "question": "Which?\nA. x\nB. y\nAnswer with the option's letter from the "
                  "given choices directly.", "answer": "B"}])
    write_jsonl(tmp_path / "textvqa" / "textvqa_val_llava.jsonl",
                [{"question_id": 5, "image": "img/a.jpg", "question": "brand?\nReference OCR token: nokia",
                  "answer": ["nokia"] * 10}])
    for p in ("gqa/images/a.jpg", "ai2d/ai2d/a.png", "textvqa/img/a.jpg"):
        save_image(tmp_path / p, 0)
    ai2d = get_benchmark("ai2d-test")
    s = ai2d.load(tmp_path)[0]
    assert ai2d.prompt(s) == s.question  # the question already carries the options and instruction
    assert ai2d.score([s], ["b"], ScoreContext()).headline == 100.0  # strip + lower exact match
    assert get_benchmark("gqa-testdev").load(tmp_path)[0].answer == "yes"
    assert get_benchmark("textvqa-val").load(tmp_path)[0].question.endswith("nokia")
