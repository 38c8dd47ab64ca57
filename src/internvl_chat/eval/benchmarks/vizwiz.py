"""VizWiz-VQA (val: VQA accuracy; test: the [{image, answer}] json for EvalAI).

Files (under --data-root/vizwiz/): the vizwiz.org release (annotations/{val,test}.json
from Annotations.zip, images in val/ and test/), the lmms-lab/VizWiz-VQA parquet
(data/val-*.parquet, data/test-*.parquet), or VLMEvalKit's VizWiz.tsv (val only).
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import (
    VIZWIZ_SUFFIX, Benchmark, BenchmarkResult, Layout, Sample, ScoreContext, check_json_submission, file_image,
    hf_image, layout_loader, parse_answer_list, read_json, read_parquet, require, tsv_layout,
)
from .scoring import bench_metric, submission_path, submission_result, vqa_accuracy_result


def _loader(split: str):
    def official(root: Path) -> list[Sample]:
        # vizwiz.org release: Annotations.zip -> annotations/{train,val,test}.json, images in val/, test/
        out = []
        for i, r in enumerate(read_json(root / "annotations" / f"{split}.json")):
            r["_origin"] = f"annotations/{split}.json [{i}]"
            image = str(require(r, "image"))
            answer = parse_answer_list(require(r, "answers"), r["_origin"]) if split == "val" else None
            out.append(Sample(id=image, image=file_image(root / split, image, r["_origin"]),
                              question=str(require(r, "question")), answer=answer, meta={"image": image}))
        return out

    def hf(root: Path) -> list[Sample]:
        out = []
        for r in read_parquet(root, f"data/{split}-*.parquet"):
            name = str(r.get("image_name") or r.get("question_id") or r["_origin"])
            answer = parse_answer_list(require(r, "answers"), r["_origin"]) if split == "val" else None
            out.append(Sample(id=name, image=hf_image(r), question=str(require(r, "question")), answer=answer,
                              meta={"image": name}))
        return out

    layouts = [Layout("official release", [f"annotations/{split}.json", split], official),
               Layout("Hugging Face lmms-lab/VizWiz-VQA parquet", [f"data/{split}-*.parquet"], hf)]
    if split == "val":
        layouts.append(tsv_layout("VizWiz.tsv",
                                  lambda r: parse_answer_list(r.get("answers") or require(r, "answer"), r["_origin"])))
    return layout_loader(f"VizWiz {split}", ("vizwiz",), layouts)


def prompt(s: Sample) -> str:
    return s.question + " " + VIZWIZ_SUFFIX


def score_val(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    return vqa_accuracy_result("vizwiz-val", samples, preds, ctx, "vizwiz")


def score_test(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    path = submission_path("vizwiz-test", ctx, "json")
    # LLaVA's convert_vizwiz_for_submission passes answers through the EvalAI processor
    records = [{"image": s.meta["image"], "answer": bench_metric("vizwiz", ctx, "vqa_normalize", text=p)}
               for s, p in zip(samples, preds)]
    path.write_text(json.dumps(records, ensure_ascii=False))
    return submission_result("vizwiz-test", samples, path, "VizWiz EvalAI server")


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="vizwiz-val", title="VizWiz", split="val", metric="VQA accuracy", max_new_tokens=10, load=_loader("val"),
    prompt=prompt, scorer=score_val, data_dir="vizwiz",
), Benchmark(
    name="vizwiz-test", title="VizWiz", split="test", metric="submission", max_new_tokens=10, load=_loader("test"),
    prompt=prompt, scorer=score_test, data_dir="vizwiz", has_answers=False,
    check_submission=lambda path, samples: check_json_submission(path, samples, "vizwiz"),
)]
