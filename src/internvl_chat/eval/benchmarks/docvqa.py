"""DocVQA (val: ANLS; test: the [{questionId, answer}] json for the RRC server).

Files (under --data-root/docvqa/): the original val/val_v1.0.json and
test/test_v1.0.json (images under val/ and test/ as their `image` field says), the
lmms-lab/DocVQA parquet (DocVQA/validation-*.parquet, DocVQA/test-*.parquet), or
VLMEvalKit's DocVQA_VAL.tsv (val only).
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, check_json_submission, file_image,
    hf_image, layout_loader, parse_answer_list, read_json, read_parquet, require, short_answer_prompt, tsv_answers,
    tsv_layout,
)
from .scoring import accuracy_result, bench_metric, submission_path, submission_result

_HF = {"val": "validation", "test": "test"}


def _loader(split: str):
    def official(root: Path) -> list[Sample]:
        original = root / split / f"{split}_v1.0.json"
        out = []
        for i, r in enumerate(require(read_json(original), "data")):
            r["_origin"] = f"{original.name} data[{i}]"
            answer = parse_answer_list(require(r, "answers"), r["_origin"]) if split == "val" else None
            out.append(Sample(id=str(require(r, "questionId")), image=file_image(root / split, require(r, "image"), r["_origin"]),
                              question=str(require(r, "question")), answer=answer))
        return out

    def hf(root: Path) -> list[Sample]:
        return [Sample(id=str(require(r, "questionId")), image=hf_image(r), question=str(require(r, "question")),
                       answer=parse_answer_list(require(r, "answers"), r["_origin"]) if split == "val" else None)
                for r in read_parquet(root, f"DocVQA/{_HF[split]}-*.parquet")]

    layouts = [Layout("official release", [f"{split}/{split}_v1.0.json", f"{split}/documents"], official),
               Layout("Hugging Face lmms-lab/DocVQA parquet", [f"DocVQA/{_HF[split]}-*.parquet"], hf)]
    if split == "val":
        layouts.append(tsv_layout("DocVQA_VAL.tsv", tsv_answers))
    return layout_loader(f"DocVQA {split}", ("docvqa",), layouts)


def score_val(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    hits = [float(bench_metric("docvqa", ctx, "anls", gts=list(s.answer), pred=p)) for s, p in zip(samples, preds)]
    return accuracy_result("docvqa-val", samples, preds, hits, group_key=None)


def score_test(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    path = submission_path("docvqa-test", ctx, "json")
    records = []
    for s, p in zip(samples, preds):
        try:
            qid = int(s.id)
        except ValueError:
            raise BenchmarkDataError(f"docvqa-test: questionId {s.id!r} is not an integer") from None
        records.append({"questionId": qid, "answer": p})
    path.write_text(json.dumps(records, ensure_ascii=False))
    return submission_result("docvqa-test", samples, path, "RRC DocVQA server")


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="docvqa-val", title="DocVQA", split="val", metric="ANLS", max_new_tokens=100, load=_loader("val"),
    prompt=short_answer_prompt, scorer=score_val, data_dir="docvqa",
), Benchmark(
    name="docvqa-test", title="DocVQA", split="test", metric="submission", max_new_tokens=100, load=_loader("test"),
    prompt=short_answer_prompt, scorer=score_test, data_dir="docvqa", has_answers=False,
    check_submission=lambda path, samples: check_json_submission(path, samples, "docvqa"),
)]
