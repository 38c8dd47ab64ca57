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


def test_scientific_notation_is_a_number_everywhere_yaml_is_read(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-5` as a string; inside a free-form mapping that string reached
    transformers (an internal error). Config files and overrides read it as the number it means."""
    from internvl_chat.overrides import load_yaml
    from internvl_chat.train.config import load_config

    assert load_yaml("a: 1e-5\nb: -2E+3\nc: '1e-5'\nd: 1e5x") == {"a": 1e-5, "b": -2000.0, "c": "1e-5", "d": "1e5x"}
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 2e-5}\nmodel: {preset: tiny, preset_args: {llm_config: {model_type: llama, rms_norm_eps: 1e-6}}}\n"
                    "data: {source: synthetic}\n")
    cfg = load_config(path, ["model.preset_args={llm_config: {model_type: llama, rms_norm_eps: 1e-6}, image_size: 56}"])
    assert cfg.optim.lr == 2e-5
    assert cfg.model.preset_args == {"llm_config": {"model_type": "llama", "rms_norm_eps": 1e-6}, "image_size": 56}
    assert isinstance(load_config(path).model.preset_args["llm_config"]["rms_norm_eps"], float)



@pytest.mark.parametrize("where", ["file", "override"])
def test_demo_threads_that_is_not_a_number_is_a_config_error(where, tmp_path):
    from internvl_chat.demo.config import DEFAULT_CONFIG, DemoConfigError, load_demo_config

    path = tmp_path / "demo.yaml"
    path.write_text(DEFAULT_CONFIG.read_text() + ("\nthreads: many\n" if where == "file" else ""))
    with pytest.raises(DemoConfigError, match="threads"):
        load_demo_config(path, ["threads=many"] if where == "override" else [])
