"""The on-disk formats of V1.2 SFT data: the meta JSON and the annotation JSONL.

Meta JSON (the original `--meta_path`): `{name: {root, annotation, data_augment,
repeat_time, length}}`. `root` and `annotation` may be relative; they are
resolved against the folder of the meta file (the original resolved them against
the working directory, which breaks as soon as you launch from elsewhere).

Annotation JSONL: one `{"id", "image"?, "conversations": [{"from", "value"}]}`
per line. A record that cannot be used becomes a `RejectedSample` with a reason
a human can act on; nothing is dropped or replaced silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import IMAGE_PLACEHOLDER

ROLES = ("human", "gpt")
# Template control strings that must never appear inside a message: they would
# split the rendered prompt in the wrong place.
CONTROL_STRINGS = ("<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>")


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of the meta JSON, with paths already resolved."""

    name: str
    root: Path
    annotation: Path
    data_augment: bool = False
    repeat_time: float = 1.0
    length: int | None = None  # informational only, as in the original


class MetaError(ValueError):
    """The meta JSON itself is unusable (missing file, missing key, bad value)."""


def load_meta(meta: str | Path | dict, base_dir: str | Path | None = None) -> list[DatasetSpec]:
    """Parse a meta JSON file (or an already-loaded dict) into specs, in file order."""
    if isinstance(meta, (str, Path)):
        meta_path = Path(meta)
        if not meta_path.is_file():
            raise MetaError(f"meta file not found: {meta_path}")
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise MetaError(f"{meta_path}: invalid JSON at line {e.lineno}: {e.msg}") from e
        base = Path(base_dir) if base_dir is not None else meta_path.resolve().parent
        where = str(meta_path)
    else:
        raw, base, where = meta, Path(base_dir or "."), "<meta dict>"
    if not isinstance(raw, dict) or not raw:
        raise MetaError(f"{where}: expected a non-empty JSON object {{name: {{root, annotation, ...}}}}")
    specs = []
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise MetaError(f"{where}: dataset {name!r} must be an object, got {type(entry).__name__}")
        for key in ("root", "annotation"):
            if not isinstance(entry.get(key), str):
                raise MetaError(f"{where}: dataset {name!r} needs a string {key!r}")
        annotation = base / entry["annotation"]
        if not str(annotation).endswith(".jsonl"):
            raise MetaError(f"{where}: dataset {name!r}: annotation must be a .jsonl file, got {annotation}")
        repeat = entry.get("repeat_time", 1)
        if not isinstance(repeat, (int, float)) or isinstance(repeat, bool) or not (repeat > 0) or math.isinf(repeat):
            raise MetaError(f"{where}: dataset {name!r}: repeat_time must be a positive number, got {repeat!r}")
        if repeat > 1 and int(repeat) != repeat:
            # The original asserts an integer here too: a fractional repeat above 1 is ambiguous.
            raise MetaError(f"{where}: dataset {name!r}: repeat_time above 1 must be an integer, got {repeat!r}")
        specs.append(DatasetSpec(
            name=name, root=base / entry["root"], annotation=annotation,
            data_augment=bool(entry.get("data_augment", False)), repeat_time=float(repeat),
            length=entry.get("length"),
        ))
    return specs


def repeat_indices(num_lines: int, repeat_time: float) -> range | list[int]:
    """Line indices a dataset contributes to one epoch, as the original does it:
    below 1 keeps the first floor(n * r) lines, above 1 repeats the file r times."""
    if repeat_time < 1:
        return range(int(num_lines * repeat_time))
    return range(num_lines * int(repeat_time))


@dataclass
class RejectedSample:
    """A sample that cannot be trained on, and why. `kind` groups reasons for counting."""

    dataset: str
    id: str | None
    line: int | None  # 1-based line in the annotation file
    kind: str
    reason: str
    file: str | None = None

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "id": self.id, "line": self.line, "file": self.file,
                "kind": self.kind, "reason": self.reason}


