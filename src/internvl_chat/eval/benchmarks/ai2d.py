"""AI2D test: option-letter accuracy.

Files (under --data-root/ai2d/ or InternVL's ai2diagram/): InternVL V1.2's test.jsonl
(Qwen-VL's conversion: image named data/ai2diagram/..., question with the options
already in it, answer letter), VLMEvalKit's AI2D_TEST.tsv, or the lmms-lab/ai2d parquet
(data/test-*.parquet; options list, answer = option index). Since 7725e00 InternVL adds
no suffix for AI2D; TSV/parquet rows are rendered like the jsonl question (see prompt()).
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    LETTERS, Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, hf_image, internvl_image,
    layout_loader, list_options, mcq_prompt, mcq_tsv_layout, read_jsonl, read_parquet, require,
)
from .scoring import accuracy_result, bench_metric, flavour, mcq_letter


def _options_in(question: str) -> dict[str, str]:
    """The "X. option" lines of a jsonl question (for the vlmevalkit flavour's option matching)."""
    out = {}
    for line in question.split("\n")[1:]:
        if len(line) > 2 and line[0] in LETTERS and line[1:3] == ". ":
            out[line[0]] = line[3:]
    return out


def _from_internvl(root: Path) -> list[Sample]:
    # InternVL V1.2 (evaluate_vqa.py, ai2diagram_test): Qwen-VL's test.jsonl, options already in the
    # question; image paths relative to internvl_chat/ (data/ai2diagram/...)
    return [Sample(id=str(r.get("question_id", i)), image=internvl_image(root, require(r, "image"), r["_origin"]),
                   question=str(require(r, "question")), answer=str(require(r, "answer")),
                   choices=_options_in(str(r["question"])), meta={"options_in_question": True})
            for i, r in enumerate(read_jsonl(root / "test.jsonl"))]


def _from_parquet(root: Path) -> list[Sample]:
    out = []
    for i, r in enumerate(read_parquet(root, "data/test-*.parquet")):
        choices = list_options(list(require(r, "options")))
        try:
            answer = LETTERS[int(require(r, "answer"))]
        except (ValueError, IndexError):
            raise BenchmarkDataError(f"{r['_origin']}: answer {r['answer']!r} is not an option index") from None
        out.append(Sample(id=str(i), image=hf_image(r), question=str(require(r, "question")), answer=answer,
                          choices=choices))
    return out


load = layout_loader("AI2D", ("ai2d", "ai2diagram"), [
    Layout("InternVL V1.2 jsonl", ["test.jsonl"], _from_internvl),
    mcq_tsv_layout("AI2D_TEST.tsv"),
    Layout("Hugging Face lmms-lab/ai2d parquet", ["data/test-*.parquet"], _from_parquet),
])


def prompt(s: Sample) -> str:
    # V1.2 prompts AI2D with the jsonl question as is (evaluate_vqa.py: ai2d_prompt = '' since 7725e00,
    # and an empty prompt adds nothing). The same question from a TSV/parquet row is rendered the way
    # that jsonl holds it (question, then one "X. option" line per option) and gets no suffix either,
    # so one question has one prompt whatever the layout.
    if s.meta.get("options_in_question"):
        return s.question
    return mcq_prompt(s.question, s.choices, suffix="")


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    if flavour("ai2d", ctx, "exact_match"):  # InternVL's evaluate_exact_match_accuracy: strip + lower equality
        hits = [float(bench_metric("ai2d", ctx, "exact_match", gt=s.answer, pred=p)) for s, p in zip(samples, preds)]
        return accuracy_result("ai2d-test", samples, preds, hits)
    if not all(s.choices for s in samples):
        raise ValueError("ai2d-test: the vlmevalkit flavour needs the options as fields (TSV or parquet layout)")
    letters = [mcq_letter(s, p, ctx, "ai2d") for s, p in zip(samples, preds)]
    hits = [float(x == s.answer) for s, x in zip(samples, letters)]
    return accuracy_result("ai2d-test", samples, preds, hits, [{"parsed": x} for x in letters])


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="ai2d-test", title="AI2D", split="test", metric="accuracy", max_new_tokens=10, load=load, prompt=prompt,
    scorer=score, data_dir="ai2d",
)]
