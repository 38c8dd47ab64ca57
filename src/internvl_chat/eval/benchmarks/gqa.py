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
    Benchmark, BenchmarkResult, Sample, ScoreContext, check_lengths, file_image, read_json,
    read_jsonl, read_tsv, require, tsv_image,
    Layout, LoadResult, internvl_image, load_layout, tsv_index,
)
from .scoring import accuracy_result, bench_metric
from .textvqa import short_answer_prompt


def _from_internvl(data_root: Path):
    def read(root: Path) -> list[Sample]:
        # InternVL V1.2 (evaluate_vqa.py, gqa_testdev_llava): image paths are relative to internvl_chat/
        return [Sample(id=str(require(r, "question_id")),
                       image=internvl_image(data_root, root, require(r, "image"), r["_origin"]),
                       question=str(require(r, "question")), answer=str(require(r, "answer")))
                for r in read_jsonl(root / "llava_gqa_testdev_balanced_qwen_format.jsonl")]
    return read


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


def _from_tsv(root: Path) -> list[Sample]:
    rows = read_tsv(root / "GQA_TestDev_Balanced.tsv")
    by_index = tsv_index(rows)
    return [Sample(id=str(r["index"]), image=tsv_image(r, by_index), question=str(require(r, "question")),
                   answer=str(require(r, "answer"))) for r in rows]


def load(data_root: Path) -> list[Sample]:
    layouts = [
        Layout("InternVL V1.2 jsonl", ["llava_gqa_testdev_balanced_qwen_format.jsonl"], _from_internvl(data_root)),
        Layout("official release", ["testdev_balanced_questions.json", "images"], _from_official),
        Layout("VLMEvalKit TSV", ["GQA_TestDev_Balanced.tsv"], _from_tsv),
    ]
    return load_layout("GQA", data_root, ("gqa",), layouts)


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    check_lengths(samples, preds, "gqa-testdev")
    hits = [float(bench_metric("gqa", ctx, "exact_match", gt=s.answer, pred=p)) for s, p in zip(samples, preds)]
    return accuracy_result("gqa-testdev", samples, preds, hits)


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="gqa-testdev", title="GQA", split="testdev-balanced", metric="accuracy", max_new_tokens=10, load=load,
    prompt=short_answer_prompt, score=score, data_dir="gqa",
    flavours={"internvl": "LLaVA convert_gqa_for_eval (rstrip '.', lower) + exact match",
              "vlmevalkit": "strip + lower exact match"},
)]
