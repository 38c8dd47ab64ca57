"""Every vector in shared/reference/metric_vectors.jsonl through `score`, plus the registry contract."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from internvl_chat.eval.metrics import BENCHMARK_FLAVOURS, REGISTRY, default_flavour, list_metrics, score

END_TO_END_ROOTS = {"mmmu_end_to_end": "INTERNVL_MMMU_REPO", "mathvista_end_to_end": "INTERNVL_MATHVISTA_REPO"}


def _vectors_path() -> Path:
    """The project's shared reference file (beside or inside the checkout, or $INTERNVL_METRIC_VECTORS),
    else the copy vendored in tests/data so a bare clone still runs every vector."""
    repo = Path(__file__).resolve().parents[1]
    from_env = os.environ.get("INTERNVL_METRIC_VECTORS")
    candidates = [Path(from_env)] if from_env else []
    candidates += [repo.parent / "shared" / "reference" / "metric_vectors.jsonl",
                   repo / "shared" / "reference" / "metric_vectors.jsonl",
                   repo / "tests" / "data" / "metric_vectors.jsonl"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"metric_vectors.jsonl not found; looked at {', '.join(map(str, candidates))}")


def _load_vectors() -> list[dict]:
    path = _vectors_path()
    vectors = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            vector = json.loads(line)
            vector["line"] = number
            vectors.append(vector)
    return vectors


VECTORS = _load_vectors()


def _vector_id(vector: dict) -> str:
    shown = " ".join(f"{key}={json.dumps(value)}" for key, value in vector["input"].items())
    shown = re.sub(r"\s+", " ", shown.replace('"', "'"))[:60]
    return f"L{vector['line']:03d}-{vector['metric']}-{vector['flavour']}-{shown}"


def _resolve_input(vector: dict) -> dict:
    inputs = dict(vector["input"])
    # The VLMEvalKit MME row reuses the rows of the official row of the same subtask.
    if inputs.get("rows") == "same as mme_official":
        source = next(
            v for v in VECTORS
            if v["metric"] == vector["metric"] and v["flavour"] == "mme_official"
            and v["input"]["subtask"] == inputs["subtask"]
        )
        inputs["rows"] = source["input"]["rows"]
    return inputs


def assert_matches(got, expected, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: expected a dict, got {got!r}"
        assert set(got) == set(expected), f"{where}: keys {sorted(got)} != {sorted(expected)}"
        for key, value in expected.items():
            if key == "parsed":  # a set in the reference; the file lists it sorted by str()
                assert set(got[key]) == set(value), f"{where}.parsed: {got[key]!r} != {value!r}"
            else:
                assert_matches(got[key], value, f"{where}.{key}")
    elif isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert got == expected and type(got) is type(expected), f"{where}: {got!r} != {expected!r}"
    elif isinstance(expected, (int, float)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r} is not a number"
        assert got == pytest.approx(expected, abs=1e-6), f"{where}: {got!r} != {expected!r}"
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


LOCAL_VECTORS = [v for v in VECTORS if v["metric"] not in END_TO_END_ROOTS]
END_TO_END_VECTORS = [v for v in VECTORS if v["metric"] in END_TO_END_ROOTS]


def test_vectors_file_is_complete():
    assert len(VECTORS) >= 242
    assert {v["metric"] for v in VECTORS} <= set(REGISTRY)


@pytest.mark.parametrize("vector", LOCAL_VECTORS, ids=_vector_id)
def test_vector(vector):
    got = score(vector["metric"], vector["flavour"], **_resolve_input(vector))
    assert_matches(got, vector["expected"], _vector_id(vector))


# End-to-end vectors name fixture files inside the MMMU / MathVista repositories, which this project
# does not redistribute. They run against a checkout when its env var is set; the same code path runs
# on fixture files written by test_metrics_end_to_end.py, and without a checkout `score` must say
# exactly what is missing.
AVAILABLE_END_TO_END = [v for v in END_TO_END_VECTORS if os.environ.get(END_TO_END_ROOTS[v["metric"]])]


if AVAILABLE_END_TO_END:  # (an empty parametrisation would show up as a skip)
    @pytest.mark.parametrize("vector", AVAILABLE_END_TO_END, ids=_vector_id)
    def test_end_to_end_vector(vector):
        got = score(vector["metric"], vector["flavour"], **vector["input"])
        assert_matches(got, vector["expected"], _vector_id(vector))


def test_end_to_end_vectors_without_their_repository_name_the_missing_root(monkeypatch):
    assert {v["metric"] for v in END_TO_END_VECTORS} == set(END_TO_END_ROOTS)
    for vector in END_TO_END_VECTORS:
        env_var = END_TO_END_ROOTS[vector["metric"]]
        monkeypatch.delenv(env_var, raising=False)
        with pytest.raises(FileNotFoundError, match=env_var):
            score(vector["metric"], vector["flavour"], **vector["input"])


def test_every_vector_flavour_is_registered():
    known = list_metrics()
    for vector in VECTORS:
        assert vector["flavour"] in known[vector["metric"]], (vector["metric"], vector["flavour"])


def test_list_metrics_puts_the_default_first():
    for metric, flavours in list_metrics().items():
        assert flavours[0] == default_flavour(metric)
        assert len(set(flavours)) == len(flavours)


@pytest.mark.parametrize(
    ("metric", "inputs", "expected"),
    [
        # InternVL's ChartQA scorer divides by |pred| (swapped), so 105.2 vs 100 passes.
        ("relaxed_accuracy", {"gt": "100", "pred": "105.2"}, 1.0),
        # GQA converter strips trailing periods.
        ("exact_match", {"gt": "yes", "pred": "Yes."}, 1.0),
        # V1.2 TextVQA/VizWiz: the LAVIS VQAEval normalises the pred even when the gts are identical.
        ("vqa_accuracy", {"gts": ["unanswerable"] * 10, "pred": "Unanswerable"}, 1.0),
        ("mcq_match", {"pred": "(B)", "choices": {"A": "cat", "B": "dog"}}, "(B)"),
        ("yesno_parse", {"pred": "There is a dog."}, "other"),
    ],
)
def test_default_flavour_is_the_internvl_v12_one(metric, inputs, expected):
    assert score(metric, **inputs) == expected


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown metric 'bleu'.*anls.*vqa_accuracy"):
        score("bleu", pred="a")


def test_unknown_flavour_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown flavour 'lmms'.*internvl_swapped.*vlmevalkit_gt_relative"):
        score("relaxed_accuracy", "lmms", gt="1", pred="1")


def test_missing_input_is_a_type_error_not_a_silent_default():
    with pytest.raises(TypeError):
        score("anls", "official_rrc", pred="x")


def test_reference_crash_is_reported_as_exception_string_only_by_score():
    from internvl_chat.eval.metrics import internvl_post_process

    choices = {"A": "cat", "B": "dog"}
    assert score("mcq_match", "internvl_post_process", pred="   ", choices=choices) == "EXCEPTION:IndexError"
    with pytest.raises(IndexError, match="empty prediction"):
        internvl_post_process("   ", choices)


def test_mme_rows_placeholder_is_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="rows must be a list"):
        score("mme_subtask", "vlmevalkit_MME_rating", subtask="count", rows="same as mme_official")


def test_benchmark_flavour_table_names_registered_flavours():
    known = list_metrics()
    for benchmark, sides in BENCHMARK_FLAVOURS.items():
        assert set(sides) == {"internvl", "vlmevalkit"}, benchmark
        for mapping in sides.values():
            for metric, flavour in mapping.items():
                assert flavour in known[metric], (benchmark, metric, flavour)
