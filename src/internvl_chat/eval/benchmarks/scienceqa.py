"""ScienceQA-IMG (the 2,017 test questions that have an image): option-letter accuracy.

Files (under --data-root/scienceqa/): InternVL's scienceqa_test_img.jsonl (fields
image (data/scienceqa/images/..., relative to InternVL's internvl_chat/), hint, question,
choices, answer (index)),
VLMEvalKit's ScienceQA_TEST.tsv, or the derek-thomas/ScienceQA parquet
(data/test-*.parquet; rows without an image are skipped, as in the IMG subset).
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    LETTERS, Benchmark, BenchmarkDataError, BenchmarkResult, Layout, LoadResult, Sample, ScoreContext, hf_image,
    internvl_image, layout_loader, list_options, mcq_sample_prompt, mcq_tsv_layout, read_jsonl, read_parquet, require,
)
from .scoring import accuracy_result, mcq_letter


def _hint(value) -> str | None:
    # InternVL: `data['hint'] if data['hint'] else None` (evaluate_scienceqa.py), VLMEvalKit: pd.isna;
    # so only an empty/missing hint is dropped, a whitespace-only one is kept as both upstreams keep it
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _answer_letter(r: dict, n_choices: int) -> str:
    answer = require(r, "answer")
    try:
        index = int(answer)
    except (TypeError, ValueError):
        raise BenchmarkDataError(f"{r['_origin']}: answer {answer!r} is not an option index") from None
    if not 0 <= index < n_choices:
        raise BenchmarkDataError(f"{r['_origin']}: answer index {index} but only {n_choices} choices")
    return LETTERS[index]


def _from_internvl(root: Path) -> list[Sample]:
    out = []
    for i, r in enumerate(read_jsonl(root / "scienceqa_test_img.jsonl")):
        choices = list_options(require(r, "choices"))
        out.append(Sample(id=str(r.get("question_id", i)), image=internvl_image(root, require(r, "image"), r["_origin"]),
                          question=str(require(r, "question")), answer=_answer_letter(r, len(choices)),
                          choices=choices, hint=_hint(r.get("hint"))))
    return out


def _from_parquet(root: Path) -> LoadResult:
    out, text_only = [], 0
    for i, r in enumerate(read_parquet(root, "data/test-*.parquet")):
        if not r.get("image"):
            text_only += 1  # ScienceQA-IMG is the 2,017 test questions that have an image
            continue
        choices = list_options(list(require(r, "choices")))
        out.append(Sample(id=str(i), image=hf_image(r), question=str(require(r, "question")),
                          answer=_answer_letter(r, len(choices)), choices=choices, hint=_hint(r.get("hint")),
                          meta={"category": r.get("subject")}))
    return LoadResult(out, skipped={"text-only question": text_only})


load = layout_loader("ScienceQA", ("scienceqa",), [
    Layout("InternVL V1.2 jsonl", ["scienceqa_test_img.jsonl"], _from_internvl),
    mcq_tsv_layout("ScienceQA_TEST.tsv", hint=lambda r: _hint(r.get("hint")),
                   meta=lambda r: {"category": r.get("category")}),
    Layout("Hugging Face derek-thomas/ScienceQA parquet", ["data/test-*.parquet"], _from_parquet),
])


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    letters = [mcq_letter(s, p, ctx, "scienceqa") for s, p in zip(samples, preds)]
    hits = [float(x == s.answer) for s, x in zip(samples, letters)]
    return accuracy_result("scienceqa-img", samples, preds, hits, [{"parsed": x} for x in letters])


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="scienceqa-img", title="ScienceQA", split="test (image)", metric="accuracy", max_new_tokens=100, load=load,
    prompt=mcq_sample_prompt, scorer=score, data_dir="scienceqa",
)]
