"""Edge cases of each metric rule beyond metric_vectors.jsonl (values worked out by hand from eval-metrics.md)."""

from __future__ import annotations

import random

import pytest

from internvl_chat.eval import metrics as m
from internvl_chat.eval.metrics import score

ANIMALS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


# --- VQA ---------------------------------------------------------------------------------------

def test_digit_comma_deletes_every_punctuation_mark_in_official_but_not_m4c():
    # official: a digit-comma-digit anywhere switches all 21 marks to "delete".
    assert m.vqa_normalize("1,000-2", "official_vqav2") == "10002"
    # m4c deleted the commas first, so '-' becomes a space.
    assert m.vqa_normalize("1,000-2", "evalai_m4c") == "1000 2"


def test_official_period_removal_is_capped_at_32_like_the_reference():
    assert m.vqa_normalize("x" + "." * 40, "official_vqav2") == "x" + "." * 8
    assert m.vqa_normalize("x" + "." * 40, "vlmevalkit") == "x"


def test_lavis_flavour_normalises_the_pred_but_only_punctuates_the_gts():
    gts = ["Two dogs"] * 4 + ["dogs"] * 6
    assert m.vqa_accuracy("Two dogs", gts, "internvl_v12_lavis") == 0.0  # pred "2 dogs" vs raw "Two dogs"
    assert m.vqa_accuracy("Two dogs", gts, "official_vqav2") == 1.0
    assert m.vqa_accuracy("Two dogs", gts, "evalai_m4c") == 1.0


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_leave_one_out_steps(k, expected):
    gts = ["cat"] * k + ["dog"] * (10 - k)
    for flavour in ("internvl_v12_lavis", "official_vqav2", "evalai_m4c", "vlmevalkit"):
        assert m.vqa_accuracy("cat", gts, flavour) == pytest.approx(expected)


def test_vqa_rejects_bad_inputs():
    with pytest.raises(ValueError, match="non-empty list"):
        m.vqa_accuracy("x", [])
    with pytest.raises(ValueError, match="non-empty list"):
        m.vqa_accuracy("x", "x")  # a bare string would be scored character by character
    with pytest.raises(ValueError, match="unknown vqa_accuracy flavour 'lmms'"):
        m.vqa_accuracy("x", ["x"], "lmms")


# --- ANLS --------------------------------------------------------------------------------------

def test_anls_divides_by_the_raw_length():
    # distance 1 between "abcd" and "abce", but the raw pred "abce  " is 6 long.
    assert m.anls("abce  ", ["abcd"]) == pytest.approx(1 - 1 / 6)


def test_anls_keeps_exactly_the_threshold_and_zeroes_below():
    assert m.anls("ax", ["ab"]) == pytest.approx(0.5)
    assert m.anls("axy", ["abc"]) == 0.0
    assert m.anls("", [""]) == 1.0
    assert m.anls_mean(["ax", "ab"], [["ab"], ["ab"]]) == pytest.approx(0.75)


# --- relaxed accuracy and exact match --------------------------------------------------------

def test_relaxed_orientation_matters_near_the_5_percent_border():
    assert m.relaxed_accuracy("95.2", "100", "vlmevalkit_gt_relative") == 1.0  # 4.8 / 100
    assert m.relaxed_accuracy("95.2", "100", "internvl_swapped") == 0.0  # 4.8 / 95.2 > 5 %


def test_relaxed_takes_the_best_of_several_gts_and_reads_percentages():
    assert m.relaxed_accuracy("0.05", "5%") == 1.0
    assert m.relaxed_accuracy("Paris", ["London", "paris"]) == 1.0
    assert m.relaxed_accuracy("Yes.", "Yes") == 0.0


def test_exact_match_flavours():
    assert m.exact_match(" Yes. ", "yes", "llava_gqa_rstrip_period_lower") == 0.0  # no whitespace strip
    assert m.exact_match("Yes...", "yes", "llava_gqa_rstrip_period_lower") == 1.0
    assert m.exact_match(" B ", ["a", "b"], "internvl_strip_lower") == 1.0


