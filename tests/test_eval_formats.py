"""More downloadable layouts (tests/test_eval_layouts.py covers every layout on upstream-format files) of each benchmark (VLMEvalKit TSV, Hugging Face parquet, InternVL jsonl)
load into the same samples as the layout the main fixtures use."""

from __future__ import annotations

import pytest
from test_eval_fixtures import b64, png_bytes, save_image, write_fixture, write_parquet, write_tsv

from internvl_chat.eval.benchmarks import ScoreContext, get_benchmark


def _view(samples):
    return [(s.question, s.answer, dict(s.choices), s.hint) for s in samples]


def _img(i):
    return {"bytes": png_bytes(i), "path": None}


def _mcq_tsv_rows(samples, with_answer=True, extra=None):
    rows = []
    for i, s in enumerate(samples):
        row = {"index": i, "image": b64(i), "question": s.question, "hint": s.hint if s.hint else None}
        for letter in "ABCDE":
            row[letter] = s.choices.get(letter)
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
             "split": f"test_{s.meta.get('category', '')}"} for i, s in enumerate(original)]
    write_tsv(tmp_path / "b" / bench.data_dir / tsv, rows)
    assert _view(bench.load(tmp_path / "b")) == _view(original)


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
