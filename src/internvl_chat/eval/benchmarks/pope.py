"""POPE (adversarial / popular / random): yes/no object hallucination, headline = mean F1 of the splits.

Files (under --data-root/pope/): InternVL V1.2's layout (LLaVA's llava_pope_test.jsonl
for the prompts + coco/coco_pope_{adversarial,popular,random}.json for the labels +
COCO val2014/), POPE's own coco_pope_*.json (JSON lines with question_id, image, text,
label; at the top or under output/coco/) + val2014/, VLMEvalKit's POPE.tsv, or the
lmms-lab/POPE parquet (data/test-*.parquet).
The V1.2 split files are from POPE@e3e3926 (random has 2,910 questions).
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from pathlib import Path

from .base import (
    SHORT_ANSWER_SUFFIX, Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, file_image,
    hf_image, layout_loader, mean, read_jsonl, read_parquet, require, tsv_layout,
)
from ..metrics.pope import POPE_SPLITS, pope_counts
from .scoring import ReferenceCrash, bench_metric, flavour


def _label(value, origin: str) -> str:
    label = str(value).strip().lower()
    if label not in ("yes", "no"):
        raise BenchmarkDataError(f"{origin}: label {value!r} is not yes/no")
    return label


def _from_internvl(root: Path) -> list[Sample]:
    # InternVL V1.2 (eval/pope/evaluate_pope.py + eval_pope.py): prompts and categories from LLaVA's
    # llava_pope_test.jsonl, images from val2014/, labels from coco/coco_pope_<category>.json, matched
    # by position within a category (eval_pope.py zips the category's answers with the label file).
    questions = read_jsonl(root / "llava_pope_test.jsonl")
    samples = []
    for split in POPE_SPLITS:
        mine = [q for q in questions if q.get("category") == split]
        labels = read_jsonl(root / "coco" / f"coco_pope_{split}.json")
        if len(mine) != len(labels):
            raise BenchmarkDataError(f"POPE: llava_pope_test.jsonl has {len(mine)} {split} questions but "
                                     f"coco/coco_pope_{split}.json has {len(labels)} labels")
        for q, lab in zip(mine, labels):
            samples.append(Sample(id=f"{split}/{require(q, 'question_id')}",
                                  image=file_image(root / "val2014", require(q, "image"), q["_origin"]),
                                  question=str(require(q, "text")), answer=_label(require(lab, "label"), lab["_origin"]),
                                  meta={"splits": [split]}))
    other = [q for q in questions if q.get("category") not in POPE_SPLITS]
    if other:
        raise BenchmarkDataError(f"POPE: {other[0]['_origin']}: category {other[0].get('category')!r} is not one of {POPE_SPLITS}")
    return samples


def _from_official(folder: str, root: Path) -> list[Sample]:
    samples = []
    for split in POPE_SPLITS:
        for r in read_jsonl(root / folder / f"coco_pope_{split}.json"):
            samples.append(Sample(id=f"{split}/{require(r, 'question_id')}",
                                  image=file_image(root / "val2014", require(r, "image"), r["_origin"]),
                                  question=str(require(r, "text")), answer=_label(require(r, "label"), r["_origin"]),
                                  meta={"splits": [split]}))
    return samples


def _from_parquet(root: Path) -> list[Sample]:
    return [Sample(id=f"{r['category']}/{require(r, 'question_id')}", image=hf_image(r),
                   question=str(require(r, "question")), answer=_label(require(r, "answer"), r["_origin"]),
                   meta={"splits": [str(require(r, "category"))]})
            for r in read_parquet(root, "data/test-*.parquet")]


load = layout_loader("POPE", ("pope",), [
    Layout("InternVL V1.2", ["llava_pope_test.jsonl", "val2014"] + [f"coco/coco_pope_{s}.json" for s in POPE_SPLITS],
           _from_internvl),
    Layout("official POPE", [f"coco_pope_{s}.json" for s in POPE_SPLITS] + ["val2014"], partial(_from_official, ".")),
    Layout("official POPE (output/coco)", [f"output/coco/coco_pope_{s}.json" for s in POPE_SPLITS] + ["val2014"],
           partial(_from_official, "output/coco")),
    tsv_layout("POPE.tsv", lambda r: _label(require(r, "answer"), r["_origin"]),
               meta=lambda r: {"splits": [c.strip() for c in str(require(r, "category")).split(",")]}),
    Layout("Hugging Face lmms-lab/POPE parquet", ["data/test-*.parquet"], _from_parquet),
])


def prompt(s: Sample) -> str:
    # V1.2 read LLaVA's llava_pope_test.jsonl, whose text already ends with the short-answer
    # suffix, and appended ' ' + '' to it (evaluate_pope.py at c6b37dc): keep that trailing space.
    text = s.question if s.question.endswith(SHORT_ANSWER_SUFFIX) else f"{s.question}\n{SHORT_ANSWER_SUFFIX}"
    return text + " "


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    per_split: dict[str, dict] = {}
    notes: list[str] = []
    for split in sorted({sp for s in samples for sp in s.meta["splits"]}):
        idx = [i for i, s in enumerate(samples) if split in s.meta["splits"]]
        labels = [samples[i].answer for i in idx]
        split_preds = [preds[i] for i in idx]
        if flavour("pope", ctx, "pope_split_parse") == "pope_official":
            try:
                m = bench_metric("pope", ctx, "pope_split_parse", labels=labels, preds=split_preds)
            except ReferenceCrash:
                # POPE's script divides by zero when TP+FP or P+R is 0 (e.g. no answer parses as "yes").
                # Report the counts, score F1 as 0 and say so instead of crashing the whole run.
                c = asdict(pope_counts(labels, split_preds))
                tp, fp, fn, n = c["TP"], c["FP"], c["FN"], sum(c.values())
                m = {**c, "accuracy": (tp + c["TN"]) / n, "precision": tp / (tp + fp) if tp + fp else float("nan"),
                     "recall": tp / (tp + fn) if tp + fn else float("nan"), "f1": 0.0, "yes_ratio": (tp + fp) / n}
                notes.append(f"{split}: F1 undefined (TP={tp}, FP={fp}; the POPE script divides by zero); "
                             "counted as 0")
            m = {**m, **{k: 100.0 * m[k] for k in ("f1", "accuracy", "precision", "recall", "yes_ratio")}}  # percent
        else:
            m = bench_metric("pope", ctx, "pope_split_parse", labels=[x.capitalize() for x in labels], preds=split_preds)
            m = dict(m, f1=m["f1_overall"])
        per_split[split] = dict(m, questions=len(idx))
    headline = mean([m["f1"] for m in per_split.values()])
    metrics = {"mean_f1": headline, "mean_accuracy": mean([m.get("accuracy", m.get("acc")) for m in per_split.values()]),
               "splits": per_split, "empty_predictions": sum(1 for p in preds if not p.strip())}
    per_sample = [{"id": s.id, "pred": p, "answer": s.answer} for s, p in zip(samples, preds)]
    return BenchmarkResult(name="pope", headline=headline, metrics=metrics, num_samples=len(samples),
                           per_sample=per_sample, notes=notes)


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="pope", title="POPE", split="test", metric="mean F1 of 3 splits", max_new_tokens=100, load=load,
    prompt=prompt, scorer=score, data_dir="pope",
)]
