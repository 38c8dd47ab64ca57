"""ChartQA test: relaxed accuracy (5% numeric tolerance), headline = mean of human and augmented.

Files (under --data-root/chartqa/): the release as "ChartQA Dataset.zip" unpacks
("ChartQA Dataset/test/test_human.json", test_augmented.json ([{imgname, query, label}])
and png/), the HuggingFaceM4/ChartQA parquet (data/test-*.parquet, human_or_machine
0 = human), or VLMEvalKit's ChartQA_TEST.tsv (`split` test_human / test_augmented).
InternVL passes the prediction as the target of relaxed_correctness (swapped
arguments); that is the default flavour, VLMEvalKit's orientation is selectable.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, file_image, hf_image, layout_loader,
    mean, parse_answer_list, read_json, read_parquet, require, short_answer_prompt, tsv_answers, tsv_layout,
)
from .scoring import accuracy_result, bench_metric


_RELEASE = "ChartQA Dataset/test"  # as "ChartQA Dataset.zip" unpacks


def _from_official(root: Path) -> list[Sample]:
    out = []
    for split in ("human", "augmented"):
        path = root / _RELEASE / f"test_{split}.json"
        for i, r in enumerate(read_json(path)):
            r["_origin"] = f"{path.name} [{i}]"
            out.append(Sample(id=f"{split}/{i}", image=file_image(root / _RELEASE / "png", require(r, "imgname"), r["_origin"]),
                              question=str(require(r, "query")), answer=[str(require(r, "label"))],
                              meta={"category": split}))
    return out


def _from_parquet(root: Path) -> list[Sample]:
    return [Sample(id=str(i), image=hf_image(r), question=str(require(r, "query")),
                   answer=parse_answer_list(require(r, "label"), r["_origin"]),
                   meta={"category": "human" if int(require(r, "human_or_machine")) == 0 else "augmented"})
            for i, r in enumerate(read_parquet(root, "data/test-*.parquet"))]


def _tsv_split(value, origin: str) -> str:
    # VLMEvalKit's ChartQA_TEST.tsv (vlmeval/dataset/image_vqa.py ImageVQADataset) names the splits
    # test_human / test_augmented, the names of the release's files
    split = str(value or "").removeprefix("test_")
    if split not in ("human", "augmented"):
        raise BenchmarkDataError(f"{origin}: split {value!r} is not test_human or test_augmented")
    return split


LAYOUTS = [
    Layout("official release (ChartQA Dataset.zip)",
           [f"{_RELEASE}/test_human.json", f"{_RELEASE}/test_augmented.json", f"{_RELEASE}/png"], _from_official),
    Layout("Hugging Face HuggingFaceM4/ChartQA parquet", ["data/test-*.parquet"], _from_parquet),
    tsv_layout("ChartQA_TEST.tsv", tsv_answers,
               meta=lambda r: {"category": _tsv_split(require(r, "split"), r["_origin"])}),
]

load = layout_loader("ChartQA", ("chartqa", "ChartQA"), LAYOUTS)


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    hits = [max(float(bench_metric("chartqa", ctx, "relaxed_accuracy", gt=gt, pred=p)) for gt in s.answer) for s, p in zip(samples, preds)]
    result = accuracy_result("chartqa-test", samples, preds, hits)
    by_split = result.metrics.get("by_category", {})
    if {"human", "augmented"} <= set(by_split):
        result.headline = mean([by_split["human"], by_split["augmented"]])  # InternVL's reported number
        result.metrics["mean_of_splits"] = result.headline
    return result


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="chartqa-test", title="ChartQA", split="test", metric="relaxed accuracy", max_new_tokens=100, load=load,
    prompt=short_answer_prompt, scorer=score, data_dir="chartqa",
)]
