"""MMVP: 150 pairs of questions; a pair counts only if both are right (the V1.2 headline).

Files (under --data-root/mmvp/ or MMVP/): the release (HF MMVP/MMVP, what InternVL reads:
Questions.csv, header `lndex,Question,Options,Correct Answer`, "(a) X (b) Y" options,
and "MMVP Images/<lndex>.jpg"), or VLMEvalKit's MMVP.tsv.
Gold answers are the original ones (not lmms-eval's corrected 99/100/279/280).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, file_image, layout_loader,
    mcq_sample_prompt, mcq_tsv_layout, require,
)
from .scoring import accuracy_result, bench_metric, mcq_letter


def _split_options(text: str, origin: str) -> dict[str, str]:
    if "(b)" not in text:
        raise BenchmarkDataError(f"{origin}: options {text!r} are not of the form '(a) X (b) Y'")
    a, b = text.split("(b)", 1)
    return {"A": a.replace("(a)", "").strip(), "B": b.strip()}


def _from_csv(root: Path) -> list[Sample]:
    samples = []
    with open(root / "Questions.csv", newline="", encoding="utf-8") as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            origin = f"Questions.csv line {line}"
            r["_origin"] = origin
            # The released header spells the id column `lndex` (lower-case L); InternVL's
            # evaluate_mmvp.py reads data['lndex']. Accept `Index` too.
            index = str(r.get("lndex") or require(r, "Index")).strip()
            gold = str(require(r, "Correct Answer")).strip()
            letter = {"(a)": "A", "(b)": "B"}.get(gold)
            if letter is None:
                raise BenchmarkDataError(f"{origin}: Correct Answer {gold!r} is not (a) or (b)")
            samples.append(Sample(id=index, image=file_image(root, f"MMVP Images/{index}.jpg", origin),
                                  question=str(require(r, "Question")), answer=letter,
                                  choices=_split_options(str(require(r, "Options")), origin)))
    return samples


load = layout_loader("MMVP", ("mmvp", "MMVP"), [
    Layout("official / Hugging Face MMVP/MMVP (InternVL V1.2)", ["Questions.csv", "MMVP Images"], _from_csv),
    mcq_tsv_layout("MMVP.tsv"),
])


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    if len(samples) % 2:
        raise ValueError(f"mmvp: {len(samples)} questions cannot form pairs (use an even --limit)")
    letters = [mcq_letter(s, p, ctx, "mmvp") for s, p in zip(samples, preds)]
    hits = [float(letter == s.answer) for s, letter in zip(samples, letters)]
    pairs = bench_metric("mmvp", ctx, "mmvp_pairs", hits=[int(h) for h in hits])
    result = accuracy_result("mmvp", samples, preds, hits, [{"parsed": x} for x in letters], group_key=None)
    result.metrics.update(pair_accuracy=100.0 * pairs["Overall"], question_accuracy=100.0 * pairs["Average"])
    result.headline = result.metrics["pair_accuracy"]
    return result


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="mmvp", title="MMVP", split="test", metric="pair accuracy", max_new_tokens=100, load=load,
    prompt=mcq_sample_prompt, scorer=score, data_dir="mmvp",
)]
