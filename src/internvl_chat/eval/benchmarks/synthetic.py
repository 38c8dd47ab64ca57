"""The held-out split of the synthetic V1.2-style data (`internvl-chat data synth`): accuracy per task.

File: --data-root/synthetic/test.jsonl (or --data-root/test.jsonl), one record per
line: {"id", "image" (relative to the file), "question" (user text without
<image>), "answer", "task", "choices" (optional {letter: text}), "chance"}.
Free answers: exact match after VQA answer normalisation (case, articles,
number words, punctuation). Multiple choice: the letter InternVL's post_process
picks. The report shows each task next to its chance level.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Sample, ScoreContext, file_image, mean, read_jsonl, require,
)
from .scoring import bench_metric, mcq_letter


def _find(data_root: Path) -> Path:
    for p in (data_root / "synthetic" / "test.jsonl", data_root / "test.jsonl"):
        if p.exists():
            return p
    raise BenchmarkDataError(f"synthetic: found neither {data_root}/synthetic/test.jsonl nor {data_root}/test.jsonl "
                             "(write one with `internvl-chat data synth`)")


def load(data_root: Path) -> list[Sample]:
    path = _find(data_root)
    out, seen = [], set()
    for r in read_jsonl(path):
        sid = str(require(r, "id"))
        if sid in seen:
            raise BenchmarkDataError(f"{path} ({r['_origin']}): duplicate id {sid!r}")
        seen.add(sid)
        choices = r.get("choices") or {}
        if not isinstance(choices, dict):
            raise BenchmarkDataError(f"{path} ({r['_origin']}): choices must be an object {{letter: text}}")
        answer = str(require(r, "answer"))
        if choices and answer not in choices:
            by_text = [k for k, v in choices.items() if v == answer]
            if len(by_text) != 1:
                raise BenchmarkDataError(f"{path} ({r['_origin']}): answer {answer!r} is neither a choice letter nor one choice's text")
            answer = by_text[0]
        chance = float(r.get("chance", 1.0 / len(choices) if choices else 0.0))
        out.append(Sample(id=sid, image=file_image(path.parent, require(r, "image"), f"{path.name} {r['_origin']}"),
                          question=str(require(r, "question")), answer=answer, choices={str(k): str(v) for k, v in choices.items()},
                          meta={"task": str(require(r, "task")), "chance": chance}))
    if not out:
        raise BenchmarkDataError(f"{path}: no records")
    return out


def prompt(s: Sample) -> str:
    return s.question


def is_correct(s: Sample, pred: str, ctx: ScoreContext) -> bool:
    if s.choices:
        return mcq_letter(s, pred, ctx, "synthetic") == s.answer
    norm = lambda t: bench_metric("synthetic", ctx, "vqa_normalize", text=t)  # noqa: E731
    return norm(pred) == norm(s.answer)


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    hits = [float(is_correct(s, p, ctx)) for s, p in zip(samples, preds)]
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_task[s.meta["task"]].append(i)
    tasks = {t: {"accuracy": 100.0 * mean([hits[i] for i in idx]),
                 "chance": 100.0 * mean([samples[i].meta["chance"] for i in idx]), "n": len(idx)}
             for t, idx in sorted(by_task.items())}
    metrics = {"accuracy": 100.0 * mean(hits), "chance": 100.0 * mean([s.meta["chance"] for s in samples]),
               "tasks": tasks, "empty_predictions": sum(1 for p in preds if not p.strip())}
    per_sample = [{"id": s.id, "task": s.meta["task"], "pred": p, "answer": s.answer, "hit": h}
                  for s, p, h in zip(samples, preds, hits)]
    return BenchmarkResult(name="synthetic", headline=metrics["accuracy"], metrics=metrics, num_samples=len(samples),
                           per_sample=per_sample)


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="synthetic", title="Synthetic (held-out)", split="test", metric="accuracy", max_new_tokens=16, load=load,
    prompt=prompt, scorer=score, data_dir="synthetic",
)]
