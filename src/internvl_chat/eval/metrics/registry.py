"""One entry point for every metric flavour: ``score(metric, flavour, **input)``.

Metric and flavour names, inputs and output shapes follow
``shared/reference/metric_vectors.jsonl`` (eval-metrics.md "Test vectors"); a
few extra flavours (e.g. ``internvl_v12_lavis`` VQA accuracy) are ours. The
default flavour of each metric is the one InternVL used for the V1.2 table.

Where the reference implementation raises on an input (e.g. InternVL's
``post_process`` on an empty answer), the public function raises a
:class:`~.errors.ReferenceRaisesError` and ``score`` returns the string
``"EXCEPTION:<ExceptionName>"``, the form used by the vectors file. Every other
error (bad input, unknown names) propagates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .anls import anls
from .choice import CHOICE_FLAVOURS, match_choice
from .errors import ReferenceRaisesError
from .exact import EXACT_MATCH_FLAVOURS, exact_match
from .mathvista import mathvista_end_to_end, mathvista_is_correct, mathvista_normalize, vlmevalkit_post_check
from .mmbench import mmbench_circular
from .mme import mme_subtask_score
from .mmmu import mmmu_end_to_end, mmmu_eval_open, mmmu_parse_multi_choice, mmmu_parse_open
from .mmvp import mmvp_pair_accuracy
from .pope import POPE_FLAVOURS, pope_metrics, pope_metrics_from_counts
from .relaxed import RELAXED_FLAVOURS, relaxed_accuracy
from .vqa import VQA_FLAVOURS, vqa_accuracy, vqa_normalize
from .yesno import YESNO_FLAVOURS, parse_yes_no

Scorer = Callable[..., Any]


@dataclass(frozen=True)
class MetricSpec:
    """The flavours of one metric (name -> callable taking the vector's ``input`` keys); the first is the default."""

    description: str
    flavours: dict[str, Scorer]

    @property
    def default(self) -> str:
        return next(iter(self.flavours))


def _flavoured(fn: Scorer, flavours: tuple[str, ...]) -> dict[str, Scorer]:
    """``fn`` once per flavour name, for metric functions that take the flavour as their ``flavour`` argument."""
    return {f: partial(fn, flavour=f) for f in flavours}


def _mmmu_open(response: str, gold: str | list[str]) -> dict[str, Any]:
    parsed = mmmu_parse_open(response)
    return {"parsed": sorted(parsed, key=str), "correct": mmmu_eval_open(gold, parsed)}


def _mathvista_official(extraction, choices, question_type, answer_type, answer, precision=None) -> dict[str, Any]:
    normalized = mathvista_normalize(extraction, choices, question_type, answer_type, precision)
    return {"normalized": normalized, "correct": mathvista_is_correct(normalized, answer)}


def _mathvista_vlmevalkit(extraction, choices, question_type, answer_type, answer, precision=None) -> dict[str, Any]:
    del precision  # VLMEvalKit compares floats exactly, without rounding
    return {"correct": vlmevalkit_post_check(extraction, answer, choices, question_type, answer_type)}


def _mmbench(rows, preds) -> dict[str, Any]:
    result = mmbench_circular(rows, preds)
    return {"group_hits": {str(group): hit for group, hit in result.group_hits.items()}}


def _mme(flavour: str, keys: tuple[str, ...]) -> Scorer:
    def run(rows, subtask: str = "subtask") -> dict[str, float]:
        if isinstance(rows, str):
            raise ValueError(f"mme_subtask: rows must be a list of [image, gt, pred], got the string {rows!r}")
        result = mme_subtask_score(rows, flavour, subtask=subtask)
        return {key: result[key] for key in keys}

    return run


def _counts(TP: int, FP: int, TN: int, FN: int, case: str | None = None) -> dict[str, float]:  # noqa: N803
    del case  # a label for the row only
    return pope_metrics_from_counts(TP, FP, TN, FN)


def _mmmu_end_to_end(output_file, answer_file, root=None) -> dict[str, int]:
    result = mmmu_end_to_end(output_file, answer_file, root)
    return {"correct": result.correct, "total": result.total}


REGISTRY: dict[str, MetricSpec] = {
    "vqa_normalize": MetricSpec("VQA answer normalisation of one string", {
        "internvl_v12_lavis": partial(vqa_normalize, flavour="internvl_v12_lavis"),
        "official_vqav2_when_gts_differ": partial(vqa_normalize, flavour="official_vqav2"),
        "evalai_m4c": partial(vqa_normalize, flavour="evalai_m4c"),
        "vlmevalkit": partial(vqa_normalize, flavour="vlmevalkit"),
    }),
    "vqa_accuracy": MetricSpec("10-annotator VQA accuracy of one question (TextVQA, VizWiz)",
                               _flavoured(vqa_accuracy, VQA_FLAVOURS)),
    "anls": MetricSpec("DocVQA ANLS", {"official_rrc": lambda gts, pred: anls(pred, gts)}),
    "relaxed_accuracy": MetricSpec("ChartQA relaxed accuracy", _flavoured(relaxed_accuracy, RELAXED_FLAVOURS)),
    "exact_match": MetricSpec("exact-match accuracy (GQA, AI2D)", _flavoured(exact_match, EXACT_MATCH_FLAVOURS)),
    "yesno_parse": MetricSpec("yes/no answer parsing (MME, POPE)", _flavoured(parse_yes_no, YESNO_FLAVOURS)),
    "mcq_match": MetricSpec("multiple-choice letter matching", _flavoured(match_choice, CHOICE_FLAVOURS)),
    "mmmu_mc_parse": MetricSpec("MMMU parse_multi_choice_response", {
        "mmmu_official": lambda response, index2ans, all_choices=None: mmmu_parse_multi_choice(
            response, index2ans, all_choices)}),
    "mmmu_open": MetricSpec("MMMU open-question parse + eval_open", {"mmmu_official": _mmmu_open}),
    "mmmu_end_to_end": MetricSpec("MMMU main_eval_only over an output file and an answer dict",
                                  {"mmmu_official_main_eval_only": _mmmu_end_to_end}),
    "mathvista_normalize": MetricSpec("MathVista normalisation of an extraction + comparison", {
        "mathvista_official": _mathvista_official, "vlmevalkit_post_check": _mathvista_vlmevalkit}),
    "mathvista_end_to_end": MetricSpec("MathVista re-scoring of an output_*.json", {
        "mathvista_official_normalize_from_extraction": lambda file, root=None: mathvista_end_to_end(file, root)}),
    "pope_metrics_from_counts": MetricSpec("POPE metrics from counts", {"pope_official": _counts}),
    "pope_split_parse": MetricSpec("POPE metrics of one split from labels and raw answers",
                                   _flavoured(pope_metrics, POPE_FLAVOURS)),
    "mme_subtask": MetricSpec("MME subtask acc / acc+ / score", {
        "mme_official": _mme("mme_official", ("acc", "acc_plus", "score")),
        "vlmevalkit_MME_rating": _mme("vlmevalkit_MME_rating", ("score",)),
    }),
    "mmvp_pairs": MetricSpec("MMVP pair accuracy", {"vlmevalkit_report_acc_MMVP": mmvp_pair_accuracy}),
    "mmbench_circular": MetricSpec("MMBench circular evaluation, exact matching",
                                   {"vlmevalkit_mcq_circular_eval_exact_matching": _mmbench}),
}

# Which metric/flavour each benchmark uses: "internvl" = the V1.2-era InternVL
# scripts (our default), "vlmevalkit" = the OpenVLM-leaderboard flavour.
BENCHMARK_FLAVOURS: dict[str, dict[str, dict[str, str]]] = {
    "textvqa": {"internvl": {"vqa_accuracy": "internvl_v12_lavis"}, "vlmevalkit": {"vqa_accuracy": "vlmevalkit"}},
    "vizwiz": {  # vqa_normalize: the answers written into the test-split submission file
        "internvl": {"vqa_accuracy": "internvl_v12_lavis", "vqa_normalize": "evalai_m4c"},
        "vlmevalkit": {"vqa_accuracy": "vlmevalkit", "vqa_normalize": "evalai_m4c"},
    },
    "docvqa": {"internvl": {"anls": "official_rrc"}, "vlmevalkit": {"anls": "official_rrc"}},
    "chartqa": {
        "internvl": {"relaxed_accuracy": "internvl_swapped"},
        "vlmevalkit": {"relaxed_accuracy": "vlmevalkit_gt_relative"},
    },
    "gqa": {
        "internvl": {"exact_match": "llava_gqa_rstrip_period_lower"},
        "vlmevalkit": {"exact_match": "vlmevalkit_strip_lower"},
    },
    "ai2d": {"internvl": {"exact_match": "internvl_strip_lower"}, "vlmevalkit": {"mcq_match": "vlmevalkit_can_infer"}},
    "mme": {"internvl": {"mme_subtask": "mme_official"}, "vlmevalkit": {"mme_subtask": "vlmevalkit_MME_rating"}},
    "pope": {
        "internvl": {"pope_split_parse": "pope_official"},
        "vlmevalkit": {"pope_split_parse": "vlmevalkit_POPE_rating"},
    },
    "mmmu": {
        "internvl": {"mcq_match": "internvl_post_process", "mmmu_open": "mmmu_official",
                     "mmmu_end_to_end": "mmmu_official_main_eval_only"},
        # VLMEvalKit scores an open question as a two-option MCQ: A = gold, B = "Other Answers"
        "vlmevalkit": {"mcq_match": "vlmevalkit_can_infer"},
    },
    "mathvista": {
        "internvl": {"mathvista_normalize": "mathvista_official"},
        "vlmevalkit": {"mathvista_normalize": "vlmevalkit_post_check"},
    },
    "mmbench": {
        # Letters are extracted with InternVL's post-processing, then grouped circularly as the server does.
        "internvl": {"mcq_match": "internvl_post_process",
                     "mmbench_circular": "vlmevalkit_mcq_circular_eval_exact_matching"},
        "vlmevalkit": {"mcq_match": "vlmevalkit_can_infer",
                       "mmbench_circular": "vlmevalkit_mcq_circular_eval_exact_matching"},
    },
    "scienceqa": {
        "internvl": {"mcq_match": "internvl_post_process_scienceqa"},
        "vlmevalkit": {"mcq_match": "vlmevalkit_can_infer"},
    },
    # InternVL's seed/calculation.py compares the first character of the prediction with the gold
    # letter; that one-liner lives in eval/benchmarks/seed.py, not in this registry.
    "seed": {"internvl": {}, "vlmevalkit": {"mcq_match": "vlmevalkit_can_infer"}},
    "mmvp": {
        "internvl": {"mcq_match": "internvl_post_process", "mmvp_pairs": "vlmevalkit_report_acc_MMVP"},
        "vlmevalkit": {"mcq_match": "vlmevalkit_can_infer", "mmvp_pairs": "vlmevalkit_report_acc_MMVP"},
    },
    # the built-in synthetic benchmark scores the same way under both flavours
    "synthetic": {
        "internvl": {"mcq_match": "internvl_post_process", "vqa_normalize": "evalai_m4c"},
        "vlmevalkit": {"mcq_match": "internvl_post_process", "vqa_normalize": "evalai_m4c"},
    },
}


def benchmark_flavour(benchmark: str, side: str, metric: str) -> str | None:
    """The metric flavour `benchmark` uses under scoring `side` ("internvl" / "vlmevalkit"); None when that
    side does not use `metric` at all. The benchmarks' score() functions read their flavours from here."""
    try:
        sides = BENCHMARK_FLAVOURS[benchmark]
    except KeyError:
        raise ValueError(f"no scoring flavours for benchmark {benchmark!r}; add it to BENCHMARK_FLAVOURS") from None
    if side not in sides:
        raise ValueError(f"unknown scoring flavour {side!r}; known: {', '.join(sides)}")
    return sides[side].get(metric)


def list_metrics() -> dict[str, list[str]]:
    """``{metric: [flavours]}``, the default flavour first."""
    return {
        name: [spec.default] + [f for f in spec.flavours if f != spec.default] for name, spec in REGISTRY.items()
    }


def default_flavour(metric: str) -> str:
    """The default (InternVL V1.2) flavour of ``metric``."""
    return _spec(metric).default


def _spec(metric: str) -> MetricSpec:
    if metric not in REGISTRY:
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[metric]


def run_metric(metric: str, flavour: str | None = None, **inputs: Any) -> Any:
    """Like `score`, but where the reference implementation raises, this raises `ReferenceRaisesError`."""
    spec = _spec(metric)
    chosen = spec.default if flavour is None else flavour
    if chosen not in spec.flavours:
        raise ValueError(f"unknown flavour {chosen!r} for metric {metric!r}; known: {', '.join(spec.flavours)}")
    return spec.flavours[chosen](**inputs)


def score(metric: str, flavour: str | None = None, **inputs: Any) -> Any:
    """Run one metric flavour on one input; ``flavour=None`` picks the metric's default.

    Returns a float, str, None or dict shaped like ``expected`` in
    metric_vectors.jsonl, or ``"EXCEPTION:<Name>"`` where the reference raises.
    """
    try:
        return run_metric(metric, flavour, **inputs)
    except ReferenceRaisesError as err:
        return f"EXCEPTION:{err.reference_exception}"
