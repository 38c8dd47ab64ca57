"""`internvl-chat data check`: validate every record of a meta JSON before training.

Per line: JSON, schema, role alternation, `<image>` count vs images, the image
exists and decodes, the token length after image expansion, over-length and
fully masked samples. Read-only: the only file written is the rejects report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..image import ImageLoadError, load_image
from .dataset import image_reject_reason
from .formats import RecordError, RejectedSample, load_meta, parse_line, validate_record
from .jsonl_index import JsonlIndex
from .preprocess import tokenize_conversation


@dataclass
class DatasetReport:
    name: str
    annotation: str
    lines: int = 0
    ok: int = 0
    image_samples: int = 0
    text_only: int = 0
    max_tokens: int = 0
    problems: Counter = field(default_factory=Counter)  # kind -> count

    @property
    def bad(self) -> int:
        return sum(self.problems.values())


@dataclass
class CheckReport:
    datasets: list[DatasetReport]
    rejects: list[RejectedSample]
    interrupted: bool = False  # Ctrl-C: the report covers the records checked until then

    @property
    def ok(self) -> bool:
        return not self.rejects


def check_line(raw: bytes, line_no: int, spec, tokenizer, template_name: str, num_image_token: int,
               max_length: int, check_images: bool) -> tuple[int, bool]:
    """(token count, has image) of a usable record; raises RecordError (with `sample_id`) otherwise."""
    obj = parse_line(raw, line_no)
    sid = str(obj["id"]) if "id" in obj else None
    try:
        rec = validate_record(obj, line_no)
        if rec.image and check_images:
            try:
                load_image(spec.root / rec.image)
            except ImageLoadError as e:
                raise RecordError(*image_reject_reason(e)) from None
        # The full (untruncated) length is reported; check flags truncation that training would apply.
        tok = tokenize_conversation(rec.conversations, tokenizer, template_name, num_image_token,
                                    max_length=max_length, text_only=not rec.image)
        if tok.truncated:
            raise RecordError("over length", f"over length: {tok.full_length} tokens > {max_length} "
                                             "(the end of the conversation would be cut off)")
        return tok.full_length, bool(rec.image)
    except RecordError as e:
        e.sample_id = sid
        raise


def check_meta(meta_path, tokenizer, template_name: str = "Hermes-2", num_image_token: int = 256,
               max_length: int = 2048, check_images: bool = True, progress: bool = True,
               base_dir=None) -> CheckReport:
    from tqdm import tqdm

    out = CheckReport([], [])
    try:
        for spec in load_meta(meta_path, base_dir):
            report = DatasetReport(spec.name, str(spec.annotation))
            out.datasets.append(report)
            try:
                index = JsonlIndex(spec.annotation)
            except FileNotFoundError as e:
                report.problems["annotation missing"] += 1
                out.rejects.append(RejectedSample(spec.name, None, None, "annotation missing", str(e),
                                                  str(spec.annotation)))
                continue
            report.lines = len(index)
            for line in tqdm(range(len(index)), desc=spec.name, disable=not progress, unit="rec", leave=False):
                try:
                    n_tokens, has_image = check_line(index.read(line), line + 1, spec, tokenizer, template_name,
                                                     num_image_token, max_length, check_images)
                except RecordError as e:
                    report.problems[e.kind] += 1
                    out.rejects.append(RejectedSample(spec.name, getattr(e, "sample_id", None), line + 1, e.kind,
                                                      e.reason, str(spec.annotation)))
                    continue
                report.ok += 1
                report.image_samples += has_image
                report.text_only += not has_image
                report.max_tokens = max(report.max_tokens, n_tokens)
    except KeyboardInterrupt:  # keep what was checked: the caller prints it and writes the rejects so far
        out.interrupted = True
    return out


def write_rejects(rejects: list[RejectedSample], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")


def print_report(report: CheckReport, console, max_listed: int = 20) -> None:
    from rich.table import Table

    table = Table(title="data check")
    for col in ("dataset", "lines", "ok", "image", "text-only", "max tokens", "rejected", "problems"):
        table.add_column(col, justify="left" if col in ("dataset", "problems") else "right")
    for r in report.datasets:
        problems = ", ".join(f"{k}: {n}" for k, n in sorted(r.problems.items())) or "-"
        table.add_row(r.name, str(r.lines), str(r.ok), str(r.image_samples), str(r.text_only), str(r.max_tokens),
                      str(r.bad), problems, style="red" if r.bad else None)
    console.print(table)
    for rec in report.rejects[:max_listed]:
        console.print(f"  [{rec.dataset}] {rec.file}:{rec.line} id={rec.id}: {rec.reason}", markup=False,
                      soft_wrap=True)
    if len(report.rejects) > max_listed:
        console.print(f"  ... and {len(report.rejects) - max_listed} more (see the rejects file)")
