"""The InternVL-Chat-V1.2 release numbers, in the order of the release table.

Source: ../shared/reference/internvl-v1.2.md §7.2, which cites the V1.2 README /
model card (Feb 2024, OpenGVLab/InternVL@88a146c..c6b37dc) and the later docs
(czczup/InternVL-doc@f54eb76) where they differ.
"""

from __future__ import annotations

from dataclasses import dataclass

RELEASE_SOURCE = "InternVL-Chat-V1.2 release table (OpenGVLab/InternVL README @c6b37dc; internvl-v1.2.md §7.2)"


@dataclass(frozen=True)
class PublishedRow:
    title: str  # as in the release table
    split: str
    metric: str
    value: float | None  # None: V1.2 has no published number for this row
    benchmark: str  # our benchmark name
    key: str = "headline"  # "headline" or a key of BenchmarkResult.metrics
    source: str = RELEASE_SOURCE
    note: str = ""


PUBLISHED: list[PublishedRow] = [
    PublishedRow("MMMU", "val", "accuracy", 51.6, "mmmu-val"),
    PublishedRow("MMMU", "test", "accuracy (server)", 46.2, "mmmu-test"),
    PublishedRow("MathVista", "testmini", "accuracy", 47.7, "mathvista-testmini",
                 note="InternVL extracted answers with gpt-3.5-turbo"),
    PublishedRow("MMBench", "test", "circular accuracy (server)", 82.2, "mmbench-test-en"),
    PublishedRow("MMBench-CN", "test", "circular accuracy (server)", 81.2, "mmbench-test-cn"),
    PublishedRow("MMBench", "dev", "circular accuracy", 81.4, "mmbench-dev-en"),
    PublishedRow("MMBench-CN", "dev", "circular accuracy", 79.5, "mmbench-dev-cn"),
    PublishedRow("MMVP", "test", "pair accuracy", 56.7, "mmvp"),
    PublishedRow("MME", "perception", "sum of 10 subtasks", 1672.1, "mme", "perception",
                 note="V1.2's run used 5-beam sampling by accident; the later docs show 1687"),
    PublishedRow("MME", "cognition", "sum of 4 subtasks", 509.3, "mme", "cognition", note="later docs: 489"),
    PublishedRow("ScienceQA", "test (image)", "accuracy", 83.3, "scienceqa-img"),
    PublishedRow("POPE", "test", "mean F1 of 3 splits", 88.0, "pope"),
    PublishedRow("TextVQA", "val", "VQA accuracy", 69.7, "textvqa-val",
                 note="with LLaVA's OCR tokens in the question; later docs: 72.5"),
    PublishedRow("SEED", "image", "accuracy", 75.6, "seed-image"),
    PublishedRow("VizWiz", "val", "VQA accuracy", 61.9, "vizwiz-val"),
    PublishedRow("VizWiz", "test", "VQA accuracy (server)", 60.0, "vizwiz-test"),
    PublishedRow("GQA", "testdev-balanced", "accuracy", 64.0, "gqa-testdev", note="GQA train was in the SFT mix"),
    PublishedRow("AI2D", "test", "accuracy", 77.1, "ai2d-test", note="AI2D train was in the SFT mix"),
    PublishedRow("ChartQA", "test", "relaxed accuracy", None, "chartqa-test",
                 note="no V1.2 number; V1.2-Plus docs: 72.8"),
    PublishedRow("DocVQA", "val", "ANLS", None, "docvqa-val", note="no V1.2 number; V1.2-Plus docs: 56.9"),
    PublishedRow("DocVQA", "test", "ANLS (server)", None, "docvqa-test"),
]


def rows_for(benchmark: str) -> list[PublishedRow]:
    return [r for r in PUBLISHED if r.benchmark == benchmark]
