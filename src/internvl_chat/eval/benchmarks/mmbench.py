"""MMBench and MMBench-CN (dev: circular accuracy; test: the xlsx the MMBench server takes).

Files (under --data-root/mmbench/): the VLMEvalKit TSVs (MMBench_DEV_EN.tsv, ...),
InternVL's TSVs (mmbench_dev_20230712.tsv, ...), or the lmms-lab/MMBench parquet
shards (en/dev-*.parquet, ...). Every circular pass is its own row
(index = original + k * 1,000,000); a question counts only if every pass is right.
"""

from __future__ import annotations

from pathlib import Path

from ..metrics.mmbench import CIRCULAR_OFFSET
from .base import (
    MCQ_SUFFIX_CN, MCQ_SUFFIX_EN, Benchmark, BenchmarkDataError, BenchmarkResult, Layout, Sample, ScoreContext,
    hf_image, layout_loader, mcq_prompt, mean, read_parquet, read_tsv, require, tsv_image, tsv_index,
)
from .scoring import bench_metric, flavour, mcq_letter, submission_path, submission_result
_FILES = {  # (language, split) -> VLMEvalKit TSV, InternVL V1.2 TSVs (evaluate_mmbench.py ds_collections), parquet
    ("en", "dev"): ("MMBench_DEV_EN.tsv", ["mmbench_dev_20230712.tsv", "mmbench_dev_en_20231003.tsv"], "en/dev-*.parquet"),
    ("cn", "dev"): ("MMBench_DEV_CN.tsv", ["mmbench_dev_cn_20231003.tsv"], "cn/dev-*.parquet"),
    ("en", "test"): ("MMBench_TEST_EN.tsv", ["mmbench_test_en_20231003.tsv"], "en/test-*.parquet"),
    ("cn", "test"): ("MMBench_TEST_CN.tsv", ["mmbench_test_cn_20231003.tsv"], "cn/test-*.parquet"),
}
_XLSX_DROP = {"image", "_origin"}


def _cell(value) -> str | None:
    """A cell as InternVL's MMBenchDataset uses it: pandas-missing -> None, anything else as f'{value}' shows it.

    read_tsv already read the file with pandas (NA/N/A/null -> missing, ' ' kept, numeric
    columns typed), so only non-missing values arrive here (evaluate_mmbench.py load_from_df).
    """
    return None if value is None else str(value)


def _samples(rows: list[dict], images: dict, split: str) -> list[Sample]:
    samples = []
    for r in rows:
        try:
            index = int(float(require(r, "index")))
        except ValueError:
            raise BenchmarkDataError(f"{r['_origin']}: index {r['index']!r} is not an integer") from None
        answer = None if split == "test" or r.get("answer") is None else str(r["answer"]).strip()
        choices = {c: _cell(r[c]) for c in "ABCDE" if _cell(r.get(c)) is not None}
        samples.append(Sample(
            id=str(index), image=images[id(r)], question=str(require(r, "question")), answer=answer,
            choices=choices, hint=_cell(r.get("hint")),
            meta={"category": r.get("category"), "l2-category": r.get("l2-category"),
                  "row": {k: v for k, v in r.items() if k not in _XLSX_DROP}},
        ))
    if split == "dev" and any(s.answer is None for s in samples):
        missing = next(s.id for s in samples if s.answer is None)
        raise BenchmarkDataError(f"MMBench dev: row with index {missing} has no answer")
    return samples


def _loader(language: str, split: str):
    vek, ivl, pq_glob = _FILES[(language, split)]

    def from_tsv(name):
        def read(root: Path) -> list[Sample]:
            rows = read_tsv(root / name)
            by_index = tsv_index(rows)
            return _samples(rows, {id(r): tsv_image(r, by_index) for r in rows}, split)
        return read

    def from_parquet(root: Path) -> list[Sample]:
        rows = read_parquet(root, pq_glob)
        for r in rows:  # the HF snapshot is the same table through arrow: null is the missing cell
            for k, v in r.items():
                if isinstance(v, float) and v != v:
                    r[k] = None
        return _samples(rows, {id(r): hf_image(r) for r in rows}, split)

    layouts = [Layout("VLMEvalKit TSV", [vek], from_tsv(vek))]
    layouts += [Layout("InternVL V1.2 TSV", [n], from_tsv(n)) for n in ivl]
    layouts.append(Layout("Hugging Face lmms-lab/MMBench parquet", [pq_glob], from_parquet))
    return layout_loader(f"MMBench {language} {split}", ("mmbench",), layouts)