# --- yes / no ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("pred", "mme", "pope", "vek"),
    [
        ("yesterday", "yes", "yes", "Unknown"),  # MME looks at the first 4 characters only
        ("nothing", "no", "yes", "Unknown"),
        ("Not at all", "no", "yes", "Unknown"),  # POPE wants the exact token "not"
        ("There is not.", "other", "no", "Unknown"),
        ("no, none", "no", "no", "No"),
        ("Yes and no", "yes", "no", "Unknown"),
        ("Nope", "no", "yes", "Unknown"),
    ],
)
def test_yes_no_flavours(pred, mme, pope, vek):
    assert m.parse_yes_no(pred, "mme_official") == mme
    assert m.parse_yes_no(pred, "pope_official") == pope
    assert m.parse_yes_no(pred, "vlmevalkit") == vek


def test_internvl_mme_postprocess_maps_chinese_and_booleans():
    assert m.internvl_mme_postprocess("是") == "yes"
    assert m.internvl_mme_postprocess("不是\n") == "no"
    assert m.internvl_mme_postprocess("True") == "yes"
    assert m.internvl_mme_postprocess("否，没有") == "no，"


# --- multiple choice ---------------------------------------------------------------------------

def test_post_process_reads_a_leading_capital_as_a_letter():
    assert m.internvl_post_process("Dog", ANIMALS) == "D"  # 'D' of "Dog" is option D (fish)
    assert m.internvl_post_process("a cat and a dog", ANIMALS) == "A"  # first option text in option order
    assert m.internvl_post_process("  E  ", ANIMALS) == "E"


def test_scienceqa_post_process_bracket_and_period_forms():
    assert m.match_choice("E. none of these", ANIMALS, "internvl_post_process_scienceqa") == "E"
    assert m.match_choice("(E) none", ANIMALS, "internvl_post_process_scienceqa") == "E"
    assert score("mcq_match", "internvl_post_process_scienceqa", pred="(E", choices=ANIMALS) == "EXCEPTION:IndexError"


def test_can_infer_answer_is_phrase_rescues_an_early_letter():
    pred = "The correct answer is **B** because the dog barks loudly at night"
    assert m.can_infer(pred, ANIMALS) == "B"
    assert m.can_infer("the answer is b", ANIMALS) == "B"


def test_can_infer_refusals_length_guard_and_article_guard():
    assert m.can_infer("Cannot determine the answer from the picture", ANIMALS) == "Z"
    assert m.can_infer("Failed to obtain answer via API", ANIMALS) is None
    long_text = "the animal in the picture looks a lot like a dog to me"
    assert m.can_infer(long_text, ANIMALS) is None  # longer than twice the option texts
    assert m.can_infer("A big fish swims", ANIMALS) == "A"
    assert m.can_infer("A big fish swims", ANIMALS, article_guard=True) == "D"


def test_choice_validation():
    with pytest.raises(ValueError, match="single upper-case letter"):
        m.match_choice("a", {"a": "cat"})
    with pytest.raises(ValueError, match="unknown match_choice flavour"):
        m.match_choice("A", ANIMALS, "lmms")


# --- MMMU --------------------------------------------------------------------------------------

ORGANELLES = {"A": "mitochondria", "B": "nucleus", "C": "ribosome", "D": "golgi apparatus"}


def test_mmmu_random_fallback_replays_seed_42_in_call_order():
    m.reset_mmmu_random()
    got = [m.mmmu_parse_multi_choice(text, ORGANELLES) for text in ("nucleus", "E", "D) golgi")]
    replay = random.Random(42)
    assert got == [replay.choice(list(ORGANELLES)) for _ in range(3)]
    assert m.mmmu_parse_multi_choice("??", ORGANELLES, rng=random.Random(7)) == random.Random(7).choice("ABCD")


def test_mmmu_mc_rightmost_candidate_wins():
    assert m.mmmu_parse_multi_choice("(A) or maybe (B)", ORGANELLES) == "B"
    assert m.mmmu_parse_multi_choice("it is about the ribosome and not the nucleus", ORGANELLES) == "B"


