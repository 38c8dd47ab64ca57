"""What every benchmark is made of: samples, a registry, and readers for the files people download.

A benchmark is a small typed record of functions (load, prompt, score) plus its
generation settings, registered under a name the CLI accepts. Each benchmark
module maps the rows of its downloadable formats (VLMEvalKit TSV with base64
images, Hugging Face parquet, the original json/jsonl + image folders) onto
`Sample`s; everything downstream (runner, cache, report) only sees `Sample`s.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import math
from collections import Counter
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


DOCS_LINK = "docs/eval.md#data-layout-under---data-root"


class BenchmarkDataError(ValueError):
    """A benchmark file that cannot be used; the message names the file, the row and what is wrong.

    The CLI prints it as one line and exits 2 (before any model is loaded).
    """


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
    scorer: Callable[[list[Sample], list[str], ScoreContext], BenchmarkResult]  # called by score()
    data_dir: str = ""  # sub-folder of --data-root (see docs/eval.md)
    has_answers: bool = True  # False: writes the official submission file instead of a score

    oracle: Callable[[Sample], str] | None = None  # the gold prediction of a sample (--oracle); None: default_oracle
    check_submission: Callable[[str, list[Sample]], str] | None = None  # test splits: validate the written file

    def score(self, samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
        """The result of one prediction per sample (the lists are checked here, for every benchmark)."""
        if len(samples) != len(preds):
            raise ValueError(f"{self.name}: {len(samples)} samples but {len(preds)} predictions")
        return self.scorer(samples, preds, ctx)

    def generation_config(self) -> dict:
        # V1.2 is evaluated greedily (>30B params forces num_beams=1 in InternVL's scripts).
        return dict(do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens, min_new_tokens=1)


class LoadResult(list):
    """The samples a loader returns, plus which layout they came from and which rows it skipped (and why)."""

    def __init__(self, samples=(), layout: str = "", skipped: dict[str, int] | None = None):
        super().__init__(samples)
        self.layout = layout
        self.skipped = {k: v for k, v in (skipped or {}).items() if v}


@dataclass
class Layout:
    """One way a benchmark is distributed: the files that identify it and the reader for it.

    `files` are paths (or globs) relative to the benchmark folder; the first one is the
    marker: when it exists but another file is missing the layout is incomplete (an error
    naming the missing file), rather than silently falling through to another layout.
    """

    name: str  # e.g. "VLMEvalKit TSV"
    files: list[str]
    read: Callable[[Path], list[Sample]]


def _present(root: Path, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return any(root.glob(pattern))
    return (root / pattern).exists()


def bench_root(data_root: Path, names: tuple[str, ...]) -> Path:
    """The benchmark folder under --data-root: ours (`mmvp/`) or InternVL's `data/` name (`MMVP/`)."""
    for n in names:
        if (data_root / n).is_dir():
            return data_root / n
    return data_root / names[0]


def load_layout(title: str, data_root: Path, folders: tuple[str, ...], layouts: list[Layout]) -> LoadResult:
    """Detect which layout `folders` hold and read it; an unknown or incomplete layout is a one-line error."""
    root = bench_root(data_root, folders)
    for layout in layouts:
        if all(_present(root, f) for f in layout.files):
            out = layout.read(root)
            if not isinstance(out, LoadResult):
                out = LoadResult(out)
            out.layout = layout.name
            return out
    expected = "; ".join(f"{lay.name}: {', '.join(lay.files)}" for lay in layouts)
    for layout in layouts:
        if _present(root, layout.files[0]):
            missing = [f for f in layout.files if not _present(root, f)]
            raise BenchmarkDataError(f"{title}: {root} has {layout.files[0]} but not {', '.join(missing)} "
                                     f"(the {layout.name} layout needs {', '.join(layout.files)}); see {DOCS_LINK}")
    found = sorted(p.name for p in root.iterdir())[:8] if root.is_dir() else []
    what = f"found {', '.join(found)}" if found else ("the folder is empty" if root.is_dir() else "the folder does not exist")
    raise BenchmarkDataError(f"{title}: no known layout in {root} ({what}); expected one of {expected}; see {DOCS_LINK}")


