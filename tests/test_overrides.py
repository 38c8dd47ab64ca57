"""The shared override parser: lenient for the trainer's command line, strict for the demo's YAML."""

import pytest

from internvl_chat.overrides import OverrideTypeError, coerce


@pytest.mark.parametrize("value,annotation,expected", [
    ("yes", bool, True), ("off", bool, False), (1, bool, True), ("1e3", int, 1000), ("7", int, 7),
    ("0.5", float, 0.5), (3, str, "3"), ("none", int | None, None), ("4", int | None, 4), ([1, 2], list, [1, 2]),
])
def test_lenient_accepts_command_line_spellings(value, annotation, expected):
    assert coerce(value, annotation, strict=False) == expected


@pytest.mark.parametrize("value,annotation", [
    ("yes", bool), (1, bool), ("7", int), (True, int), (2.5, int), ("0.5", float), (3, str), ([1], dict),
])
def test_strict_refuses_values_of_another_yaml_type(value, annotation):
    with pytest.raises(OverrideTypeError):
        coerce(value, annotation, strict=True)


def test_strict_accepts_exact_types_and_int_for_float():
    assert coerce(True, bool, strict=True) is True
    assert coerce(3, float, strict=True) == 3.0 and isinstance(coerce(3, float, strict=True), float)
    assert coerce("x", str, strict=True) == "x"
    assert coerce(None, str | None, strict=True) is None


@pytest.mark.parametrize("strict", [False, True])
def test_null_for_a_required_field_is_flagged(strict):
    with pytest.raises(OverrideTypeError) as e:
        coerce(None, int, strict=strict)
    assert e.value.null
    with pytest.raises(OverrideTypeError) as e:
        coerce(2.5, int, strict=strict)
    assert not e.value.null and "2.5" in str(e.value)
