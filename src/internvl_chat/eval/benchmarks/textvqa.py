"""TextVQA val: VQA accuracy over 10 human answers.

Files (under --data-root/textvqa/): InternVL V1.2's layout (textvqa_val_llava.jsonl,
LLaVA's questions with OCR tokens, scored against the ten answers in
textvqa_val_annotations.json; images named data/textvqa/train_images/...), the
original TextVQA_0.5.1_val.json + train_images/ (<image_id>.jpg), the lmms-lab/textvqa
parquet (data/validation-*.parquet), or VLMEvalKit's TextVQA_VAL.tsv. V1.2's 69.7 used
the OCR-token questions, so only the InternVL layout reproduces its prompts.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, file_image, hf_image, internvl_image,
    layout_loader, parse_answer_list, read_json, read_jsonl, read_parquet, require, short_answer_prompt, tsv_answers,
    tsv_layout,
)
from .scoring import vqa_accuracy_result


def _from_internvl(root: Path) -> list[Sample]:
    # InternVL V1.2 (eval/vqa/evaluate_vqa.py, dataset textvqa_val_ocr) prompts with the jsonl's
    # question and scores with VQAEval against the ten answers of textvqa_val_annotations.json
    # (matched by question_id), not against the jsonl's single `answer`.
    anns = require(read_json(root / "textvqa_val_annotations.json"), "annotations")
    gold = {}
    for i, a in enumerate(anns):
        a["_origin"] = f"textvqa_val_annotations.json annotations[{i}]"
        gold[str(require(a, "question_id"))] = parse_answer_list(require(a, "answers"), a["_origin"])
    out = []
    for r in read_jsonl(root / "textvqa_val_llava.jsonl"):
        qid = str(require(r, "question_id"))
        if qid not in gold:
            raise BenchmarkDataError(f"{r['_origin']}: question_id {qid} is not in textvqa_val_annotations.json")
        out.append(Sample(id=qid, image=internvl_image(root, require(r, "image"), r["_origin"]),
                          question=str(require(r, "question")), answer=gold[qid]))
    return out


def _from_official(root: Path) -> list[Sample]:
    data = require(read_json(root / "TextVQA_0.5.1_val.json"), "data")
    out = []
    for i, r in enumerate(data):
        r["_origin"] = f"TextVQA_0.5.1_val.json data[{i}]"
        out.append(Sample(id=str(require(r, "question_id")),
                          image=file_image(root, f"train_images/{require(r, 'image_id')}.jpg", r["_origin"]),
                          question=str(require(r, "question")), answer=parse_answer_list(require(r, "answers"), r["_origin"])))
    return out


def _from_parquet(root: Path) -> list[Sample]:
    return [Sample(id=str(require(r, "question_id")), image=hf_image(r), question=str(require(r, "question")),
                   answer=parse_answer_list(require(r, "answers"), r["_origin"]))
            for r in read_parquet(root, "data/validation-*.parquet")]


load = layout_loader("TextVQA", ("textvqa",), [
    Layout("InternVL V1.2 (LLaVA OCR questions)", ["textvqa_val_llava.jsonl", "textvqa_val_annotations.json"],
           _from_internvl),
    Layout("official release", ["TextVQA_0.5.1_val.json", "train_images"], _from_official),
    Layout("Hugging Face lmms-lab/textvqa parquet", ["data/validation-*.parquet"], _from_parquet),
    tsv_layout("TextVQA_VAL.tsv", tsv_answers),
])


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    return vqa_accuracy_result("textvqa-val", samples, preds, ctx, "textvqa")


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="textvqa-val", title="TextVQA", split="val", metric="VQA accuracy", max_new_tokens=10, load=load,
    prompt=short_answer_prompt, scorer=score, data_dir="textvqa",
)]
