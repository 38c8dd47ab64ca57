"""MathVista testmini: the dataset's own `query` prompt, answer extraction, official normalisation.

Files (under --data-root/mathvista/): the Hugging Face AI4Math/MathVista parquet
(data/testmini-*.parquet), the lupantech/MathVista release (data/testmini.json +
data/query.json + data/images/), or the VLMEvalKit MathVista_MINI.tsv.

Extraction: InternVL's script sends anything its shortcuts (exact choice, int,
float) miss to an OpenAI model. Rule-based by default here: after the
shortcuts, the text after "Answer:" / "Final answer:" or else the whole output
goes to the official normaliser (which picks the nearest choice for MC).
With --judge-url the LLM extracts instead, and the report says so.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, file_image, hf_image, is_missing,
    layout_loader, read_json, read_parquet, read_tsv, require, tsv_image, tsv_index,
)
from .scoring import accuracy_result, bench_metric

_ANSWER_LINE = re.compile(r"(Final answer:|Answer:)\s*(.*)", re.IGNORECASE)


def _precision(value, answer: str, answer_type: str) -> int | None:
    """The rounding precision of a float answer.

    HF and the official json carry `precision`; VLMEvalKit's MathVista_MINI.tsv has no such
    column (VLMEvalKit compares floats directly, vlmeval/dataset/utils/mathvista.py
    post_check). The official normaliser (MathVista evaluation/calculate_score.py) would
    then round to an integer, so we take the gold answer's own decimal places, which is
    how the dataset's precision field is defined (e.g. "1.5" -> 1).
    """
    if not is_missing(value):
        return int(float(value))
    if answer_type != "float":
        return None
    return len(answer.split(".", 1)[1]) if "." in answer else 0


def _choices(value, origin: str) -> list[str] | None:
    if is_missing(value):
        return None
    if isinstance(value, str):  # a TSV list cell is the Python repr pandas wrote
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise BenchmarkDataError(f"{origin}: choices {value!r} is not a list literal") from None
    return [str(c) for c in value]


def _sample(r: dict, image, prompt: str) -> Sample:
    pid = str(r.get("pid", r.get("index")))
    meta = r.get("metadata") if isinstance(r.get("metadata"), dict) else {}
    answer, answer_type = str(require(r, "answer")), str(require(r, "answer_type"))
    return Sample(
        id=pid, image=image, question=str(prompt), answer=answer,
        meta={"choices": _choices(r.get("choices"), r["_origin"]), "question_type": str(require(r, "question_type")),
              "answer_type": answer_type, "precision": _precision(r.get("precision"), answer, answer_type),
              "task": meta.get("task", r.get("task"))},
    )


def _from_parquet(root: Path) -> list[Sample]:
    rows = read_parquet(root, "data/testmini-*.parquet")
    return [_sample(r, hf_image(r, "decoded_image"), require(r, "query")) for r in rows]


def _from_official(root: Path) -> list[Sample]:
    # lupantech/MathVista: data/testmini.json has no `query`; the prompts live in data/query.json
    # keyed by pid (the official evaluation/generate_response.py reads them from there).
    data = read_json(root / "data/testmini.json")
    queries = read_json(root / "data/query.json")
    out = []
    for pid, r in data.items():
        r = dict(r, pid=pid, _origin=f"data/testmini.json pid {pid}")
        if pid not in queries:
            raise BenchmarkDataError(f"MathVista: pid {pid} of data/testmini.json has no prompt in data/query.json")
        out.append(_sample(r, file_image(root / "data", require(r, "image"), r["_origin"]), queries[pid]))
    return out


def _from_tsv(root: Path) -> list[Sample]:
    rows = read_tsv(root / "MathVista_MINI.tsv")
    by_index = tsv_index(rows)
    return [_sample(r, tsv_image(r, by_index), require(r, "question")) for r in rows]


load = layout_loader("MathVista", ("mathvista", "MathVista"), [
    Layout("Hugging Face AI4Math/MathVista parquet", ["data/testmini-*.parquet"], _from_parquet),
    Layout("official release", ["data/testmini.json", "data/query.json", "data/images"], _from_official),
    Layout("VLMEvalKit TSV", ["MathVista_MINI.tsv"], _from_tsv),
])


def prompt(s: Sample) -> str:
    return s.question  # the official `query` already holds the hint and the choices


def rule_extract(s: Sample, response: str) -> tuple[str, bool]:
    """(extraction, needed_more_than_a_shortcut). Shortcuts as in MathVista's extract_answer."""
    response = response.strip()
    if not response:
        return "", False
    choices = s.meta["choices"]
    if s.meta["question_type"] == "multi_choice" and choices and response in choices:
        return response, False
    try:
        if s.meta["answer_type"] == "integer":
            return str(int(response)), False
        if s.meta["answer_type"] == "float":
            return str(float(response)), False
    except ValueError:
        pass
    m = _ANSWER_LINE.search(response)
    return (m.group(2).strip() if m else response), True


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    hits, extra, judged = [], [], 0
    for s, p in zip(samples, preds):
        extraction, needs_more = rule_extract(s, p)
        if needs_more and ctx.judge is not None:
            extraction = ctx.judge.extract_math_answer(s.question, p)
            judged += 1
        out = bench_metric("mathvista", ctx, "mathvista_normalize", extraction=extraction, choices=s.meta["choices"],
                     question_type=s.meta["question_type"], answer_type=s.meta["answer_type"],
                     precision=s.meta["precision"], answer=s.answer)
        hits.append(float(bool(out["correct"])))
        extra.append({"extraction": extraction, "normalized": out.get("normalized")})
    notes = [f"answer extraction: {'LLM judge for ' + str(judged) + ' outputs' if ctx.judge else 'rule-based'}"]
    result = accuracy_result("mathvista-testmini", samples, preds, hits, extra, group_key="task", notes=notes)
    result.metrics["judged"] = judged
    return result


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="mathvista-testmini", title="MathVista", split="testmini", metric="accuracy", max_new_tokens=1000,
    load=load, prompt=prompt, scorer=score, data_dir="mathvista",
)]
