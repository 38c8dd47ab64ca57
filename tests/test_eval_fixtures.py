"""Tiny benchmark fixtures in each benchmark's downloadable format, plus checks of the loaders and prompts.

`write_fixture(name, root)` writes a few records (and tiny images) for one
benchmark under `root` in the layout docs/eval.md describes; the other eval
tests import it. The tests here check that every loader reads its format and
that prompts are InternVL's V1.2 prompts.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from internvl_chat.eval.benchmarks import BenchmarkDataError, benchmark_names, get_benchmark

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (240, 220, 30), (20, 20, 20), (250, 250, 250)]


def png_bytes(i: int, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), COLOURS[i % len(COLOURS)]).save(buf, format="PNG")
    return buf.getvalue()


def b64(i: int) -> str:
    return base64.b64encode(png_bytes(i)).decode()


def save_image(path: Path, i: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), COLOURS[i % len(COLOURS)]).save(path)


def write_tsv(path: Path, rows: list[dict]) -> None:
    """As VLMEvalKit writes its TSVs: pandas to_csv (missing cells empty, list cells as their repr)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def _mmbench(root: Path, lang: str, split: str) -> None:
    opts = ["cat", "dog", "bird", "fish"]
    rows = []
    for q in range(2):  # two questions, 4 circular passes each (options rotated, answer follows)
        for k in range(4):
            rot = opts[k:] + opts[:k]
            gold = rot.index(opts[q])
            row = {"index": q + 1 + k * 1_000_000, "question": f"Which animal is in picture {q}?" if lang == "en" else f"图{q}里是什么动物？",
                   "hint": "A pet." if q == 0 else None, "A": rot[0], "B": rot[1], "C": rot[2], "D": rot[3],
                   "answer": "ABCD"[gold], "category": "attribute_recognition" if q == 0 else "object_localization",
                   "l2-category": "FP-S", "split": split, "source": "fixture", "comment": None,
                   "image": b64(q) if k == 0 else str(q + 1)}
            if split == "test":
                row.pop("answer")
            rows.append(row)
    names = {("en", "dev"): "MMBench_DEV_EN.tsv", ("cn", "dev"): "MMBench_DEV_CN.tsv",
             ("en", "test"): "MMBench_TEST_EN.tsv", ("cn", "test"): "MMBench_TEST_CN.tsv"}
    write_tsv(root / "mmbench" / names[(lang, split)], rows)


def _mmmu(root: Path, split: str) -> None:
    hf = "validation" if split == "val" else "test"
    rows = [
        {"id": f"{hf}_Accounting_1", "question": "<image 1> What is the total?", "options": "['10', '20', '30']",
         "image_1": {"bytes": png_bytes(0), "path": None}, "answer": "B" if split == "val" else "?",
         "question_type": "multiple-choice"},
        {"id": f"{hf}_Accounting_2", "question": "How many units? <image 1>", "options": "[]",
         "image_1": {"bytes": png_bytes(1), "path": None}, "answer": "4" if split == "val" else "?",
         "question_type": "open"},
        {"id": f"{hf}_Art_Theory_1", "question": "Which style is shown in <image 1>?",
         "options": "['Baroque', 'Cubism']", "image_1": {"bytes": png_bytes(2), "path": None},
         "answer": "A" if split == "val" else "?", "question_type": "multiple-choice"},
    ]
    write_parquet(root / "mmmu" / "Accounting" / f"{hf}-00000-of-00001.parquet", rows[:2])
    write_parquet(root / "mmmu" / "Art_Theory" / f"{hf}-00000-of-00001.parquet", rows[2:])


