"""MMMU (validation: accuracy; test: the {id: answer} json for the EvalAI server).

Files (under --data-root/mmmu/): the Hugging Face MMMU/MMMU parquet snapshot
(<Subject>/validation-*.parquet, <Subject>/test-*.parquet) or the VLMEvalKit
TSVs (MMMU_DEV_VAL.tsv with a `split` column, MMMU_TEST.tsv). As in InternVL's
V1.2 script only `image_1` is used and `<image 1>` is removed from the question.
"""

from __future__ import annotations

import ast
import json

from .base import (
    MCQ_SUFFIX_EN, SHORT_ANSWER_SUFFIX, Benchmark, BenchmarkDataError, BenchmarkResult, Layout, LoadResult, Sample,
    ScoreContext, check_json_submission, hf_image, is_missing, layout_loader, list_options, mcq_prompt, read_parquet,
    read_tsv, require, tsv_image, tsv_index,
)
from .scoring import accuracy_result, bench_metric, flavour, mcq_letter, submission_path, submission_result

_HF_SPLIT = {"val": "validation", "test": "test"}
_TSV = {"val": "MMMU_DEV_VAL.tsv", "test": "MMMU_TEST.tsv"}


def _subject(sample_id: str) -> str:
    parts = sample_id.split("_")
    return "_".join(parts[1:-1]) if len(parts) > 2 else ""


def _gold(raw: str | None):
    """Open answers are text; three validation items hold a Python list literal of accepted answers."""
    if raw is None:
        return None
    raw = str(raw)
    if raw.startswith("[") and raw.endswith("]"):
        try:
            return [str(x) for x in ast.literal_eval(raw)]
        except (ValueError, SyntaxError):
            return raw
    return raw


def _from_parquet(rows: list[dict], split: str) -> list[Sample]:
    samples = []
    for r in rows:
        try:
            options = ast.literal_eval(require(r, "options")) if not is_missing(r.get("options")) else []
        except (ValueError, SyntaxError) as e:
            raise BenchmarkDataError(f"{r['_origin']}: options {r['options']!r} is not a list literal ({e})") from None
        choices = list_options([str(o).strip() for o in options])
        qtype = str(require(r, "question_type"))
        answer = None if split == "test" else _gold(r.get("answer"))
        samples.append(Sample(id=str(require(r, "id")), image=hf_image(r, "image_1"), question=str(require(r, "question")),
                              answer=answer, choices=choices, meta={"question_type": qtype, "subject": _subject(str(r["id"]))}))
    return samples


def _from_tsv(rows: list[dict], split: str) -> LoadResult:
    by_index = tsv_index(rows)
    samples, dev = [], 0
    for r in rows:
        if split == "val" and r.get("split") not in (None, "validation"):
            dev += 1  # MMMU_DEV_VAL also holds the 150 dev (few-shot) questions; V1.2 scores validation only
            continue
        sid = str(r.get("id") or r["index"])
        # InternVL strips each option (evaluate_mmmu.py: c.strip()); pandas already made empty cells None
        choices = {k: str(r[k]).strip() for k in "ABCDEFGHI" if r.get(k) is not None}
        answer = None if split == "test" or is_missing(r.get("answer")) else _gold(r["answer"])
        samples.append(Sample(id=sid, image=tsv_image(r, by_index), question=str(require(r, "question")), answer=answer,
                              choices=choices, meta={"question_type": "multiple-choice" if choices else "open",
                                                     "subject": _subject(sid)}))
    return LoadResult(samples, skipped={"dev (few-shot) rows of MMMU_DEV_VAL": dev})


def _loader(split: str):
    hf_glob = f"*/{_HF_SPLIT[split]}-*.parquet"
    return layout_loader(f"MMMU {split}", ("mmmu", "MMMU"), [
        Layout("Hugging Face MMMU/MMMU parquet", [hf_glob], lambda root: _from_parquet(read_parquet(root, hf_glob), split)),
        Layout("VLMEvalKit TSV", [_TSV[split]], lambda root: _from_tsv(read_tsv(root / _TSV[split]), split)),
    ])


def prompt(s: Sample) -> str:
    question = s.question.replace("<image 1>", "")
    suffix = MCQ_SUFFIX_EN if s.meta["question_type"] == "multiple-choice" else SHORT_ANSWER_SUFFIX
    return mcq_prompt(question, s.choices, suffix)


def _answer(s: Sample, pred: str, ctx: ScoreContext) -> str:
    """InternVL's post-processed answer (a letter for MC when one is found, the text otherwise)."""
    if not s.choices:
        return pred
    letter = mcq_letter(s, pred, ctx, "mmmu")
    return letter if letter is not None else pred.strip()


def score_val(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    hits, extra = [], []
    for s, p in zip(samples, preds):
        if s.choices:
            ans = _answer(s, p, ctx)
            hit = float(ans == s.answer)
        elif flavour("mmmu", ctx, "mmmu_open"):  # official parse_open_response + eval_open
            ans = p
            hit = float(bool(bench_metric("mmmu", ctx, "mmmu_open", response=p, gold=s.answer)["correct"]))
        else:  # VLMEvalKit turns an open question into A = gold, B = "Other Answers"
            gold = s.answer if isinstance(s.answer, str) else s.answer[0]
            ans = bench_metric("mmmu", ctx, "mcq_match", pred=p, choices={"A": gold, "B": "Other Answers"})
            hit = float(ans == "A")
        hits.append(hit)
        extra.append({"parsed": ans, "question_type": s.meta["question_type"]})
    return accuracy_result("mmmu-val", samples, preds, hits, extra, group_key="subject")


def score_test(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    path = submission_path("mmmu-test", ctx, "json")
    path.write_text(json.dumps({s.id: _answer(s, p, ctx) for s, p in zip(samples, preds)}, ensure_ascii=False, indent=1))
    return submission_result("mmmu-test", samples, path, "MMMU EvalAI server")


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="mmmu-val", title="MMMU", split="val", metric="accuracy", max_new_tokens=100, load=_loader("val"),
    prompt=prompt, scorer=score_val, data_dir="mmmu",
), Benchmark(
    name="mmmu-test", title="MMMU", split="test", metric="submission", max_new_tokens=100, load=_loader("test"),
    prompt=prompt, scorer=score_test, data_dir="mmmu", has_answers=False,
    check_submission=lambda path, samples: check_json_submission(path, samples, "mmmu"),
)]
