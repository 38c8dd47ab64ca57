"""GQA testdev-balanced: exact match after LLaVA's rstrip('.') + lower() conversion.

Files (under --data-root/gqa/): the original testdev_balanced_questions.json
({qid: {imageId, question, answer, isBalanced, ...}}) + images/<imageId>.jpg,
InternVL's llava_gqa_testdev_balanced_qwen_format.jsonl (question_id, image,
question, answer; image named data/gqa/images/..., relative to InternVL's
internvl_chat/), or VLMEvalKit's GQA_TestDev_Balanced.tsv.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Benchmark, BenchmarkResult, Layout, LoadResult, Sample, ScoreContext, file_image, internvl_image, layout_loader,
    read_json, read_jsonl, require, short_answer_prompt, tsv_layout,
)
from .scoring import accuracy_result, bench_metric


def _from_internvl(root: Path) -> list[Sample]:
    # InternVL V1.2 (evaluate_vqa.py, gqa_testdev_llava): image paths are relative to internvl_chat/
    return [Sample(id=str(require(r, "question_id")), image=internvl_image(root, require(r, "image"), r["_origin"]),
                   question=str(require(r, "question")), answer=str(require(r, "answer")))
            for r in read_jsonl(root / "llava_gqa_testdev_balanced_qwen_format.jsonl")]


def _from_official(root: Path) -> LoadResult:
    out, unbalanced = [], 0
    for qid, r in read_json(root / "testdev_balanced_questions.json").items():
        r["_origin"] = f"testdev_balanced_questions.json {qid}"
        if r.get("isBalanced") is False:
            unbalanced += 1  # the official eval.py scores balanced questions only
            continue
        out.append(Sample(id=str(qid), image=file_image(root, f"images/{require(r, 'imageId')}.jpg", r["_origin"]),
                          question=str(require(r, "question")), answer=str(require(r, "answer"))))
    return LoadResult(out, skipped={"not in the balanced set": unbalanced})


load = layout_loader("GQA", ("gqa",), [
    Layout("InternVL V1.2 jsonl", ["llava_gqa_testdev_balanced_qwen_format.jsonl"], _from_internvl),
    Layout("official release", ["testdev_balanced_questions.json", "images"], _from_official),
    tsv_layout("GQA_TestDev_Balanced.tsv", lambda r: str(require(r, "answer"))),
])


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    hits = [float(bench_metric("gqa", ctx, "exact_match", gt=s.answer, pred=p)) for s, p in zip(samples, preds)]
    return accuracy_result("gqa-testdev", samples, preds, hits)


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="gqa-testdev", title="GQA", split="testdev-balanced", metric="accuracy", max_new_tokens=10, load=load,
    prompt=short_answer_prompt, scorer=score, data_dir="gqa",
)]
