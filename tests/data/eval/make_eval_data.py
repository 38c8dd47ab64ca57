"""Write the miniature benchmark files under tests/data/eval/ in every layout users download.

    PYTHONPATH=src python tests/data/eval/make_eval_data.py     # rewrites tests/data/eval/<layout>/

Each `<layout>/` folder is a --data-root holding one benchmark in one upstream layout,
written with the libraries upstream writes them with: pandas `to_csv(sep='\\t',
index=False)` for VLMEvalKit/InternVL TSVs (list cells become their Python repr, as
pandas writes them), pyarrow for Hugging Face parquet snapshots, json/csv for the official
releases and InternVL's V1.2 eval jsonl files (image paths relative to internvl_chat/,
i.e. `data/<bench>/...`). Field names and file names follow the upstream readers
(VLMEvalKit vlmeval/dataset/*, InternVL internvl_chat/eval/* at v1.2.3, the dataset cards).
The same questions are written into every layout of a benchmark, in the same order, so the
tests can check that every layout gives the same prompts. `layouts.json` lists, per layout,
the benchmarks it serves, how many samples each must score and which rows are skipped.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

HERE = Path(__file__).resolve().parent
SUFFIX_SHORT = "Answer the question using a single word or phrase."
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (240, 220, 30), (20, 20, 20), (250, 250, 250)]
MANIFEST: dict[str, dict] = {}


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), COLOURS[i % len(COLOURS)]).save(buf, format="JPEG", quality=50)
    return buf.getvalue()


def b64(i: int) -> str:
    return base64.b64encode(jpeg(i)).decode()


def hf_img(i: int, name: str = "img.jpg") -> dict:
    return {"bytes": jpeg(i), "path": name}


def image_file(path: Path, i: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg(i))


def tsv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)  # what VLMEvalKit's dump() does


def parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def jsonf(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")


def layout(name: str, expect: dict[str, int], skipped: dict[str, dict[str, int]] | None = None,
           group: str | None = None) -> Path:
    """Register a layout folder; `group`: layouts whose prompts must all be equal (default: the benchmark)."""
    MANIFEST[name] = {"benchmarks": expect, "skipped": skipped or {}, "group": group}
    return HERE / name


# ------------------------------------------------------------------ MMBench
MMB_ROWS = [  # index, question, hint, A, B, C, D, answer, category
    dict(index=0, question="How many apples are there?", hint=None, A=2, B=3, C=4, D=5, answer="B", category="count"),
    dict(index=1, question="Which colour is the square?", hint="null", A=1, B=2, C=None, D=None, answer="A",
         category="colour"),
    dict(index=2, question="What is shown?", hint=" ", A=7, B=8, C=9, D=None, answer="C", category="count"),
    dict(index=1000000, question="How many apples are there?", hint=None, A=3, B=4, C=5, D=2, answer="A",
         category="count"),
]


def mmbench() -> None:
    def rows(split, refs=True):
        # VLMEvalKit stores a circular pass's image as the index of its first pass; the MMBench release
        # files InternVL V1.2 reads hold the base64 image in every row (evaluate_mmbench.py decodes each)
        out = []
        for i, r in enumerate(MMB_ROWS):
            r = dict(r, image=b64(i) if r["index"] < 1000000 or not refs else (b64(0) if not refs else "0"), source="mini", **{"l2-category": "x"},
                     comment=None, split=split)
            if split == "test":
                r.pop("answer")
            out.append(r)
        return out

    def cn(rows_):  # MMBench-CN: the same questions in Chinese
        return [dict(r, question={"How many apples are there?": "有几个苹果？", "Which colour is the square?": "方块是什么颜色？",
                                  "What is shown?": "图中是什么？"}[r["question"]]) for r in rows_]

    expect = {"mmbench-dev-en": 4, "mmbench-test-en": 4, "mmbench-dev-cn": 4}
    root = layout("mmbench-vlmevalkit", expect, group="mmbench")
    tsv(root / "mmbench/MMBench_DEV_EN.tsv", rows("dev"))
    tsv(root / "mmbench/MMBench_TEST_EN.tsv", rows("test"))
    tsv(root / "mmbench/MMBench_DEV_CN.tsv", cn(rows("dev")))
    root = layout("mmbench-internvl", expect, group="mmbench")
    tsv(root / "mmbench/mmbench_dev_20230712.tsv", rows("dev", refs=False))
    tsv(root / "mmbench/mmbench_test_en_20231003.tsv", rows("test", refs=False))
    tsv(root / "mmbench/mmbench_dev_cn_20231003.tsv", cn(rows("dev", refs=False)))
    # lmms-lab/MMBench: the same table through pandas -> arrow (the HF loader's path); images as structs
    root = layout("mmbench-hf", expect, group="mmbench")
    for lang, split in (("en", "dev"), ("en", "test"), ("cn", "dev")):
        df = pd.read_csv(HERE / f"mmbench-vlmevalkit/mmbench/MMBench_{split.upper()}_{lang.upper()}.tsv", sep="\t")
        df["image"] = [hf_img(i % 3) for i in range(len(df))]
        path = root / f"mmbench/{lang}/{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


# ------------------------------------------------------------------ MMMU
MMMU_VAL = [
    dict(id="validation_Art_1", question="Which animal is in <image 1>?", options=["cat", "dog ", "bird"], answer="B",
         question_type="multiple-choice"),
    dict(id="validation_Art_2", question="<image 1> How many legs?", options=[], answer="12", question_type="open"),
]
MMMU_TEST = [dict(id="test_Art_1", question="Which colour is <image 1>?", options=["red", "blue"], answer="?",
                  question_type="multiple-choice")]


def mmmu() -> None:
    root = layout("mmmu-hf", {"mmmu-val": 2, "mmmu-test": 1}, group="mmmu")
    for split, rows in (("validation", MMMU_VAL), ("test", MMMU_TEST), ("dev", MMMU_VAL[:1])):
        recs = []
        for i, r in enumerate(rows):
            rec = dict(id=r["id"].replace("validation", split), question=r["question"], options=str(r["options"]),
                       explanation="", image_1=hf_img(i), image_2=None, img_type="['Photo']", answer=r["answer"],
                       topic_difficulty="Easy", question_type=r["question_type"], subfield="Art")
            recs.append(rec)
        parquet(root / f"mmmu/Art/{split}-00000-of-00001.parquet", recs)

    root = layout("mmmu-vlmevalkit", {"mmmu-val": 2, "mmmu-test": 1},
                  skipped={"mmmu-val": {"dev (few-shot) rows of MMMU_DEV_VAL": 1}}, group="mmmu")

    def vek_row(index, r, split, image):
        row = dict(index=index, question=r["question"])
        for letter, opt in zip("ABCDEFGHI", r["options"]):
            row[letter] = opt
        row.update(answer=r["answer"] if split != "test" else None, split=split, id=r["id"], category="Art",
                   image=image)
        return row

    dev = dict(MMMU_VAL[0], id="dev_Art_1")
    rows = [vek_row(0, dev, "dev", b64(0)),
            vek_row(1, MMMU_VAL[0], "validation", str([b64(0), b64(1)])),  # a multi-image cell: list repr
            vek_row(2, MMMU_VAL[1], "validation", b64(1))]
    df = pd.DataFrame(rows)
    for c in "ABCDEFGHI":
        if c not in df:
            df[c] = None
    (root / "mmmu").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "mmmu/MMMU_DEV_VAL.tsv", sep="\t", index=False)
    tsv(root / "mmmu/MMMU_TEST.tsv", [vek_row(0, MMMU_TEST[0], "test", b64(0))])


# ------------------------------------------------------------------ MathVista
MV = [
    dict(pid="1", question="Which colour is the ball?", choices=["red", "green", "blue"], answer="green", question_type="multi_choice",
         answer_type="text", precision=None, unit=None),
    dict(pid="2", question="How many sides?", choices=None, answer="12", question_type="free_form",
         answer_type="integer", precision=None, unit=None),
    dict(pid="3", question="What is the ratio?", choices=None, answer="1.5", question_type="free_form",
         answer_type="float", precision=1.0, unit=None),
    dict(pid="4", question="What is the value?", choices=None, answer="0.25", question_type="free_form",
         answer_type="float", precision=2.0, unit=None),
]


def mv_query(r: dict) -> str:
    if r["question_type"] == "multi_choice":
        hint = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
        opts = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(r["choices"]))
        return f"{hint}\nQuestion: {r['question']}\nChoices:\n{opts}"
    if r["answer_type"] == "integer":
        return ("Hint: Please answer the question requiring an integer answer and provide the final value, "
                f"e.g., 1, 2, 3, at the end.\nQuestion: {r['question']}")
    p = int(r["precision"])
    return (f"Hint: Please answer the question requiring a floating-point number with {['', 'one', 'two'][p]} "
            f"decimal place{'s' if p > 1 else ''} and provide the final value, e.g., {'1.2' if p == 1 else '1.23'}, "
            f"at the end.\nQuestion: {r['question']}")


def mathvista() -> None:
    meta = {"category": "math-targeted-vqa", "context": "synthetic scene", "grade": "elementary school",
            "img_height": 6, "img_width": 8, "language": "english", "skills": ["arithmetic reasoning"],
            "source": "mini", "split": "testmini", "task": "figure question answering"}
    root = layout("mathvista-hf", {"mathvista-testmini": 4}, group="mathvista")
    recs = [dict(pid=r["pid"], question=r["question"], image=f"images/{r['pid']}.jpg",
                 decoded_image=hf_img(i, f"{r['pid']}.jpg"), choices=r["choices"], unit=r["unit"],
                 precision=r["precision"], answer=r["answer"], question_type=r["question_type"],
                 answer_type=r["answer_type"], metadata=meta, query=mv_query(r)) for i, r in enumerate(MV)]
    parquet(root / "mathvista/data/testmini-00000-of-00001-725687bf7a18d64b.parquet", recs)
    # lupantech/MathVista: data/testmini.json has no query; the prompts are in data/query.json
    root = layout("mathvista-official", {"mathvista-testmini": 4}, group="mathvista")
    jsonf(root / "mathvista/data/testmini.json",
          {r["pid"]: dict(question=r["question"], image=f"images/{r['pid']}.jpg", choices=r["choices"], unit=r["unit"],
                          precision=r["precision"], answer=r["answer"], question_type=r["question_type"],
                          answer_type=r["answer_type"], pid=r["pid"], metadata=meta) for r in MV})
    jsonf(root / "mathvista/data/query.json", {r["pid"]: mv_query(r) for r in MV})
    for i, r in enumerate(MV):
        image_file(root / f"mathvista/data/images/{r['pid']}.jpg", i)
    # VLMEvalKit MathVista_MINI.tsv: the query is the question; no precision column
    root = layout("mathvista-vlmevalkit", {"mathvista-testmini": 4}, group="mathvista")
    rows = []
    for i, r in enumerate(MV):
        opt = None if r["choices"] is None else "ABCDE"[r["choices"].index(r["answer"])]
        rows.append(dict(index=i + 1, image=b64(i), question=mv_query(r), answer=r["answer"], answer_option=opt,
                         choices=None if r["choices"] is None else str(r["choices"]), question_type=r["question_type"],
                         answer_type=r["answer_type"], task=meta["task"], skills=str(meta["skills"])))
    tsv(root / "mathvista/MathVista_MINI.tsv", rows)


# ------------------------------------------------------------------ MMVP
MMVP = [("Are the butterfly's wings closer to being open or closed?", "(a) Open (b) Closed", "(a)"),
        ("Are the butterfly's wings closer to being open or closed?", "(a) Open (b) Closed", "(b)"),
        ("Is the dog facing left or right?", "(a) Left (b) Right", "(a)"),
        ("Is the dog facing left or right?", "(a) Left (b) Right", "(b)")]


def mmvp() -> None:
    root = layout("mmvp-official", {"mmvp": 4}, group="mmvp")  # tsb0601/MMVP on HF, read by InternVL as is
    df = pd.DataFrame([{"lndex": i + 1, "Question": q, "Options": o, "Correct Answer": a}
                       for i, (q, o, a) in enumerate(MMVP)])
    (root / "mmvp").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "mmvp/Questions.csv", index=False)
    for i in range(len(MMVP)):
        image_file(root / f"mmvp/MMVP Images/{i + 1}.jpg", i)
    root = layout("mmvp-vlmevalkit", {"mmvp": 4}, group="mmvp")
    rows = []
    for i, (q, o, a) in enumerate(MMVP):
        x, y = o.split("(b)")
        rows.append(dict(index=i + 1, question=q, A=x.replace("(a)", "").strip(), B=y.strip(),
                         answer="A" if a == "(a)" else "B", image=b64(i), category="mini"))
    tsv(root / "mmvp/MMVP.tsv", rows)


# ------------------------------------------------------------------ MME
MME = [("existence", "1.jpg", "Is there a dog in this image? Please answer yes or no.", "Yes"),
       ("existence", "1.jpg", "Is there a cat in this image? Please answer yes or no.", "No"),
       ("code_reasoning", "0020.png", "Is the output 3? Please answer yes or no.", "Yes"),
       ("code_reasoning", "0020.png", "Is the output 4? Please answer yes or no.", "No")]


def mme() -> None:
    root = layout("mme-internvl", {"mme": 4}, group="mme")
    for task in ("existence", "code_reasoning"):
        lines = [f"{img}\t{q}\t{a}\n" for t, img, q, a in MME if t == task]
        (root / "mme/Your_Results").mkdir(parents=True, exist_ok=True)
        (root / f"mme/Your_Results/{task}.txt").write_text("".join(lines), encoding="utf-8")
        image_file(root / f"mme/images/{task}/{lines[0].split(chr(9))[0]}", 0)
    root = layout("mme-vlmevalkit", {"mme": 4}, group="mme")
    tsv(root / "mme/MME.tsv", [dict(index=i, image=b64(0) if i % 2 == 0 else str(i - 1), question=q, answer=a,
                                    category=t, image_path=f"{t}/{img}") for i, (t, img, q, a) in enumerate(MME)])
    root = layout("mme-hf", {"mme": 4}, group="mme")
    parquet(root / "mme/data/test-00000-of-00001.parquet",
            [dict(question_id=f"{t}/{img}", image=hf_img(0), question=q, answer=a, category=t)
             for t, img, q, a in MME])


# ------------------------------------------------------------------ ScienceQA
SQA = [dict(question="Which of these states is farthest north?", choices=["Utah", "Maine", "Ohio"], answer=1,
            hint="", image=True),
       dict(question="What does the arrow show?", choices=["force", "speed"], answer=0,
            hint="The figure shows a cart.", image=True),
       dict(question="Which word is a noun?", choices=["run", "table"], answer=1, hint="", image=False),
       dict(question="Which is a mammal?", choices=["shark", "whale", "trout", "eel"], answer=1, hint="", image=True)]


def scienceqa() -> None:
    img = [r for r in SQA if r["image"]]
    root = layout("scienceqa-internvl", {"scienceqa-img": 3}, group="scienceqa")
    rows = []
    for i, r in enumerate(img):
        rows.append(dict(image=f"data/scienceqa/images/test/{i + 10}/image.png", question=r["question"],
                         choices=r["choices"], answer=r["answer"], hint=r["hint"]))
        image_file(root / f"scienceqa/images/test/{i + 10}/image.png", i)
    jsonl(root / "scienceqa/scienceqa_test_img.jsonl", rows)
    root = layout("scienceqa-vlmevalkit", {"scienceqa-img": 3}, group="scienceqa")
    vrows = []
    for i, r in enumerate(img):
        row = dict(index=i, question=r["question"], hint=r["hint"] or None)
        for letter, c in zip("ABCDE", r["choices"]):
            row[letter] = c
        row.update(answer="ABCDE"[r["answer"]], category="mini", image=b64(i))
        vrows.append(row)
    tsv(root / "scienceqa/ScienceQA_TEST.tsv", vrows)
    root = layout("scienceqa-hf", {"scienceqa-img": 3}, skipped={"scienceqa-img": {"text-only question": 1}},
                  group="scienceqa")
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("question", pa.string()), ("choices", pa.list_(pa.string())), ("answer", pa.int8()),
                        ("hint", pa.string()), ("task", pa.string()), ("subject", pa.string())])
    parquet(root / "scienceqa/data/test-00000-of-00001-f0e719df791966ff.parquet",
            [dict(image=hf_img(i) if r["image"] else None, question=r["question"], choices=r["choices"],
                  answer=r["answer"], hint=r["hint"], task="closed choice", subject="natural science")
             for i, r in enumerate(SQA)], schema)


# ------------------------------------------------------------------ POPE
POPE = {"adversarial": [(1, "COCO_val2014_000000000042.jpg", "Is there a dog in the image?", "yes"),
                        (2, "COCO_val2014_000000000042.jpg", "Is there a bench in the image?", "no")],
        "popular": [(1, "COCO_val2014_000000000073.jpg", "Is there a car in the image?", "yes"),
                    (2, "COCO_val2014_000000000073.jpg", "Is there a chair in the image?", "no")],
        "random": [(1, "COCO_val2014_000000000042.jpg", "Is there a dog in the image?", "yes"),
                   (2, "COCO_val2014_000000000042.jpg", "Is there a kite in the image?", "no")]}


def pope() -> None:
    def images(root):
        for i, name in enumerate(sorted({x[1] for v in POPE.values() for x in v})):
            image_file(root / f"pope/val2014/{name}", i)

    def coco(folder):
        for split, rows in POPE.items():
            jsonl(folder / f"coco_pope_{split}.json",
                  [dict(question_id=q, image=img, text=t, label=lab) for q, img, t, lab in rows])

    # InternVL V1.2: LLaVA's llava_pope_test.jsonl (prompts, categories) + coco/coco_pope_*.json (labels)
    root = layout("pope-internvl", {"pope": 6}, group="pope")
    qid, rows = 0, []
    for split, items in POPE.items():
        for _, img, t, _ in items:
            rows.append(dict(question_id=qid, image=img, text=f"{t}\n{SUFFIX_SHORT}", category=split))
            qid += 1
    jsonl(root / "pope/llava_pope_test.jsonl", rows)
    coco(root / "pope/coco")
    images(root)
    root = layout("pope-official", {"pope": 6}, group="pope")  # AoiDragon/POPE output/coco/ + COCO val2014
    coco(root / "pope")
    images(root)
    root = layout("pope-vlmevalkit", {"pope": 6}, group="pope")
    tsv(root / "pope/POPE.tsv", [dict(index=i, image=b64(i), question=t, answer=lab, category=split)
                                 for i, (split, (q, img, t, lab)) in
                                 enumerate((s, x) for s, v in POPE.items() for x in v)])
    root = layout("pope-hf", {"pope": 6}, group="pope")
    parquet(root / "pope/data/test-00000-of-00003.parquet",
            [dict(id=str(i), question_id=str(q), question=t, answer=lab, image_source=img[:-4], image=hf_img(i),
                  category=split) for i, (split, (q, img, t, lab)) in
             enumerate((s, x) for s, v in POPE.items() for x in v)])


# ------------------------------------------------------------------ TextVQA
TVQA = [(34602, "abc1", "what is the brand of this camera?", ["dakota"] * 8 + ["dakota digital"] * 2, "dakota digital"),
        (34603, "abc2", "what does the small white text spell?", ["copenhagen"] * 6 + ["thursday"] * 4, "copenhagen")]


def textvqa() -> None:
    root = layout("textvqa-internvl", {"textvqa-val": 2}, group="textvqa-ocr")
    jsonl(root / "textvqa/textvqa_val_llava.jsonl",
          [dict(question_id=q, image=f"data/textvqa/train_images/{img}.jpg",
                question=f"{t}\nReference OCR token: {ocr}", answer=ans[0]) for q, img, t, ans, ocr in TVQA])
    jsonf(root / "textvqa/textvqa_val_annotations.json",
          {"annotations": [dict(question_id=q, image_id=img, question_type="none of the above", answer_type="other",
                                answers=[dict(answer=a, answer_confidence="yes", answer_id=k + 1)
                                         for k, a in enumerate(ans)]) for q, img, t, ans, ocr in TVQA]})
    jsonf(root / "textvqa/textvqa_val_questions.json",
          {"questions": [dict(question_id=q, image_id=img, question=t) for q, img, t, ans, ocr in TVQA]})
    for i, (_, img, *_r) in enumerate(TVQA):
        image_file(root / f"textvqa/train_images/{img}.jpg", i)
    root = layout("textvqa-official", {"textvqa-val": 2}, group="textvqa")
    jsonf(root / "textvqa/TextVQA_0.5.1_val.json",
          {"dataset_type": "val", "dataset_name": "textvqa", "data": [
              dict(question=t, image_id=img, image_classes=["Camera"], flickr_original_url="", flickr_300k_url="",
                   image_width=8, image_height=6, answers=ans, question_tokens=t.split(), question_id=q,
                   set_name="val") for q, img, t, ans, ocr in TVQA]})
    for i, (_, img, *_r) in enumerate(TVQA):
        image_file(root / f"textvqa/train_images/{img}.jpg", i)
    root = layout("textvqa-hf", {"textvqa-val": 2}, group="textvqa")
    parquet(root / "textvqa/data/validation-00000-of-00003.parquet",
            [dict(image_id=img, question_id=q, question=t, question_tokens=t.split(), image=hf_img(i),
                  image_width=8, image_height=6, flickr_original_url="", flickr_300k_url="", answers=ans,
                  image_classes=["Camera"], set_name="val", ocr_tokens=ocr.split())
             for i, (q, img, t, ans, ocr) in enumerate(TVQA)])
    root = layout("textvqa-vlmevalkit", {"textvqa-val": 2}, group="textvqa")
    tsv(root / "textvqa/TextVQA_VAL.tsv", [dict(index=i, image=b64(i), question=t, answer=str(ans))
                                           for i, (q, img, t, ans, ocr) in enumerate(TVQA)])


# ------------------------------------------------------------------ SEED
SEED = [dict(question_id="101669", data_id="1454426_2591111986", data_type="image", question_type_id=1,
             question="How many towels are in the image?", choice_a="One", choice_b="Two", choice_c="Three",
             choice_d="Four", answer="A"),
        dict(question_id="v1", data_id="video/1.mp4", data_type="video", question_type_id=10,
             question="What happens next?", choice_a="a", choice_b="b", choice_c="c", choice_d="d", answer="B"),
        dict(question_id="101670", data_id="1454426_2591111987", data_type="image", question_type_id=2,
             question="What is the colour of the wall?", choice_a="Blue", choice_b="Red", choice_c="White",
             choice_d="Green", answer="C")]


def seed() -> None:
    root = layout("seed-official", {"seed-image": 2}, skipped={"seed-image": {"video question": 1}}, group="seed")
    jsonf(root / "seed/SEED-Bench.json", {"question_type": {"Scene Understanding": 1, "Instance Identity": 2,
                                                            "Action Recognition": 10}, "questions": SEED})
    for i, r in enumerate(r for r in SEED if r["data_type"] == "image"):
        image_file(root / f"seed/SEED-Bench-image/{r['data_id']}", i)
    root = layout("seed-vlmevalkit", {"seed-image": 2}, group="seed")
    tsv(root / "seed/SEEDBench_IMG.tsv",
        [dict(index=i, question=r["question"], A=r["choice_a"], B=r["choice_b"], C=r["choice_c"], D=r["choice_d"],
              answer=r["answer"], category="Scene Understanding", image=b64(i))
         for i, r in enumerate(r for r in SEED if r["data_type"] == "image")])


# ------------------------------------------------------------------ VizWiz
VIZ = [("VizWiz_val_00000000.jpg", "What is this?", ["coffee"] * 7 + ["tea"] * 3),
       ("VizWiz_val_00000001.jpg", "What colour is this shirt?", ["unanswerable"] * 10)]
VIZ_TEST = [("VizWiz_test_00000000.jpg", "What is this?"), ("VizWiz_test_00000001.jpg", "Can you read this?")]


def vizwiz() -> None:
    root = layout("vizwiz-official", {"vizwiz-val": 2, "vizwiz-test": 2}, group="vizwiz")
    jsonf(root / "vizwiz/annotations/val.json",
          [dict(image=img, question=q, answers=[dict(answer=a, answer_confidence="yes") for a in ans],
                answer_type="other", answerable=0 if ans[0] == "unanswerable" else 1) for img, q, ans in VIZ])
    jsonf(root / "vizwiz/annotations/test.json", [dict(image=img, question=q) for img, q in VIZ_TEST])
    for i, (img, *_r) in enumerate(VIZ):
        image_file(root / f"vizwiz/val/{img}", i)
    for i, (img, _q) in enumerate(VIZ_TEST):
        image_file(root / f"vizwiz/test/{img}", i)
    root = layout("vizwiz-hf", {"vizwiz-val": 2, "vizwiz-test": 2}, group="vizwiz")
    parquet(root / "vizwiz/data/val-00000-of-00001.parquet",
            [dict(question_id=img, image=hf_img(i), question=q, answers=ans, category="other")
             for i, (img, q, ans) in enumerate(VIZ)])
    parquet(root / "vizwiz/data/test-00000-of-00001.parquet",
            [dict(question_id=img, image=hf_img(i), question=q, answers=[], category="")
             for i, (img, q) in enumerate(VIZ_TEST)])
    root = layout("vizwiz-vlmevalkit", {"vizwiz-val": 2}, group="vizwiz")
    tsv(root / "vizwiz/VizWiz.tsv", [dict(index=i, image=b64(i), question=q, answer=str(ans))
                                     for i, (img, q, ans) in enumerate(VIZ)])


# ------------------------------------------------------------------ GQA
GQA = [("201307251", "n161313", "Is it overcast?", "no"), ("201640614", "n235859", "Who is wearing the dress?", "woman"),
       ("202225914", "n235859", "Does the table look brown?", "yes")]


def gqa() -> None:
    root = layout("gqa-internvl", {"gqa-testdev": 3}, group="gqa")
    jsonl(root / "gqa/llava_gqa_testdev_balanced_qwen_format.jsonl",
          [dict(question_id=q, image=f"data/gqa/images/{img}.jpg", question=t, answer=a) for q, img, t, a in GQA])
    for i, img in enumerate(sorted({x[1] for x in GQA})):
        image_file(root / f"gqa/images/{img}.jpg", i)
    root = layout("gqa-official", {"gqa-testdev": 3}, skipped={"gqa-testdev": {"not in the balanced set": 1}},
                  group="gqa")
    qs = {q: dict(imageId=img, question=t, answer=a, isBalanced=True, fullAnswer=a, types={}) for q, img, t, a in GQA}
    qs["209999999"] = dict(imageId="n161313", question="Is it sunny?", answer="no", isBalanced=False)
    jsonf(root / "gqa/testdev_balanced_questions.json", qs)
    for i, img in enumerate(sorted({x[1] for x in GQA})):
        image_file(root / f"gqa/images/{img}.jpg", i)
    root = layout("gqa-vlmevalkit", {"gqa-testdev": 3}, group="gqa")
    tsv(root / "gqa/GQA_TestDev_Balanced.tsv", [dict(index=q, image=b64(i), question=t, answer=a)
                                                for i, (q, img, t, a) in enumerate(GQA)])


# ------------------------------------------------------------------ ChartQA
CHART = {"human": [("41699051005347.png", "What is the highest value?", "47"),
                   ("multi_col_1.png", "Is the line increasing?", "Yes")],
         "augmented": [("two_col_1.png", "What percentage is blue?", "12.5")]}


def chartqa() -> None:
    root = layout("chartqa-official", {"chartqa-test": 3}, group="chartqa")
    base = root / "chartqa/ChartQA Dataset/test"
    for split, rows in CHART.items():
        jsonf(base / f"test_{split}.json", [dict(imgname=img, query=q, label=a) for img, q, a in rows])
        for i, (img, _q, _a) in enumerate(rows):
            image_file(base / f"png/{img}", i)
    root = layout("chartqa-hf", {"chartqa-test": 3}, group="chartqa")
    parquet(root / "chartqa/data/test-00000-of-00001.parquet",
            [dict(image=hf_img(i), query=q, label=[a], human_or_machine=0 if split == "human" else 1)
             for i, (split, (img, q, a)) in enumerate((s, x) for s, v in CHART.items() for x in v)])
    root = layout("chartqa-vlmevalkit", {"chartqa-test": 3}, group="chartqa")
    tsv(root / "chartqa/ChartQA_TEST.tsv",
        [dict(index=i, image=b64(i), question=q, answer=a, split=f"test_{split}")
         for i, (split, (img, q, a)) in enumerate((s, x) for s, v in CHART.items() for x in v)])


# ------------------------------------------------------------------ DocVQA
DOC = [(49153, "pybv0228_81.png", "What is the date?", ["1/8/93", "January 8, 1993"]),
       (49154, "pybv0228_82.png", "Who signed?", ["J. Smith"])]


def docvqa() -> None:
    root = layout("docvqa-official", {"docvqa-val": 2, "docvqa-test": 2}, group="docvqa")
    for split in ("val", "test"):
        data = [dict(questionId=q, question=t, image=f"documents/{img}", docId=i, ucsf_document_id="x",
                     ucsf_document_page_no="1", **({"answers": a, "question_types": ["form"]} if split == "val" else {}))
                for i, (q, img, t, a) in enumerate(DOC)]
        jsonf(root / f"docvqa/{split}/{split}_v1.0.json", {"dataset_name": "docvqa", "dataset_split": split,
                                                          "dataset_version": "1.0", "data": data})
        for i, (_q, img, _t, _a) in enumerate(DOC):
            image_file(root / f"docvqa/{split}/documents/{img}", i)
    root = layout("docvqa-hf", {"docvqa-val": 2, "docvqa-test": 2}, group="docvqa")
    for split in ("validation", "test"):
        parquet(root / f"docvqa/DocVQA/{split}-00000-of-00001.parquet",
                [dict(questionId=str(q), question=t, question_types=["form"], image=hf_img(i), docId=i,
                      ucsf_document_id="x", ucsf_document_page_no="1", answers=a if split == "validation" else None)
                 for i, (q, img, t, a) in enumerate(DOC)])
    root = layout("docvqa-vlmevalkit", {"docvqa-val": 2}, group="docvqa")
    tsv(root / "docvqa/DocVQA_VAL.tsv", [dict(index=q, image=b64(i), question=t, answer=str(a))
                                         for i, (q, img, t, a) in enumerate(DOC)])


# ------------------------------------------------------------------ AI2D
AI2D = [("Which label shows the sun?", ["A", "B", "C", "D"], 2), ("What eats the grass?", ["rabbit", "hawk"], 0)]


def ai2d() -> None:
    root = layout("ai2d-internvl", {"ai2d-test": 2}, group="ai2d")
    rows = []
    for i, (q, opts, a) in enumerate(AI2D):
        question = q + "".join(f"\n{'ABCD'[k]}. {o}" for k, o in enumerate(opts))
        rows.append(dict(image=f"data/ai2diagram/ai2d/images/{i}.png", question=question, question_id=f"{i}.png",
                         answer="ABCD"[a]))
        image_file(root / f"ai2diagram/ai2d/images/{i}.png", i)
    jsonl(root / "ai2diagram/test.jsonl", rows)
    root = layout("ai2d-vlmevalkit", {"ai2d-test": 2}, group="ai2d")
    vrows = []
    for i, (q, opts, a) in enumerate(AI2D):
        row = dict(index=i, question=q, **{"ABCD"[k]: o for k, o in enumerate(opts)})
        row.update(answer="ABCD"[a], image=b64(i))
        vrows.append(row)
    tsv(root / "ai2d/AI2D_TEST.tsv", vrows)
    root = layout("ai2d-hf", {"ai2d-test": 2}, group="ai2d")
    parquet(root / "ai2d/data/test-00000-of-00001.parquet",
            [dict(question=q, options=opts, answer=str(a), image=hf_img(i)) for i, (q, opts, a) in enumerate(AI2D)])


def main() -> None:
    for child in HERE.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    for writer in (mmbench, mmmu, mathvista, mmvp, mme, scienceqa, pope, textvqa, seed, vizwiz, gqa, chartqa, docvqa,
                   ai2d):
        writer()
    (HERE / "layouts.json").write_text(json.dumps(MANIFEST, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(MANIFEST)} layouts under {HERE}")


if __name__ == "__main__":
    main()
