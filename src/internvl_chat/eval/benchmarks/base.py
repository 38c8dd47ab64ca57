"""What every benchmark is made of: samples, a registry, and readers for the files people download.

A benchmark is a small typed record of functions (load, prompt, score) plus its
generation settings, registered under a name the CLI accepts. Each benchmark
module maps the rows of its downloadable formats (VLMEvalKit TSV with base64
images, Hugging Face parquet, the original json/jsonl + image folders) onto
`Sample`s; everything downstream (runner, cache, report) only sees `Sample`s.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ...image import ImageLoadError, load_image

# InternVL's V1.2 prompt suffixes (internvl_chat/eval/* at c6b37dc).
MCQ_SUFFIX_EN = "Answer with the option's letter from the given choices directly."
MCQ_SUFFIX_CN = "请直接回答选项字母。"
SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."
VIZWIZ_SUFFIX = "When the provided information is insufficient, respond with 'Unanswerable'. " + SHORT_ANSWER_SUFFIX
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

FLAVOURS = ("internvl", "vlmevalkit")  # scoring flavours the CLI accepts; prompts are always InternVL's


class BenchmarkDataError(ValueError):
    """A benchmark file that cannot be used; the message names the file, the row and what is wrong."""


@dataclass
class ImageSource:
    """Where a sample's image lives. Decoded only when the runner needs it (TSVs hold thousands)."""

    path: str | None = None
    b64: str | None = None
    data: bytes | None = None
    origin: str = ""  # "file.tsv row 12" for error messages

    def load(self) -> Image.Image:
        if self.data is not None:
            source: Any = self.data
        elif self.b64 is not None:
            try:
                source = base64.b64decode(self.b64, validate=False)
            except (binascii.Error, ValueError) as e:
                raise ImageLoadError(self.origin or "<base64>", f"invalid base64: {e}") from e
        elif self.path is not None:
            source = self.path
        else:
            raise ImageLoadError(self.origin or "<none>", "sample has no image")
        try:
            return load_image(source)
        except ImageLoadError as e:
            if self.origin and self.origin not in str(e):
                raise ImageLoadError(f"{e.source} ({self.origin})", e.reason) from e
            raise


@dataclass
class Sample:
    """One question. `id` is unique within the benchmark and keys the prediction cache."""

    id: str
    image: ImageSource | None
    question: str  # the question text as the file has it (no suffixes)
    answer: Any = None  # letter / text / list of reference answers; None on splits without public answers
    choices: dict[str, str] = field(default_factory=dict)  # ordered letter -> option text
    hint: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # category, split, subtask, ... (scoring inputs)


@dataclass
class ScoreContext:
    flavour: str = "internvl"
    judge: Any = None  # internvl_chat.eval.judge.Judge or None
    out_dir: Path | None = None  # where submission files go


@dataclass
class BenchmarkResult:
    """Scores of one benchmark. `headline` is in the unit of the release table (percent, or MME points)."""

    name: str
    headline: float | None
    metrics: dict[str, Any]
    num_samples: int
    per_sample: list[dict] = field(default_factory=list)
    submission: str | None = None  # path of the official submission file (splits without answers)
    notes: list[str] = field(default_factory=list)


@dataclass
class Benchmark:
    name: str  # CLI name, e.g. "mme"
    title: str  # row label of the release table, e.g. "MME"
    split: str
    metric: str  # what `headline` measures, e.g. "accuracy", "sum of perception scores"
    max_new_tokens: int
    load: Callable[[Path], list[Sample]]  # data_root -> samples (raises BenchmarkDataError with file/row)
    prompt: Callable[[Sample], str]
    score: Callable[[list[Sample], list[str], ScoreContext], BenchmarkResult]
    data_dir: str = ""  # sub-folder of --data-root (see docs/eval.md)
    has_answers: bool = True  # False: writes the official submission file instead of a score
    flavours: dict[str, str] = field(default_factory=dict)  # our flavour -> what the metric flavour is called

    def generation_config(self) -> dict:
        # V1.2 is evaluated greedily (>30B params forces num_beams=1 in InternVL's scripts).
        return dict(do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens, min_new_tokens=1)


_REGISTRY: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    if benchmark.name in _REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} is registered twice")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def get_benchmark(name: str) -> Benchmark:
    from . import _load_all  # noqa: F401  (registers every benchmark module)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def benchmark_names() -> list[str]:
    from . import _load_all  # noqa: F401

    return list(_REGISTRY)


# ---------------------------------------------------------------- readers


