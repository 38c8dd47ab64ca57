"""`internvl-chat chat`: one-shot mode through the real command, and the interactive loop's commands."""

import io
import subprocess
import sys

import pytest
from PIL import Image

from internvl_chat.infer.chat_cli import ChatSession, interactive
from internvl_chat.cli import main as cli_main
from internvl_chat.infer.engine import InferenceEngine, SamplingParams
from internvl_chat.model.presets import init_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return init_model_dir("tiny", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(path)
    return path


def _reference(model_dir, image_path, question, max_tokens):
    engine = InferenceEngine.from_model_dir(model_dir)
    pv = engine.image_tensor(Image.open(image_path).convert("RGB")).unsqueeze(0)
    return engine.model.chat(engine.tokenizer, pv, question, dict(max_new_tokens=max_tokens, do_sample=False))


def test_one_shot_prompt_through_the_command(model_dir, image_path):
    cmd = [sys.executable, "-m", "internvl_chat.cli", "chat", "--model", str(model_dir), "--image", str(image_path),
           "--prompt", "what color is it", "--max-tokens", "10", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _reference(model_dir, image_path, "what color is it", 10)


def test_one_shot_with_a_broken_image_fails_clearly(model_dir, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert cli_main(["chat", "--model", str(model_dir), "--image", str(bad), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert f"cannot load image {bad}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli_main(["chat", "--model", str(tmp_path), "--prompt", "hi"]) == 2
    assert "is not a model folder" in capsys.readouterr().err


def test_interactive_history_image_reset_and_quit(model_dir, image_path, tmp_path):
    engine = InferenceEngine.from_model_dir(model_dir)
    session = ChatSession(engine, SamplingParams(max_new_tokens=8))
    lines = iter([f"/image {tmp_path / 'missing.png'}", f"/image {image_path}", "what color is it", "",
                  "and why", "/reset", "/bogus", "hello", "/quit", "never read"])
    out, err = io.StringIO(), io.StringIO()
    assert interactive(session, read=lambda _: next(lines), out=out, err=err) == 0
    assert next(lines) == "never read"  # /quit stopped the loop
    assert "file not found" in err.getvalue() and "unknown command '/bogus'" in err.getvalue()
    text = out.getvalue()
    assert "[image loaded:" in text and "[conversation cleared]" in text
    first = _reference(model_dir, image_path, "what color is it", 8)
    answers = [line.removeprefix("assistant> ") for line in text.splitlines() if line.startswith("assistant> ")]
    assert len(answers) == 3 and answers[0].strip() == first
    # the second answer was given with the first turn as history, exactly as model.chat(history=...) does
    pv = engine.image_tensor(Image.open(image_path).convert("RGB")).unsqueeze(0)
    second = engine.model.chat(engine.tokenizer, pv, "and why", dict(max_new_tokens=8, do_sample=False),
                               history=[("<image>\nwhat color is it", answers[0])])
    assert answers[1].strip() == second
    # after /reset the image stays but the history is gone: the image is shown again in the new first turn
    assert answers[2].strip() == engine.model.chat(engine.tokenizer, pv, "hello",
                                                   dict(max_new_tokens=8, do_sample=False))


def test_eof_ends_the_chat(model_dir):
    session = ChatSession(InferenceEngine.from_model_dir(model_dir), SamplingParams(max_new_tokens=2))

    def read(_):
        raise EOFError

    assert interactive(session, read=read, out=io.StringIO(), err=io.StringIO()) == 0
