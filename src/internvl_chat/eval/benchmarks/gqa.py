"""GQA testdev-balanced: exact match after LLaVA's rstrip('.') + lower() conversion.

Files (under --data-root/gqa/): the original testdev_balanced_questions.json
({qid: {imageId, question, answer, isBalanced, ...}}) + images/<imageId>.jpg,
InternVL's llava_gqa_testdev_balanced_qwen_format.jsonl (question_id, image,
question, answer; image relative to this folder), or VLMEvalKit's GQA_TestDev_Balanced.tsv.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Sample, ScoreContext, check_lengths, file_image, read_json,
    read_jsonl, read_tsv, register, require, tsv_image,
)
from .scoring import accuracy_result, metric
from .textvqa import short_answer_prompt


def load(data_root: Path) -> list[Sample]:
    root = data_root / "gqa"
    if (root / "llava_gqa_testdev_balanced_qwen_format.jsonl").exists():
        return [Sample(id=str(require(r, "question_id")), image=file_image(root, require(r, "image"), r["_origin"]),
                       question=str(require(r, "question")), answer=str(require(r, "answer")))
                for r in read_jsonl(root / "llava_gqa_testdev_balanced_qwen_format.jsonl")]
    if (root / "testdev_balanced_questions.json").exists():
        out = []
        for qid, r in read_json(root / "testdev_balanced_questions.json").items():
            r["_origin"] = f"testdev_balanced_questions.json {qid}"
            if r.get("isBalanced") is False:
                continue  # the official eval.py scores balanced questions only
            out.append(Sample(id=str(qid), image=file_image(root, f"images/{require(r, 'imageId')}.jpg", r["_origin"]),
                              question=str(require(r, "question")), answer=str(require(r, "answer"))))
        return out
    if (root / "GQA_TestDev_Balanced.tsv").exists():
        rows = read_tsv(root / "GQA_TestDev_Balanced.tsv")
        by_index = {str(r["index"]): r for r in rows}
        return [Sample(id=str(r["index"]), image=tsv_image(r, by_index), question=str(require(r, "question")),
                       answer=str(require(r, "answer"))) for r in rows]
    raise BenchmarkDataError(f"GQA: found none of {root}/llava_gqa_testdev_balanced_qwen_format.jsonl, "
                             "testdev_balanced_questions.json, GQA_TestDev_Balanced.tsv")


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    check_lengths(samples, preds, "gqa-testdev")
    flavour = "llava_gqa_rstrip_period_lower" if ctx.flavour == "internvl" else "vlmevalkit_strip_lower"
    hits = [float(metric("exact_match", flavour, gt=s.answer, pred=p)) for s, p in zip(samples, preds)]
    return accuracy_result("gqa-testdev", samples, preds, hits)


register(Benchmark(
    name="gqa-testdev", title="GQA", split="testdev-balanced", metric="accuracy", max_new_tokens=10, load=load,
    prompt=short_answer_prompt, score=score, data_dir="gqa",
    flavours={"internvl": "LLaVA convert_gqa_for_eval (rstrip '.', lower) + exact match",
              "vlmevalkit": "strip + lower exact match"},
))