def _mathvista(root: Path) -> None:
    rows = [
        {"pid": "1", "question": "Which fraction is largest?", "query": "Hint: Please answer the question and provide "
         "the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: Which fraction is largest?\nChoices:\n"
         "(A) 3/11\n(B) 8/11\n(C) 6/11", "choices": ["3/11", "8/11", "6/11"], "answer": "8/11",
         "question_type": "multi_choice", "answer_type": "text", "precision": None,
         "decoded_image": {"bytes": png_bytes(0), "path": None}, "metadata": {"task": "math word problem"}},
        {"pid": "2", "question": "How many bars?", "query": "Hint: Please answer the question requiring an integer "
         "answer.\nQuestion: How many bars?", "choices": None, "answer": "14", "question_type": "free_form",
         "answer_type": "integer", "precision": None, "decoded_image": {"bytes": png_bytes(1), "path": None},
         "metadata": {"task": "figure question answering"}},
        {"pid": "3", "question": "What is the ratio?", "query": "Hint: Please answer the question requiring a "
         "floating-point number with one decimal place.\nQuestion: What is the ratio?", "choices": None,
         "answer": "1.2", "question_type": "free_form", "answer_type": "float", "precision": 1.0,
         "decoded_image": {"bytes": png_bytes(2), "path": None}, "metadata": {"task": "figure question answering"}},
    ]
    write_parquet(root / "mathvista" / "data" / "testmini-00000-of-00001.parquet", rows)


def _mmvp(root: Path) -> None:
    rows = [("1", "Is the dog facing left or right?", "(a) Left (b) Right", "(a)"),
            ("2", "Is the dog facing left or right? ", "(a) Left (b) Right", "(b)"),
            ("3", "Are the eyes open?", "(a) Yes (b) No", "(a)"),
            ("4", "Are the eyes open? ", "(a) Yes (b) No", "(b)")]
    d = root / "mmvp"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "Questions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["lndex", "Question", "Options", "Correct Answer"])  # sic: the released header
        w.writerows(rows)
    for i, *_ in rows:
        save_image(d / "MMVP Images" / f"{i}.jpg", int(i))


def _mme(root: Path) -> None:
    rows = []
    for n, (task, img) in enumerate([("existence", "a.jpg"), ("count", "b.jpg"), ("code_reasoning", "c.png")]):
        for k, gt in enumerate(("Yes", "No")):
            rows.append({"index": len(rows), "image": b64(n) if k == 0 else str(len(rows) - 1),
                         "question": f"Is there a {task} thing number {k} in the image? Please answer yes or no.",
                         "answer": gt, "category": task, "image_path": f"{task}/{img}"})
    write_tsv(root / "mme" / "MME.tsv", rows)


def _scienceqa(root: Path) -> None:
    d = root / "scienceqa"
    rows = [{"question_id": "sqa1", "image": "data/scienceqa/images/test/1/image.png", "hint": "", "question": "Which is a mammal?",
             "choices": ["shark", "whale"], "answer": 1},
            {"question_id": "sqa2", "image": "data/scienceqa/images/test/2/image.png", "hint": "Look at the map.",
             "question": "Which continent is highlighted?", "choices": ["Asia", "Africa", "Europe"], "answer": 0}]
    write_jsonl(d / "scienceqa_test_img.jsonl", rows)
    for i, r in enumerate(rows):
        save_image(root / r["image"][len("data/"):], i)  # paths are relative to InternVL's internvl_chat/


def _pope(root: Path) -> None:
    d = root / "pope"
    for s, split in enumerate(("adversarial", "popular", "random")):
        rows = [{"question_id": q + 1, "image": f"COCO_val2014_{q:012d}.jpg",
                 "text": f"Is there a {['dog', 'cat'][q % 2]} in the image?", "label": ["yes", "no"][q % 2]}
                for q in range(2 + s)]
        write_jsonl(d / f"coco_pope_{split}.json", rows)
    for q in range(4):
        save_image(d / "val2014" / f"COCO_val2014_{q:012d}.jpg", q)


