"""Glue between benchmarks and `internvl_chat.eval.metrics.score`: letter extraction and tallies.

The metric rules themselves live in `internvl_chat.eval.metrics`; this module
only decides which metric/flavour a benchmark calls and how it aggregates.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..metrics import ReferenceRaisesError, benchmark_flavour, run_metric
from .base import BenchmarkResult, Sample, ScoreContext, mean


class ReferenceCrash(ValueError):
    """The reference scorer would crash on this input (it raises `ReferenceRaisesError`)."""


def metric(name: str, flavour: str | None, **inputs: Any) -> Any:
    try:
        return run_metric(name, flavour, **inputs)
    except ReferenceRaisesError as err:
        shown = {k: (v if len(repr(v)) < 120 else repr(v)[:120] + "...") for k, v in inputs.items()}
        raise ReferenceCrash(f"{name} ({flavour}): the reference implementation raises "
                             f"{err.reference_exception} on {shown}") from err


def flavour(benchmark: str, ctx: ScoreContext, name: str) -> str | None:
    """The flavour of metric `name` that `benchmark` uses under the run's scoring flavour (one table:
    `eval.metrics.BENCHMARK_FLAVOURS`); None when that side does not use the metric."""
    return benchmark_flavour(benchmark, ctx.flavour, name)


def bench_metric(benchmark: str, ctx: ScoreContext, name: str, **inputs: Any) -> Any:
    """`metric(name, <the flavour the table gives benchmark under ctx>, ...)`."""
    chosen = flavour(benchmark, ctx, name)
    if chosen is None:
        raise ValueError(f"{benchmark}: the {ctx.flavour} scoring flavour does not use metric {name!r}")
    return metric(name, chosen, **inputs)


def mcq_letter(sample: Sample, pred: str, ctx: ScoreContext, benchmark: str) -> str | None:
    """The option letter a prediction picks, or None / the raw text when it picks none.

    InternVL flavour: its `post_process` (first character, else option text
    found in the output, else the stripped output). InternVL's scripts crash
    (IndexError) on an empty output; we score it as "no answer" instead and the
    result counts such outputs in `empty_predictions`.
    VLMEvalKit flavour: `can_infer`; when that fails and a judge is configured,
    the judge picks the option (VLMEvalKit's MCQ judge prompt).
    """
    chosen = flavour(benchmark, ctx, "mcq_match")
    if chosen != "vlmevalkit_can_infer" and not pred.strip():  # InternVL's post_process family
        return None
    letter = metric("mcq_match", chosen, pred=pred, choices=sample.choices)
    if letter is None and ctx.judge is not None:  # only can_infer finds no letter
        letter = ctx.judge.choose_option(sample.question, sample.choices, pred)
    return letter


def accuracy_result(
    name: str, samples: list[Sample], preds: list[str], hits: list[float], extra: list[dict] | None = None,
    group_key: str | None = "category", notes: list[str] | None = None,
) -> BenchmarkResult:
    """Percent accuracy overall and per `meta[group_key]`, with one per-sample record each."""
    per_sample = []
    groups: dict[str, list[float]] = defaultdict(list)
    for i, (s, p, h) in enumerate(zip(samples, preds, hits)):
        rec = {"id": s.id, "pred": p, "answer": s.answer, "hit": h}
        if extra:
            rec.update(extra[i])
        per_sample.append(rec)
        if group_key and s.meta.get(group_key) not in (None, ""):
            groups[str(s.meta[group_key])].append(h)
    metrics: dict[str, Any] = {"accuracy": 100.0 * mean(hits)}
    if groups:
        metrics[f"by_{group_key}"] = {k: 100.0 * mean(v) for k, v in sorted(groups.items())}
    metrics["empty_predictions"] = sum(1 for p in preds if not p.strip())
    return BenchmarkResult(name=name, headline=metrics["accuracy"], metrics=metrics, num_samples=len(samples),
                           per_sample=per_sample, notes=list(notes or []))


def vqa_accuracy_result(name: str, samples: list[Sample], preds: list[str], ctx: ScoreContext,
                        family: str) -> BenchmarkResult:
    """Mean VQA accuracy (min(#humans agreeing / 3, 1), leave-one-out) in percent."""
    hits = [float(bench_metric(family, ctx, "vqa_accuracy", gts=list(s.answer), pred=p)) for s, p in zip(samples, preds)]
    return accuracy_result(name, samples, preds, hits, group_key=None)


def submission_path(name: str, ctx: ScoreContext, ext: str) -> Path:
    """OUT/<name>_submission.<ext>: the file a test split's server takes (its folder made)."""
    if ctx.out_dir is None:
        raise ValueError(f"{name}: an output directory is needed to write the submission file")
    path = Path(ctx.out_dir) / f"{name}_submission.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def submission_result(name: str, samples: list[Sample], path: Path, server: str,
                      count: str = "questions") -> BenchmarkResult:
    """A test split's result: no score, the submission file to upload to `server`."""
    return BenchmarkResult(name=name, headline=None, metrics={count: len(samples)}, num_samples=len(samples),
                           submission=str(path), notes=[f"upload to the {server}"])