def _prompt(language: str):
    suffix = MCQ_SUFFIX_CN if language == "cn" else MCQ_SUFFIX_EN
    return lambda s: mcq_prompt(s.question, s.choices, suffix, hint=s.hint)


def _resolved_preds(samples, preds, ctx) -> list[str]:
    """What the circular scorer sees: InternVL's post-processed letters, or raw text (judge letters if asked)."""
    raw_when_unmatched = flavour("mmbench", ctx, "mcq_match") == "vlmevalkit_can_infer"
    letters = [mcq_letter(s, p, ctx, "mmbench") for s, p in zip(samples, preds)]
    return [x if x is not None else (p if raw_when_unmatched else "") for x, p in zip(letters, preds)]


def _score_dev(name):
    def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
        resolved = _resolved_preds(samples, preds, ctx)
        rows = [{"index": int(s.id), "answer": s.answer, **s.choices} for s in samples]
        hits = bench_metric("mmbench", ctx, "mmbench_circular", rows=rows, preds=resolved)
        group_hits = {int(k): v for k, v in hits["group_hits"].items()}
        by_cat: dict[str, list[float]] = {}
        for s in samples:
            if int(s.id) < CIRCULAR_OFFSET and s.meta.get("category"):
                by_cat.setdefault(str(s.meta["category"]), []).append(group_hits[int(s.id) % CIRCULAR_OFFSET])
        acc = 100.0 * mean(list(group_hits.values()))
        per_sample = [{"id": s.id, "pred": p, "resolved": r, "answer": s.answer,
                       "group": int(s.id) % CIRCULAR_OFFSET, "group_hit": group_hits[int(s.id) % CIRCULAR_OFFSET]}
                      for s, p, r in zip(samples, preds, resolved)]
        metrics = {"circular_accuracy": acc, "groups": len(group_hits),
                   "by_category": {k: 100.0 * mean(v) for k, v in sorted(by_cat.items())},
                   "empty_predictions": sum(1 for p in preds if not p.strip())}
        return BenchmarkResult(name=name, headline=acc, metrics=metrics, num_samples=len(samples), per_sample=per_sample)

    return score


def check_xlsx(path: str, samples: list[Sample]) -> str:
    """The MMBench server takes the TSV's columns plus `prediction`, one row per TSV row.

    The server matches each prediction to an option itself, so the cell may hold any text
    (InternVL's post_process passes unmatched outputs through); every TSV index must be there once.
    """
    from openpyxl import load_workbook

    ws = load_workbook(path, read_only=True).active
    rows = list(ws.iter_rows(values_only=True))
    header, body = list(rows[0]), rows[1:]
    need = {"index", "question", "A", "B", "prediction"}
    if not need <= set(header) or len(body) != len(samples):
        raise BenchmarkDataError(f"{path}: not in the MMBench server's format (columns {sorted(need)} and "
                                 f"{len(samples)} rows expected; found {header} and {len(body)} rows)")
    index_at = header.index("index")
    if sorted(str(int(float(row[index_at]))) for row in body) != sorted(s.id for s in samples):
        raise BenchmarkDataError(f"{path}: the index column does not hold every TSV index once")
    return f"ok: {len(body)} rows, TSV columns + prediction"


def _score_test(name):
    def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
        from openpyxl import Workbook

        path = submission_path(name, ctx, "xlsx")
        resolved = _resolved_preds(samples, preds, ctx)
        columns = [c for c in samples[0].meta["row"] if c != "prediction"]
        wb = Workbook()
        ws = wb.active
        ws.append(columns + ["prediction"])
        for s, r in zip(samples, resolved):
            row = s.meta["row"]
            ws.append([row.get(c) for c in columns] + [r])
        wb.save(path)
        return submission_result(name, samples, path, "MMBench evaluation server", count="rows")

    return score


BENCHMARKS = [  # collected by registry.py
    Benchmark(
        name=(_name := f"mmbench-{_split}-{_lang}"), title=_title, split=_split,
        metric="circular accuracy" if _split == "dev" else "submission",
        max_new_tokens=100, load=_loader(_lang, _split), prompt=_prompt(_lang),
        scorer=_score_dev(_name) if _split == "dev" else _score_test(_name), data_dir="mmbench",
        has_answers=_split == "dev", check_submission=None if _split == "dev" else check_xlsx,
    )
    for _lang, _title in (("en", "MMBench"), ("cn", "MMBench-CN")) for _split in ("dev", "test")
]