def _textvqa(root: Path) -> None:
    d = root / "textvqa"
    data = [{"question_id": 34602, "question": "what is the brand?", "image_id": "img0",
             "answers": ["nokia"] * 7 + ["nokia phone"] * 3},
            {"question_id": 34603, "question": "what number is on the shirt?", "image_id": "img1",
             "answers": ["23"] * 4 + ["twenty three"] * 2 + ["32"] * 4}]
    write_json(d / "TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "data": data})
    for i, r in enumerate(data):
        save_image(d / "train_images" / f"{r['image_id']}.jpg", i)


def _seed(root: Path) -> None:
    d = root / "seed"
    questions = [
        {"question_id": "101", "question": "How many people are there?", "choice_a": "1", "choice_b": "2",
         "choice_c": "3", "choice_d": "4", "answer": "B", "data_id": "1.jpg", "data_type": "image", "question_type_id": 5},
        {"question_id": "102", "question": "What is the scene?", "choice_a": "beach", "choice_b": "forest",
         "choice_c": "city", "choice_d": "desert", "answer": "C", "data_id": "2.jpg", "data_type": "image", "question_type_id": 1},
        {"question_id": "v1", "question": "What happens next?", "choice_a": "x", "choice_b": "y", "choice_c": "z",
         "choice_d": "w", "answer": "A", "data_id": "v.mp4", "data_type": "video", "question_type_id": 10},
    ]
    write_json(d / "SEED-Bench.json", {"question_type": {"Scene Understanding": 1, "Instances Counting": 5,
                                                         "Action Prediction": 10}, "questions": questions})
    save_image(d / "SEED-Bench-image" / "1.jpg", 0)
    save_image(d / "SEED-Bench-image" / "2.jpg", 1)


def _vizwiz(root: Path, split: str) -> None:
    d = root / "vizwiz"
    rows = [{"image": f"VizWiz_{split}_00000000.jpg", "question": "What is this?",
             "answers": [{"answer": "soup", "answer_confidence": "yes"}] * 6 + [{"answer": "can"}] * 4,
             "answerable": 1, "answer_type": "other"},
            {"image": f"VizWiz_{split}_00000001.jpg", "question": "What colour is the shirt?",
             "answers": [{"answer": "unanswerable"}] * 10, "answerable": 0, "answer_type": "unanswerable"}]
    if split == "test":
        rows = [{"image": r["image"], "question": r["question"]} for r in rows]
    write_json(d / "annotations" / f"{split}.json", rows)  # vizwiz.org Annotations.zip
    for i, r in enumerate(rows):
        save_image(d / split / r["image"], i)


def _gqa(root: Path) -> None:
    d = root / "gqa"
    qs = {"20968379": {"imageId": "n1", "question": "Is the sky blue?", "answer": "yes", "isBalanced": True},
          "20968380": {"imageId": "n2", "question": "What is on the table?", "answer": "cup", "isBalanced": True},
          "20968381": {"imageId": "n2", "question": "Unbalanced question?", "answer": "no", "isBalanced": False}}
    write_json(d / "testdev_balanced_questions.json", qs)
    save_image(d / "images" / "n1.jpg", 0)
    save_image(d / "images" / "n2.jpg", 1)


def _chartqa(root: Path) -> None:
    d = root / "chartqa" / "ChartQA Dataset" / "test"  # as ChartQA Dataset.zip unpacks
    write_json(d / "test_human.json", [{"imgname": "h1.png", "query": "What is the peak value?", "label": "100"},
                                       {"imgname": "h2.png", "query": "Which year is lowest?", "label": "2015"}])
    write_json(d / "test_augmented.json", [{"imgname": "a1.png", "query": "What share is red?", "label": "0.5"}])
    for i, n in enumerate(("h1.png", "h2.png", "a1.png")):
        save_image(d / "png" / n, i)


def _docvqa(root: Path, split: str) -> None:
    d = root / "docvqa" / split
    data = [{"questionId": 49153, "question": "What is the date?", "image": "documents/pybv0228_81.png",
             "answers": ["1/8/93", "January 8, 1993"]},
            {"questionId": 24580, "question": "Who is the sender?", "image": "documents/nkbl0226_1.png",
             "answers": ["Lorillard"]}]
    if split == "test":
        data = [{k: v for k, v in r.items() if k != "answers"} for r in data]
    write_json(d / f"{split}_v1.0.json", {"dataset_name": "docvqa", "dataset_split": split, "data": data})
    for i, r in enumerate(data):
        save_image(d / r["image"], i)


def _ai2d(root: Path) -> None:
    rows = [{"index": 0, "question": "Which label shows the sun?", "A": "A", "B": "B", "C": "C", "D": "D",
             "answer": "C", "image": b64(0)},
            {"index": 1, "question": "What eats grass?", "A": "rabbit", "B": "hawk", "C": "snake", "D": None,
             "answer": "A", "image": b64(1)}]
    write_tsv(root / "ai2d" / "AI2D_TEST.tsv", rows)


def _synthetic(root: Path) -> None:
    d = root / "synthetic"
    rows = [
        {"id": "s0", "image": "images/s0.png", "question": "What colour is the square?", "answer": "red",
         "task": "colour", "chance": 0.2},
        {"id": "s1", "image": "images/s1.png", "question": "What colour is the square? ", "answer": "green",
         "task": "colour", "chance": 0.2},
        {"id": "s2", "image": "images/s2.png", "question": "Which shape is shown?\nA. circle\nB. square\n"
         "Answer with the option's letter from the given choices directly.", "answer": "B",
         "choices": {"A": "circle", "B": "square"}, "task": "shape", "chance": 0.5},
        {"id": "s3", "image": "images/s3.png", "question": "How many squares are there?", "answer": "2",
         "task": "count", "chance": 0.25},
    ]
    write_jsonl(d / "test.jsonl", rows)
    for i, r in enumerate(rows):
        save_image(d / r["image"], i)


WRITERS = {
    "mmmu-val": lambda r: _mmmu(r, "val"), "mmmu-test": lambda r: _mmmu(r, "test"),
    "mathvista-testmini": _mathvista,
    "mmbench-dev-en": lambda r: _mmbench(r, "en", "dev"), "mmbench-dev-cn": lambda r: _mmbench(r, "cn", "dev"),
    "mmbench-test-en": lambda r: _mmbench(r, "en", "test"), "mmbench-test-cn": lambda r: _mmbench(r, "cn", "test"),
    "mmvp": _mmvp, "mme": _mme, "scienceqa-img": _scienceqa, "pope": _pope, "textvqa-val": _textvqa,
    "seed-image": _seed, "vizwiz-val": lambda r: _vizwiz(r, "val"), "vizwiz-test": lambda r: _vizwiz(r, "test"),
    "gqa-testdev": _gqa, "chartqa-test": _chartqa, "docvqa-val": lambda r: _docvqa(r, "val"),
    "docvqa-test": lambda r: _docvqa(r, "test"), "ai2d-test": _ai2d, "synthetic": _synthetic,
}


def write_fixture(name: str, root: Path) -> Path:
    WRITERS[name](Path(root))
    return Path(root)


def write_all(root: Path) -> Path:
    for name in WRITERS:
        write_fixture(name, root)
    return Path(root)


# ------------------------------------------------------------------ tests


def test_every_benchmark_has_a_fixture():
    assert sorted(WRITERS) == sorted(benchmark_names())


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_loader_reads_fixture_and_images_decode(tmp_path, name):
    bench = get_benchmark(name)
    samples = bench.load(write_fixture(name, tmp_path))
    assert samples, name
    assert len({s.id for s in samples}) == len(samples)
    for s in samples:
        img = s.image.load()
        assert img.mode == "RGB" and img.width > 0
        assert isinstance(bench.prompt(s), str) and bench.prompt(s).strip()
        assert (s.answer is None) == (not bench.has_answers)


def test_missing_files_name_the_paths_tried(tmp_path):
    with pytest.raises(BenchmarkDataError, match="mme"):
        get_benchmark("mme").load(tmp_path)


def test_bad_jsonl_line_is_reported_with_file_and_line(tmp_path):
    _scienceqa(tmp_path)
    path = tmp_path / "scienceqa" / "scienceqa_test_img.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(BenchmarkDataError, match=r"scienceqa_test_img.jsonl:3"):
        get_benchmark("scienceqa-img").load(tmp_path)


def test_missing_field_names_row(tmp_path):
    _synthetic(tmp_path)
    p = tmp_path / "synthetic" / "test.jsonl"
    p.write_text(p.read_text() + json.dumps({"id": "x", "image": "images/s0.png", "question": "q", "task": "t"}) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"line 5.*'answer'"):
        get_benchmark("synthetic").load(tmp_path)


def test_missing_image_file_is_a_clear_error(tmp_path):
    from internvl_chat.image import ImageLoadError

    _gqa(tmp_path)
    (tmp_path / "gqa" / "images" / "n1.jpg").unlink()
    samples = get_benchmark("gqa-testdev").load(tmp_path)
    with pytest.raises(ImageLoadError, match="n1.jpg"):
        samples[0].image.load()


def test_mmbench_prompt_hint_options_suffix_and_image_reference(tmp_path):
    bench = get_benchmark("mmbench-dev-en")
    samples = bench.load(write_fixture("mmbench-dev-en", tmp_path))
    assert len(samples) == 8
    first = samples[0]
    assert bench.prompt(first) == ("A pet.\nWhich animal is in picture 0?\nA. cat\nB. dog\nC. bird\nD. fish\n"
                                   "Answer with the option's letter from the given choices directly.")
    # the pass-1 row stores only the index of the row holding its image
    assert samples[2].image.load().getpixel((0, 0)) == first.image.load().getpixel((0, 0))
    cn = get_benchmark("mmbench-dev-cn")
    s = cn.load(write_fixture("mmbench-dev-cn", tmp_path))[1]
    assert cn.prompt(s).endswith("\n请直接回答选项字母。") and "nan" not in cn.prompt(s)


def test_mmmu_prompt_removes_image_tag_and_uses_type_suffix(tmp_path):
    bench = get_benchmark("mmmu-val")
    samples = {s.id: s for s in bench.load(write_fixture("mmmu-val", tmp_path))}
    assert bench.prompt(samples["validation_Accounting_1"]) == (
        " What is the total?\nA. 10\nB. 20\nC. 30\nAnswer with the option's letter from the given choices directly.")
    assert bench.prompt(samples["validation_Accounting_2"]) == (
        "How many units? \nAnswer the question using a single word or phrase.")
    assert samples["validation_Art_Theory_1"].meta["subject"] == "Art_Theory"


def test_vqa_style_prompts_and_generation_settings(tmp_path):
    write_all(tmp_path)
    tv = get_benchmark("textvqa-val")
    assert tv.prompt(tv.load(tmp_path)[0]) == "what is the brand? Answer the question using a single word or phrase."
    vz = get_benchmark("vizwiz-val")
    assert vz.prompt(vz.load(tmp_path)[0]) == ("What is this? When the provided information is insufficient, respond "
                                               "with 'Unanswerable'. Answer the question using a single word or phrase.")
    mme = get_benchmark("mme")
    assert mme.prompt(mme.load(tmp_path)[0]).endswith("Please answer yes or no. Answer the question using a single word or phrase.")
    pope = get_benchmark("pope")
    assert pope.prompt(pope.load(tmp_path)[0]) == ("Is there a dog in the image?\n"
                                                   "Answer the question using a single word or phrase. ")
    mv = get_benchmark("mathvista-testmini")
    assert mv.prompt(mv.load(tmp_path)[0]).startswith("Hint: Please answer the question and provide the correct option")
    expected = {"mmmu-val": 100, "mathvista-testmini": 1000, "mmbench-dev-en": 100, "mmvp": 100, "mme": 20,
                "scienceqa-img": 100, "pope": 100, "textvqa-val": 10, "seed-image": 100, "vizwiz-val": 10,
                "gqa-testdev": 10, "chartqa-test": 100, "docvqa-val": 100, "ai2d-test": 10}
    for name, n in expected.items():
        cfg = get_benchmark(name).generation_config()
        assert cfg["max_new_tokens"] == n and cfg["do_sample"] is False and cfg["num_beams"] == 1, name


def test_scienceqa_seed_gqa_loader_details(tmp_path):
    write_all(tmp_path)
    sqa = get_benchmark("scienceqa-img")
    s0, s1 = sqa.load(tmp_path)
    assert s0.hint is None and s0.answer == "B"
    assert sqa.prompt(s1) == ("Look at the map.\nWhich continent is highlighted?\nA. Asia\nB. Africa\nC. Europe\n"
                              "Answer with the option's letter from the given choices directly.")
    seed = get_benchmark("seed-image").load(tmp_path)
    assert [s.id for s in seed] == ["101", "102"]  # the video question is dropped
    assert seed[0].meta["category"] == "Instances Counting"
    assert [s.id for s in get_benchmark("gqa-testdev").load(tmp_path)] == ["20968379", "20968380"]
    pope = get_benchmark("pope").load(tmp_path)
    assert [s.meta["splits"][0] for s in pope].count("random") == 4
