"""MathVista testmini: the dataset's own `query` prompt, answer extraction, official normalisation.

Files (under --data-root/mathvista/): the Hugging Face AI4Math/MathVista parquet
(data/testmini-*.parquet), the original testmini.json + images/, or the
VLMEvalKit MathVista_MINI.tsv.

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
    Benchmark, BenchmarkDataError, BenchmarkResult, Sample, ScoreContext, check_lengths, file_image, hf_image,
    is_missing, parquet_shards, read_json, read_parquet, read_tsv, register, require, tsv_image,
)
from .scoring import accuracy_result, metric

_ANSWER_LINE = re.compile(r"(Final answer:|Answer:)\s*(.*)", re.IGNORECASE)


def _precision(value) -> int | None:
    return None if is_missing(value) else int(float(value))


def _choices(value, origin: str) -> list[str] | None:
    if is_missing(value):
        return None
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise BenchmarkDataError(f"{origin}: choices {value!r} is not a list literal") from None
    return [str(c) for c in value]


def _sample(r: dict, image, prompt_key: str) -> Sample:
    pid = str(r.get("pid", r.get("index")))
    meta = r.get("metadata") if isinstance(r.get("metadata"), dict) else {}
    return Sample(
        id=pid, image=image, question=str(require(r, prompt_key)), answer=str(require(r, "answer")),
        meta={"choices": _choices(r.get("choices"), r["_origin"]), "question_type": str(require(r, "question_type")),
              "answer_type": str(require(r, "answer_type")), "precision": _precision(r.get("precision")),
              "task": meta.get("task", r.get("task"))},
    )


def load(data_root: Path) -> list[Sample]:
    root = data_root / "mathvista"
    shards = parquet_shards(root, "data/testmini-*.parquet") or parquet_shards(root, "testmini-*.parquet")
    if shards:
        return [_sample(r, hf_image(r, "decoded_image"), "query") for r in read_parquet(shards)]
    if (root / "testmini.json").exists():
        data = read_json(root / "testmini.json")
        rows = []
        for pid, r in data.items():
            r = dict(r, pid=pid, _origin=f"testmini.json pid {pid}")
            rows.append(_sample(r, file_image(root, require(r, "image"), r["_origin"]), "query"))
        return rows
    if (root / "MathVista_MINI.tsv").exists():
        rows = read_tsv(root / "MathVista_MINI.tsv")
        by_index = {str(r["index"]): r for r in rows}
        return [_sample(r, tsv_image(r, by_index), "question") for r in rows]
    raise BenchmarkDataError(f"MathVista: found none of {root}/data/testmini-*.parquet, testmini.json, MathVista_MINI.tsv")


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
    check_lengths(samples, preds, "mathvista-testmini")
    flavour = "mathvista_official" if ctx.flavour == "internvl" else "vlmevalkit_post_check"
    hits, extra, judged = [], [], 0
    for s, p in zip(samples, preds):
        extraction, needs_more = rule_extract(s, p)
        if needs_more and ctx.judge is not None:
            extraction = ctx.judge.extract_math_answer(s.question, p)
            judged += 1
        out = metric("mathvista_normalize", flavour, extraction=extraction, choices=s.meta["choices"],
                     question_type=s.meta["question_type"], answer_type=s.meta["answer_type"],
                     precision=s.meta["precision"], answer=s.answer)
        hits.append(float(bool(out["correct"])))
        extra.append({"extraction": extraction, "normalized": out.get("normalized")})
    notes = [f"answer extraction: {'LLM judge for ' + str(judged) + ' outputs' if ctx.judge else 'rule-based'}"]
    result = accuracy_result("mathvista-testmini", samples, preds, hits, extra, group_key="task", notes=notes)
    result.metrics["judged"] = judged
    return result


register(Benchmark(
    name="mathvista-testmini", title="MathVista", split="testmini", metric="accuracy", max_new_tokens=1000,
    load=load, prompt=prompt, score=score, data_dir="mathvista",
    flavours={"internvl": "MathVista official normalize_extracted_answer + safe_equal",
              "vlmevalkit": "VLMEvalKit post_check"},
))
