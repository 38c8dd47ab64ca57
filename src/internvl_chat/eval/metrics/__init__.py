"""Benchmark metrics for the InternVL-Chat-V1.2 evaluation, every flavour behind one registry.

``score(metric, flavour=None, **input)`` runs one flavour (see
``list_metrics()``); the named functions below are the public building blocks
the benchmarks call per sample and per split. docs/metrics.md explains the
defaults and how the flavours differ.
"""

from .anls import anls, anls_mean
from .choice import can_infer, internvl_post_process, match_choice
from .errors import ReferenceIndexError, ReferenceRaisesError, ReferenceZeroDivisionError
from .exact import exact_match
from .mathvista import (
    MathVistaScore,
    mathvista_accuracy,
    mathvista_end_to_end,
    mathvista_is_correct,
    mathvista_normalize,
    vlmevalkit_post_check,
)
from .mmbench import CircularResult, mmbench_circular, row_choices
from .mme import MME_COGNITION, MME_PERCEPTION, MMERow, mme_subtask_score, mme_totals
from .mmmu import (
    MMMU_DISCIPLINES,
    MMMUScore,
    mmmu_end_to_end,
    mmmu_eval_multi_choice,
    mmmu_eval_open,
    mmmu_extract_numbers,
    mmmu_normalize_str,
    mmmu_parse_multi_choice,
    mmmu_parse_open,
    mmmu_score,
    mmmu_subject_of,
    reset_mmmu_random,
)
from .mmvp import mmvp_pair_accuracy
from .pope import PopeCounts, pope_by_category, pope_counts, pope_headline_f1, pope_metrics, pope_metrics_from_counts
from .registry import (BENCHMARK_FLAVOURS, REGISTRY, MetricSpec, benchmark_flavour, default_flavour, list_metrics,
                       run_metric, score)
from .relaxed import relaxed_accuracy, relaxed_correctness
from .vqa import vqa_accuracy, vqa_normalize
from .yesno import internvl_mme_postprocess, parse_yes_no

__all__ = [
    "BENCHMARK_FLAVOURS", "REGISTRY", "MME_COGNITION", "MME_PERCEPTION", "MMMU_DISCIPLINES",
    "CircularResult", "MMERow", "MMMUScore", "MathVistaScore", "MetricSpec", "PopeCounts",
    "ReferenceIndexError", "ReferenceRaisesError", "ReferenceZeroDivisionError",
    "anls", "anls_mean", "benchmark_flavour", "can_infer", "default_flavour", "exact_match", "internvl_mme_postprocess",
    "internvl_post_process", "list_metrics", "match_choice", "mathvista_accuracy", "mathvista_end_to_end",
    "mathvista_is_correct", "mathvista_normalize", "mmbench_circular", "mme_subtask_score", "mme_totals", "run_metric",
    "mmmu_end_to_end", "mmmu_eval_multi_choice", "mmmu_eval_open", "mmmu_extract_numbers", "mmmu_normalize_str",
    "mmmu_parse_multi_choice", "mmmu_parse_open", "mmmu_score", "mmmu_subject_of", "mmvp_pair_accuracy",
    "parse_yes_no", "pope_by_category", "pope_counts", "pope_headline_f1", "pope_metrics",
    "pope_metrics_from_counts", "relaxed_accuracy", "relaxed_correctness", "reset_mmmu_random", "row_choices",
    "score", "vlmevalkit_post_check", "vqa_accuracy", "vqa_normalize",
]