def find_file(root: Path, candidates: list[str], what: str) -> Path:
    """The first of `candidates` (paths relative to `root`) that exists, else an error listing all tried."""
    for rel in candidates:
        p = root / rel
        if p.exists():
            return p
    tried = "\n  ".join(str(root / c) for c in candidates)
    raise BenchmarkDataError(f"{what}: none of these files exist:\n  {tried}\n(see docs/eval.md for the layout)")


def read_tsv(path: Path) -> list[dict[str, str]]:
    """A VLMEvalKit TSV (tab separated, header row, base64 image column) as a list of dicts."""
    csv.field_size_limit(sys.maxsize)  # base64 images are far bigger than csv's 128 KiB default
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        rows = []
        for i, row in enumerate(reader, start=2):
            if None in row:
                raise BenchmarkDataError(f"{path}:{i}: more fields than the header has")
            row["_origin"] = f"{path.name} line {i}"
            rows.append(row)
    if not rows:
        raise BenchmarkDataError(f"{path}: no rows")
    return rows


def read_parquet(paths: list[Path]) -> list[dict[str, Any]]:
    """Hugging Face parquet shards as a list of dicts (image columns stay {bytes, path} structs)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types; name the file and re-raise as data error
            raise BenchmarkDataError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from e
        for i, row in enumerate(table.to_pylist()):
            row["_origin"] = f"{path.name} row {i}"
            rows.append(row)
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkDataError(f"{path}:{i}: invalid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise BenchmarkDataError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
            row["_origin"] = f"{path.name} line {i}"
            rows.append(row)
    return rows


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise BenchmarkDataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e


def parquet_shards(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def require(row: dict, key: str) -> Any:
    """row[key], or an error naming the file/line and the missing column."""
    if key not in row:
        raise BenchmarkDataError(f"{row.get('_origin', '?')}: missing field {key!r} (has {sorted(k for k in row if k != '_origin')})")
    return row[key]


def is_missing(value: Any) -> bool:
    """Empty cells: None, NaN, '' and the 'nan' pandas writes into TSVs."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "nan", "NaN", "None")


def tsv_image(row: dict, rows_by_index: dict[str, dict]) -> ImageSource:
    """VLMEvalKit stores each image once; a short `image` cell is the index of the row that holds it."""
    cell = require(row, "image")
    if len(cell) <= 64:
        if cell not in rows_by_index:
            raise BenchmarkDataError(f"{row['_origin']}: image refers to index {cell!r}, which is not in the file")
        cell = rows_by_index[cell]["image"]
    if cell.startswith("["):  # multi-image benchmarks (MMMU) keep a list; V1.2 uses the first image only
        try:
            cell = json.loads(cell)[0]
        except (json.JSONDecodeError, IndexError) as e:
            raise BenchmarkDataError(f"{row['_origin']}: image list cannot be parsed ({e})") from e
    return ImageSource(b64=cell, origin=row["_origin"])


def hf_image(row: dict, key: str = "image") -> ImageSource:
    """A parquet image struct {bytes, path} (datasets' Image feature)."""
    value = require(row, key)
    if isinstance(value, dict) and value.get("bytes"):
        return ImageSource(data=value["bytes"], origin=row["_origin"])
    if isinstance(value, (bytes, bytearray)):
        return ImageSource(data=bytes(value), origin=row["_origin"])
    raise BenchmarkDataError(f"{row['_origin']}: column {key!r} holds no image bytes")


def file_image(root: Path, rel: str, origin: str) -> ImageSource:
    return ImageSource(path=str(root / rel), origin=origin)


def letter_options(row: dict, letters: str = "ABCDE") -> dict[str, str]:
    """Option columns A, B, ... of a TSV row, skipping empty ones (MMBench questions have 2-4 options)."""
    out = {}
    for letter in letters:
        if letter in row and not is_missing(row[letter]):
            out[letter] = str(row[letter])
    return out


def list_options(options: list[str]) -> dict[str, str]:
    if len(options) > len(LETTERS):
        raise BenchmarkDataError(f"{len(options)} options is more than {len(LETTERS)}")
    return {LETTERS[i]: str(o) for i, o in enumerate(options)}


def mcq_prompt(question: str, choices: dict[str, str], suffix: str = MCQ_SUFFIX_EN, hint: str | None = None) -> str:
    """[hint\\n] question \\nA. x\\nB. y ... \\n suffix (InternVL's MMBench/ScienceQA/MMVP/MMMU layout)."""
    text = question if hint is None else f"{hint}\n{question}"
    for letter, option in choices.items():
        text += f"\n{letter}. {option}"
    return f"{text}\n{suffix}" if suffix else text


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def check_lengths(samples: list[Sample], preds: list[str], name: str) -> None:
    if len(samples) != len(preds):
        raise ValueError(f"{name}: {len(samples)} samples but {len(preds)} predictions")