def test_mmmu_open_comma_grouped_number_adds_its_last_group():
    parsed = m.mmmu_parse_open("1,000")
    assert set(parsed) == {1000.0, 0.0}
    assert m.mmmu_eval_open("0", parsed)  # the quirk documented in eval-metrics.md
    assert not m.mmmu_eval_open("10", parsed)


def test_mmmu_open_takes_the_shortest_tail_after_an_indicator():
    assert set(m.mmmu_parse_open("So the result is 12 meters\nthus x = 5")) == {"12 meters", 12.0, 5.0}


def test_mmmu_subject_and_multi_choice_gold_lists():
    assert m.mmmu_subject_of("validation_Art_Theory_12") == "Art_Theory"
    assert m.mmmu_eval_multi_choice(["A", "C"], "C")
    assert not m.mmmu_eval_multi_choice("A", "a")


# --- MathVista ---------------------------------------------------------------------------------

def test_mathvista_integer_float_and_list_rules():
    assert m.mathvista_normalize("-3.7", None, "free_form", "integer") == "-3"  # truncates toward zero
    assert m.mathvista_normalize("1e3", None, "free_form", "integer") == "1000"
    assert m.mathvista_normalize("3.14159", None, "free_form", "float", 2) == "3.14"
    assert m.mathvista_normalize("2.0", None, "free_form", "float", 1) == "2.0"
    assert m.mathvista_normalize("x", None, "free_form", "float", 1) is None
    assert m.mathvista_normalize([1, 2], None, "free_form", "list") == "[1, 2]"


def test_mathvista_multi_choice_letter_forms():
    choices = ["3/11", "8/11", "6/11"]
    assert m.mathvista_normalize("(c) hmm", choices, "multi_choice", "text") == "6/11"
    assert m.mathvista_normalize("8/12", choices, "multi_choice", "text") == "8/11"  # nearest by Levenshtein
    assert m.mathvista_normalize("", choices, "multi_choice", "text", ignore_empty_extractions=True) is None
    with pytest.raises(ValueError, match="non-empty choices"):
        m.mathvista_normalize("A", None, "multi_choice", "text")


def test_vlmevalkit_post_check_rules():
    assert m.vlmevalkit_post_check("14", "14", None, "free_form", "integer")
    assert not m.vlmevalkit_post_check("[1, 2]", "[1, 2]", None, "free_form", "list")
    assert m.vlmevalkit_post_check("B", "8/11", ["3/11", "8/11"], "multi_choice", "text")
    with pytest.raises(ValueError, match="not one of the choices"):
        m.vlmevalkit_post_check("B", "9/11", ["3/11", "8/11"], "multi_choice", "text")


def test_mathvista_accuracy_names_the_record_with_a_missing_field():
    with pytest.raises(ValueError, match="pid=7: missing field"):
        m.mathvista_accuracy({"7": {"extraction": "1", "answer": "1"}})


# --- POPE, MME, MMVP, MMBench ------------------------------------------------------------------

def test_pope_zero_division_is_the_reference_crash():
    with pytest.raises(ZeroDivisionError, match="divides by zero"):
        m.pope_metrics(["yes", "no"], ["no", "no"])
    assert score("pope_split_parse", labels=["yes", "no"], preds=["no", "no"]) == "EXCEPTION:ZeroDivisionError"
    assert score("pope_split_parse", "vlmevalkit_POPE_rating", labels=["Yes", "No"], preds=["no", "no"]) == {
        "acc": 50.0, "precision": 0.0, "recall": 0.0, "f1_overall": 0.0,
    }