def layout_loader(title: str, folders: tuple[str, ...], layouts: list[Layout]) -> Callable[[Path], LoadResult]:
    """A benchmark's `load`: load_layout over its folders and layouts."""
    return lambda data_root: load_layout(title, data_root, folders, layouts)


def internvl_image(root: Path, rel: str, origin: str) -> "ImageSource":
    """An image path from InternVL's V1.2 eval jsonl files in the benchmark folder `root`.

    InternVL's scripts run from internvl_chat/ and the jsonl files name images as
    `data/<bench>/...` (evaluate_vqa.py / evaluate_scienceqa.py open them as given), so
    `data/` is our --data-root, the parent of `root`; a file moved elsewhere is still
    found next to the jsonl.
    """
    rel = str(rel)
    if rel.startswith("data/"):
        direct = root.parent / rel[len("data/"):]
        parts = rel.split("/", 2)
        if not direct.exists() and len(parts) == 3 and (root / parts[2]).exists():
            return ImageSource(path=str(root / parts[2]), origin=origin)
        return ImageSource(path=str(direct), origin=origin)
    return ImageSource(path=str(root / rel), origin=origin)


def default_oracle(s: Sample) -> str:
    """The gold answer as a model output: the letter, the text, or the most frequent reference answer."""
    a = s.answer
    if a is None:  # test splits: any well-formed answer (the submission format is what is checked)
        return next(iter(s.choices), "unanswerable")
    if isinstance(a, (list, tuple)):
        return Counter(map(str, a)).most_common(1)[0][0]  # first of the most frequent (ties keep insertion order)
    return str(a)


# ---------------------------------------------------------------- readers