class SampleRejected(Exception):
    """Raised for a sample that cannot be used; carries the `RejectedSample` record."""

    def __init__(self, record: RejectedSample):
        self.record = record
        self.dataset, self.id, self.reason = record.dataset, record.id, record.reason
        where = f"{record.file}:{record.line}" if record.file else f"line {record.line}"
        super().__init__(f"[{record.dataset}] {where} id={record.id}: {record.reason}")


@dataclass
class Record:
    """A schema-valid annotation record."""

    id: str
    image: str | None  # relative to the dataset root; None for text-only samples
    conversations: list[dict] = field(default_factory=list)


class RecordError(ValueError):
    """A record-level problem; `kind` is the reject category."""

    def __init__(self, kind: str, reason: str):
        self.kind, self.reason = kind, reason
        super().__init__(reason)


def parse_line(text: str | bytes, line_no: int) -> dict:
    """JSON-decode one annotation line; raises RecordError('invalid JSON', ...)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError("invalid JSON", f"invalid JSON at line {line_no}: not UTF-8 ({e.reason} at byte {e.start})")
    if not text.strip():
        raise RecordError("invalid JSON", f"invalid JSON at line {line_no}: empty line")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError("invalid JSON", f"invalid JSON at line {line_no}: {e.msg} (column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # a number too long to convert, nesting too deep
        raise RecordError("invalid JSON", f"invalid JSON at line {line_no}: {' '.join(str(e).split())[:120]}") from None
    if not isinstance(obj, dict):
        raise RecordError("schema", f"line {line_no} is a JSON {type(obj).__name__}, expected an object")
    return obj


def validate_record(obj: dict, line_no: int) -> Record:
    """Check schema, roles and `<image>` placement; returns a normalised Record.

    Normalisation (the original's rules): a leading assistant turn is dropped, and
    an image sample with no `<image>` gets `<image>\\n` in front of the first user turn.
    """
    sample_id = str(obj.get("id", f"line{line_no}"))
    image = obj.get("image")
    if image is not None and not isinstance(image, str):
        raise RecordError("schema", f"'image' must be a string path, got {type(image).__name__}")
    image = image or None  # "" means text-only (maintainer, issue #220)
    convs = obj.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise RecordError("schema", "'conversations' must be a non-empty list")
    for j, turn in enumerate(convs):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str) or "from" not in turn:
            raise RecordError("schema", f"turn {j} must be an object with 'from' and a string 'value'")
        if turn["from"] not in ROLES:
            raise RecordError("role order", f"role order: turn {j} has unknown role {turn['from']!r} (expected 'human' or 'gpt')")
    start = 1 if convs[0]["from"] == "gpt" else 0  # the original skips a leading assistant turn
    convs = [dict(t) for t in convs[start:]]
    if not convs:
        raise RecordError("role order", "role order: only an assistant turn, nothing to answer")
    for j, turn in enumerate(convs):
        expected = ROLES[j % 2]
        if turn["from"] != expected:
            raise RecordError("role order", f"role order: turn {j + start} is {turn['from']!r}, expected {expected!r}")
        if not turn["value"].strip():
            raise RecordError("schema", f"turn {j + start} ({turn['from']}) has an empty value")
        for s in CONTROL_STRINGS:
            if s in turn["value"]:
                raise RecordError("schema", f"turn {j + start} contains the template control string {s!r}")
    if len(convs) < 2:
        raise RecordError("no supervised tokens", "no supervised tokens: no assistant turn")
    for j, turn in enumerate(convs):
        if turn["from"] == "gpt" and IMAGE_PLACEHOLDER in turn["value"]:
            raise RecordError("<image> count", f"<image> in an assistant turn (turn {j + start})")
    n_placeholders = sum(t["value"].count(IMAGE_PLACEHOLDER) for t in convs)
    n_images = 1 if image else 0
    if image and n_placeholders == 0:
        convs[0]["value"] = IMAGE_PLACEHOLDER + "\n" + convs[0]["value"]
    elif n_placeholders != n_images:
        raise RecordError("<image> count", f"<image> count {n_placeholders} != {n_images} images")
    return Record(id=sample_id, image=image, conversations=convs)
