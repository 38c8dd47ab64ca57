"""SEED-Bench v1, image questions (types 1-9): option-letter accuracy, overall and per type.

Files (under --data-root/seed/): the original SEED-Bench.json + SEED-Bench-image/
(<data_id>), or VLMEvalKit's SEEDBench_IMG.tsv.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Benchmark, BenchmarkResult, Layout, LoadResult, Sample, ScoreContext, file_image, layout_loader, mcq_sample_prompt,
    mcq_tsv_layout, read_json, require,
)
from .scoring import accuracy_result, flavour, mcq_letter


def _from_official(root: Path) -> LoadResult:
    anno = read_json(root / "SEED-Bench.json")
    type_names = {v: k for k, v in anno.get("question_type", {}).items()}
    out, video = [], 0
    for i, r in enumerate(require(anno, "questions")):
        r["_origin"] = f"SEED-Bench.json questions[{i}]"
        if r.get("data_type") != "image" or not 1 <= int(require(r, "question_type_id")) <= 9:
            video += 1  # V1.2's "Image accuracy" is over the image question types 1-9
            continue
        choices = {letter: str(require(r, f"choice_{letter.lower()}")) for letter in "ABCD"}
        out.append(Sample(id=str(require(r, "question_id")),
                          image=file_image(root / "SEED-Bench-image", require(r, "data_id"), r["_origin"]),
                          question=str(require(r, "question")), answer=str(require(r, "answer")), choices=choices,
                          meta={"category": type_names.get(r["question_type_id"], str(r["question_type_id"]))}))
    return LoadResult(out, skipped={"video question": video})


load = layout_loader("SEED", ("seed", "SEED"), [
    Layout("official release", ["SEED-Bench.json", "SEED-Bench-image"], _from_official),
    mcq_tsv_layout("SEEDBench_IMG.tsv", "ABCD", meta=lambda r: {"category": r.get("category")}),
])


def _first_letter(pred: str) -> str | None:
    """InternVL's SEED calculation: the prediction itself if one character long, else its first character."""
    return pred[0] if pred else None  # the reference raises IndexError on an empty output; we count it wrong


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    if flavour("seed", ctx, "mcq_match") is None:  # InternVL: seed/calculation.py's first character
        letters = [_first_letter(p) for p in preds]
    else:
        letters = [mcq_letter(s, p, ctx, "seed") for s, p in zip(samples, preds)]
    hits = [float(x == s.answer) for s, x in zip(samples, letters)]
    return accuracy_result("seed-image", samples, preds, hits, [{"parsed": x} for x in letters])


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="seed-image", title="SEED", split="image", metric="accuracy", max_new_tokens=100, load=load,
    prompt=mcq_sample_prompt, scorer=score, data_dir="seed",
)]