def test_pope_per_category_and_headline():
    rows = [
        {"category": "random", "label": "yes", "pred": "Yes"},
        {"category": "random", "label": "no", "pred": "No"},
        {"category": "popular", "label": "yes", "pred": "Yes"},
        {"category": "popular", "label": "no", "pred": "Yes"},
    ]
    per = m.pope_by_category(rows)
    assert per["random"]["f1"] == 1.0
    assert per["popular"]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert m.pope_headline_f1(per) == pytest.approx((1.0 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="paired by position"):
        m.pope_metrics(["yes"], ["yes", "no"])
    with pytest.raises(ValueError, match="'Yes'/'No'"):
        m.pope_metrics(["yes"], ["yes"], "vlmevalkit_POPE_rating")


def test_mme_official_pairs_by_position_vlmevalkit_by_image():
    rows = [["a.jpg", "Yes", "Yes"], ["b.jpg", "Yes", "Yes"], ["a.jpg", "No", "No"], ["b.jpg", "No", "Yes"]]
    official = m.mme_subtask_score(rows, "mme_official")
    vek = m.mme_subtask_score(rows, "vlmevalkit_MME_rating")
    assert official["acc"] == vek["acc"] == 0.75
    assert official["acc_plus"] == 0.5 and vek["acc_plus"] == 0.5
    rows_swapped = [["a.jpg", "Yes", "Yes"], ["b.jpg", "Yes", "No"], ["a.jpg", "No", "No"], ["b.jpg", "No", "Yes"]]
    assert m.mme_subtask_score(rows_swapped, "mme_official")["acc_plus"] == 0.0  # (a,b) and (a,b) pairs
    assert m.mme_subtask_score(rows_swapped, "vlmevalkit_MME_rating")["acc_plus"] == 0.5  # image a is right


def test_mme_postprocess_flag_bad_rows_and_totals():
    rows = [["a.jpg", "Yes", "是"], ["a.jpg", "No", "否"]]
    assert m.mme_subtask_score(rows)["score"] == 0.0  # raw Chinese is "other"
    assert m.mme_subtask_score(rows, internvl_postprocess=True)["score"] == 200.0
    with pytest.raises(ValueError, match="two consecutive rows"):
        m.mme_subtask_score(rows[:1])
    with pytest.raises(ValueError, match="row 0 .*gt 'maybe'"):
        m.mme_subtask_score([["a.jpg", "maybe", "yes"], ["a.jpg", "No", "no"]], subtask="count")
    scores = {name: 100.0 for name in m.MME_PERCEPTION + m.MME_COGNITION}
    assert m.mme_totals(scores) == {"perception": 1000.0, "cognition": 400.0}
    del scores["OCR"]
    with pytest.raises(ValueError, match="missing subtask score.*OCR"):
        m.mme_totals(scores)


def test_mmvp_pairs():
    assert m.mmvp_pair_accuracy([True, True, False, True]) == {"Average": 0.75, "Overall": 0.5}
    with pytest.raises(ValueError, match="even number"):
        m.mmvp_pair_accuracy([1, 1, 0])


def test_mmbench_categories_nan_options_and_missing_first_pass():
    nan = float("nan")
    rows = [
        {"index": 5, "answer": "A", "A": "cat", "B": "dog", "C": nan, "category": "CP"},
        {"index": 1_000_005, "answer": "B", "A": "dog", "B": "cat", "C": nan, "category": "CP"},
        {"index": 6, "answer": "A", "A": "up", "B": "down", "category": "LR"},
    ]
    assert m.row_choices(rows[0]) == {"A": "cat", "B": "dog"}
    result = m.mmbench_circular(rows, ["A", "cat", "C"])  # "C" is not an option of group 6
    assert result.group_hits == {5: 1, 6: 0}
    assert result.accuracy == 0.5
    assert result.accuracy_by("category") == {"CP": 1.0, "LR": 0.0}
    with pytest.raises(ValueError, match="no pass-0 row"):
        m.mmbench_circular(rows[1:2], ["B"])


def test_can_infer_accepts_numeric_option_cells_like_vlmevalkit():
    assert m.can_infer("12", {"A": 7, "B": 12}) == "B"
    with pytest.raises(ValueError, match="option A text must be str"):
        m.internvl_post_process("12", {"A": 7, "B": 12})


def test_pope_counts_validation():
    assert m.pope_metrics_from_counts(1.0, 1, 1, 1)["accuracy"] == 0.5
    with pytest.raises(ValueError, match="FN must be a non-negative whole number"):
        m.pope_metrics_from_counts(1, 1, 1, -1)
