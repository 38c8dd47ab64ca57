"""MME: 14 yes/no subtasks, two questions per image; score = 100*acc + 100*acc+ per subtask.

Files (under --data-root/mme/): VLMEvalKit's MME.tsv, the lmms-lab/MME parquet
(data/test-*.parquet), or InternVL's layout (Your_Results/<subtask>.txt with
"image<TAB>question<TAB>Yes|No" lines and images/<subtask>/<image>).

V1.2's own MME run used 5-beam sampling by accident (see internvl-v1.2.md §7.2);
we decode greedily like every other benchmark.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext, file_image, hf_image, layout_loader,
    read_parquet, read_tsv, require, short_answer_prompt, tsv_image, tsv_index,
)
from ..metrics.mme import MME_COGNITION, MME_PERCEPTION
from ..metrics.yesno import internvl_mme_postprocess
from .scoring import bench_metric, flavour


def _sample(sid: str, subtask: str, image_key: str, image, question: str, answer: str, origin: str) -> Sample:
    if subtask not in MME_PERCEPTION + MME_COGNITION:
        raise BenchmarkDataError(f"{origin}: unknown MME subtask {subtask!r}")
    if answer not in ("Yes", "No"):
        raise BenchmarkDataError(f"{origin}: answer {answer!r} is not Yes or No")
    return Sample(id=sid, image=image, question=question, answer=answer,
                  meta={"category": subtask, "image_key": image_key})


def _from_tsv(root: Path) -> list[Sample]:
    rows = read_tsv(root / "MME.tsv")
    by_index = tsv_index(rows)
    return [_sample(str(r["index"]), str(require(r, "category")), str(r.get("image_path") or r["index"]),
                    tsv_image(r, by_index), str(require(r, "question")), str(require(r, "answer")), r["_origin"])
            for r in rows]


def _from_parquet(root: Path) -> list[Sample]:
    return [_sample(f"{r['question_id']}#{i}", str(require(r, "category")), str(require(r, "question_id")),
                    hf_image(r), str(require(r, "question")), str(require(r, "answer")), r["_origin"])
            for i, r in enumerate(read_parquet(root, "data/test-*.parquet"))]


def _from_internvl(root: Path) -> list[Sample]:
    # internvl_chat/eval/mme/eval.py: Your_Results/<subtask>.txt lines "image\tquestion\tgt",
    # images copied by get_images.py to images/<subtask>/
    samples = []
    for txt in sorted((root / "Your_Results").glob("*.txt")):
        subtask = txt.stem
        for line_no, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            origin = f"{txt.name} line {line_no}"
            parts = line.strip().split("\t")
            if len(parts) < 3:
                raise BenchmarkDataError(f"{txt}:{line_no}: expected image<TAB>question<TAB>answer")
            img, question, gt = parts[0], parts[1], parts[2].strip()
            samples.append(_sample(f"{subtask}/{img}#{line_no}", subtask, img,
                                   file_image(root, f"images/{subtask}/{img}", origin), question, gt, origin))
    return samples


load = layout_loader("MME", ("mme", "MME"), [
    Layout("VLMEvalKit TSV", ["MME.tsv"], _from_tsv),
    Layout("Hugging Face lmms-lab/MME parquet", ["data/test-*.parquet"], _from_parquet),
    Layout("InternVL V1.2 (eval/mme)", ["Your_Results/*.txt", "images"], _from_internvl),
])


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    official = flavour("mme", ctx, "mme_subtask") == "mme_official"
    by_task: dict[str, list[list[str]]] = {}
    for s, p in zip(samples, preds):
        # InternVL's MME runner rewrites outputs (newlines, Chinese yes/no, true/false) before the parser
        pred = internvl_mme_postprocess(p) if official else p
        by_task.setdefault(s.meta["category"], []).append([s.meta["image_key"], s.answer, pred])
    subtasks = {}
    for task, rows in by_task.items():
        # the official script chunks lines two by two, so an image's questions must be adjacent
        rows.sort(key=lambda r: r[0])
        subtasks[task] = bench_metric("mme", ctx, "mme_subtask", subtask=task, rows=rows)
    perception = sum(subtasks[t]["score"] for t in MME_PERCEPTION if t in subtasks)
    cognition = sum(subtasks[t]["score"] for t in MME_COGNITION if t in subtasks)
    missing = [t for t in MME_PERCEPTION + MME_COGNITION if t not in subtasks]
    notes = [f"subtasks missing from the data (sums are partial): {', '.join(missing)}"] if missing else []
    metrics = {"perception": perception, "cognition": cognition, "subtasks": subtasks,
               "empty_predictions": sum(1 for p in preds if not p.strip())}
    per_sample = [{"id": s.id, "pred": p, "answer": s.answer} for s, p in zip(samples, preds)]
    return BenchmarkResult(name="mme", headline=perception, metrics=metrics, num_samples=len(samples),
                           per_sample=per_sample, notes=notes)


BENCHMARKS = [Benchmark(  # collected by registry.py
    name="mme", title="MME", split="test", metric="perception score (sum of 10 subtasks)", max_new_tokens=20,
    load=load, prompt=short_answer_prompt, scorer=score, data_dir="mme",
)]