def read_tsv(path: Path) -> list[dict[str, Any]]:
    """A VLMEvalKit / InternVL TSV read as upstream reads it: `pandas.read_csv(path, sep='\\t')`.

    Both VLMEvalKit (vlmeval/smp/file.py `load`) and InternVL's V1.2 MMBench script
    (internvl_chat/eval/mmbench/evaluate_mmbench.py) read with pandas, so cells mean what
    pandas makes of them: `NA`, `N/A`, `null`, `nan` and empty cells are missing (None
    here), a whitespace-only cell is kept, and a column of numbers is numeric (an option
    column with a missing cell becomes float, printed as `2.0`).
    """
    import pandas as pd

    try:
        df = pd.read_csv(path, sep="\t")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise BenchmarkDataError(f"{path}: not a readable TSV ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if df.empty:
        raise BenchmarkDataError(f"{path}: no rows")
    rows = []
    for i, row in enumerate(df.to_dict("records"), start=2):
        row = {str(k): (None if _is_na(v) else v) for k, v in row.items()}
        row["_origin"] = f"{path.name} line {i}"
        rows.append(row)
    return rows


def _is_na(value: Any) -> bool:
    """pandas' missing markers (NaN, NaT, pd.NA), as pd.isna sees a scalar cell."""
    if value is None:
        return True
    if isinstance(value, (str, bytes, list, tuple, dict)):
        return False
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def read_parquet(root: Path, pattern: str) -> list[dict[str, Any]]:
    """The Hugging Face parquet shards `pattern` matches under `root`, in name order, as a list of dicts
    (image columns stay {bytes, path} structs)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in sorted(root.glob(pattern)):
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
    """VLMEvalKit stores each image once; a short `image` cell is the index of the row that holds it.

    Multi-image rows (MMMU) hold a Python list repr, because pandas writes list cells with
    str(); VLMEvalKit reads them back with a literal eval (vlmeval/dataset/image_base.py
    `dump_image`). We parse it with ast.literal_eval (never eval) and, as V1.2, use the first image.
    """
    cell = str(require(row, "image"))
    if len(cell) <= 64 and not cell.startswith("["):
        ref = rows_by_index.get(cell) or rows_by_index.get(cell.split(".")[0])
        if ref is None:
            raise BenchmarkDataError(f"{row['_origin']}: image refers to index {cell!r}, which is not in the file")
        cell = str(ref["image"])
    if cell.startswith("["):
        try:
            images = ast.literal_eval(cell)
            cell = str(images[0])
        except (ValueError, SyntaxError, IndexError, TypeError) as e:
            raise BenchmarkDataError(f"{row['_origin']}: image list cannot be parsed ({type(e).__name__})") from None
        if len(cell) <= 64 and cell in rows_by_index:
            cell = str(rows_by_index[cell]["image"])
    return ImageSource(b64=cell, origin=row["_origin"])


def tsv_index(rows: list[dict]) -> dict[str, dict]:
    """Rows by their `index` cell as text (pandas reads it as an int)."""
    return {str(r["index"]): r for r in rows if "index" in r}


def tsv_layout(file: str, answer: Callable[[dict], Any], **fields: Callable[[dict], Any]) -> Layout:
    """The VLMEvalKit layout: one TSV (index, image or a reference to another row's, question) read as
    `Sample`s; `answer(row)` and each of `fields` (a Sample field -> a function of the row) fill the rest."""
    def read(root: Path) -> list[Sample]:
        rows = read_tsv(root / file)
        by_index = tsv_index(rows)
        return [Sample(id=str(r["index"]), image=tsv_image(r, by_index), question=str(require(r, "question")),
                       answer=answer(r), **{k: f(r) for k, f in fields.items()}) for r in rows]

    return Layout("VLMEvalKit TSV", [file], read)


def parse_answer_list(value, origin: str) -> list[str]:
    """Reference answers: a list, a list of {answer: ...} dicts, or the string repr VLMEvalKit TSVs hold."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise BenchmarkDataError(f"{origin}: answers {text[:80]!r} is not a list literal") from None
        else:
            value = [text]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [str(value)]
    if not isinstance(value, (list, tuple)) and hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise BenchmarkDataError(f"{origin}: expected a non-empty list of answers, got {value!r}")
    return [str(a["answer"]) if isinstance(a, dict) else str(a) for a in value]


def tsv_answers(row: dict) -> list[str]:
    """The reference answers of a VLMEvalKit VQA TSV row (its `answer` cell)."""
    return parse_answer_list(require(row, "answer"), row["_origin"])


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


def mcq_tsv_layout(file: str, letters: str = "ABCDE", **fields: Callable[[dict], Any]) -> Layout:
    """A VLMEvalKit multiple-choice TSV (answer letter, option columns `letters`), as its ImageMCQDataset
    reads one; `fields` as in tsv_layout."""
    return tsv_layout(file, lambda r: str(require(r, "answer")).strip(),
                      choices=lambda r: letter_options(r, letters), **fields)


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


def mcq_sample_prompt(s: Sample) -> str:
    """A multiple-choice sample as InternVL prompts it: [hint] question, options, the English suffix."""
    return mcq_prompt(s.question, s.choices, hint=s.hint)


def short_answer_prompt(s: Sample) -> str:
    return s.question + " " + SHORT_ANSWER_SUFFIX


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def check_json_submission(path: str, samples: list[Sample], kind: str) -> str:
    """Check a written submission file against the server's expected format; returns a one-line verdict.

    kind "mmmu": {question id: answer string} (MMMU EvalAI); "vizwiz": [{"image", "answer"}] (VizWiz
    EvalAI, one per test image); "docvqa": [{"questionId": int, "answer": str}] (RRC).
    """
    data = read_json(Path(path))
    if kind == "mmmu":
        ok = isinstance(data, dict) and set(data) == {s.id for s in samples} and all(isinstance(v, str) for v in data.values())
        expected = "an object {question id: answer string} with every test question"
    elif kind == "vizwiz":
        ok = (isinstance(data, list) and all(isinstance(r, dict) and set(r) == {"image", "answer"} and isinstance(r["answer"], str)
                                             for r in data)
              and sorted(r["image"] for r in data) == sorted(s.meta["image"] for s in samples))
        expected = 'a list of {"image", "answer"} with every test image once'
    elif kind == "docvqa":
        ok = (isinstance(data, list) and all(isinstance(r, dict) and set(r) == {"questionId", "answer"}
                                             and isinstance(r["questionId"], int) and isinstance(r["answer"], str) for r in data)
              and sorted(str(r["questionId"]) for r in data) == sorted(s.id for s in samples))
        expected = 'a list of {"questionId": int, "answer": str} with every test question once'
    else:
        raise ValueError(f"unknown submission kind {kind!r}")
    if not ok:
        raise BenchmarkDataError(f"{path}: not in the server's format (expected {expected})")
    return f"ok: {len(data)} entries, {expected}"
