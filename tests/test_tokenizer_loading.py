"""Released-shaped tokenizer folders (sentencepiece `tokenizer.model` + `tokenizer_config.json`, no
`tokenizer.json`): every command starts on them, and composing from parts gives the original's image tokens."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from internvl_chat.data import synth
from internvl_chat.data.preprocess import tokenize_conversation
from internvl_chat.model.sentencepiece_tokenizer import SentencePieceLlamaTokenizer
from internvl_chat.model.tokenizer import TokenizerLoadError, load_tokenizer

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "tokenizers"
REF = json.loads((DATA / "reference.json").read_text(encoding="utf-8"))
IMG_BASE = "yi_img_legacy_registered"  # a Yi-shaped base vocabulary holding <img>/</img> as ordinary pieces
ENV = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")


def _only_sentencepiece_files(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def sp_model_dir(tmp_path_factory):
    """A tiny chat model whose folder holds only tokenizer.model + tokenizer_config.json as its tokenizer."""
    from internvl_chat.model.presets import build_tiny_model

    out = tmp_path_factory.mktemp("sp_model")
    tok = load_tokenizer(DATA / IMG_BASE)
    model, _ = build_tiny_model(tokenizer=tok, seed=0)
    model.save_pretrained(out)
    _only_sentencepiece_files(DATA / IMG_BASE, out)
    assert sorted(p.name for p in out.glob("tokenizer*")) == ["tokenizer.model", "tokenizer_config.json"]
    return out


def _run(*args, timeout=240):
    done = subprocess.run([sys.executable, "-m", "internvl_chat.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=str(REPO))
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def test_loader_reads_sentencepiece_folders_with_or_without_tokenizer_json(tmp_path):
    ref = REF["configs"]["yi_nonlegacy_userdefined"]
    only = _only_sentencepiece_files(DATA / "yi_nonlegacy_userdefined", tmp_path / "only")
    tok = load_tokenizer(only)
    assert isinstance(tok, SentencePieceLlamaTokenizer) and not tok.legacy
    # A tokenizer.json next to it (as some mirrors add) does not change the ids: V1.2 read tokenizer.model.
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    both = _only_sentencepiece_files(DATA / "yi_nonlegacy_userdefined", tmp_path / "both")
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
                            ).save_pretrained(tmp_path / "fast")
    shutil.copy(tmp_path / "fast" / "tokenizer.json", both / "tokenizer.json")
    tok2 = load_tokenizer(both)
    for case in ref["cases"][:12]:
        for t in (tok, tok2):
            got = tokenize_conversation(case["conversations"], t, "Hermes-2", REF["num_image_token"], 10**6,
                                        text_only=case["text_only"])
            assert got.input_ids.tolist() == case["input_ids"], case["id"]


def test_loader_errors_name_the_folder(tmp_path):
    with pytest.raises(TokenizerLoadError, match="no tokenizer.model or tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerLoadError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")
    odd = _only_sentencepiece_files(DATA / IMG_BASE, tmp_path / "odd")
    (odd / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "InternLM2Tokenizer"}))
    with pytest.raises(TokenizerLoadError, match="InternLM2Tokenizer"):
        load_tokenizer(odd)


def test_saved_folder_loads_back_with_the_same_ids(tmp_path):
    tok = load_tokenizer(DATA / "yi_legacy_userdefined")
    tok.save_pretrained(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    text = "<|im_start|>user\n<img><IMG_CONTEXT></img>\n图中有 12 只猫？ 😀<|im_end|>"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.decode(tok(text)["input_ids"]) == text


def test_compose_from_parts_keeps_base_vocab_img_tokens_single_with_the_originals_ids(tmp_path, tiny_model):
    """The LLM's vocabulary holds <img>/</img> as ordinary pieces (as Yi's does): they keep their ids, are
    registered as special (never split), and the new ids start at <IMG_CONTEXT>, as in the released V1.2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from internvl_chat.model import compose_from_parts

    model, _ = tiny_model
    vit_dir, llm_dir = tmp_path / "vit", tmp_path / "llm"
    model.vision_model.save_pretrained(vit_dir)
    torch.save({k: v.clone() for k, v in model.mlp1.state_dict().items()}, tmp_path / "mlp.pth")
    base = SentencePieceLlamaTokenizer(vocab_file=str(DATA / IMG_BASE / "tokenizer.model"))
    llm_cfg = LlamaConfig(vocab_size=base.vocab_size, hidden_size=model.config.llm_config.hidden_size,
                          intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          eos_token_id=7, pad_token_id=0, initializer_range=0.02)
    torch.manual_seed(1)
    LlamaForCausalLM(llm_cfg).save_pretrained(llm_dir)
    _only_sentencepiece_files(DATA / IMG_BASE, llm_dir)
    base_llm = LlamaForCausalLM.from_pretrained(llm_dir)

    composed, tok = compose_from_parts(vit_dir, llm_dir, tmp_path / "mlp.pth", dtype=torch.float32)
    ref = REF["configs"][IMG_BASE]
    ids = {t: tok.convert_tokens_to_ids(t) for t in ref["internvl_token_ids"]}
    assert ids == ref["internvl_token_ids"]
    assert ids["<img>"] < base.vocab_size and ids["</img>"] < base.vocab_size  # ordinary pieces, ids kept
    assert ids["<IMG_CONTEXT>"] == base.vocab_size  # the first new id, as 64000 in the release
    assert len(tok) == ref["len_tokenizer"] == base.vocab_size + 7

    sample = tokenize_conversation([{"from": "human", "value": "<image>\nWhat is it?"},
                                    {"from": "gpt", "value": "A cat."}], tok, "Hermes-2", 6, 4096)
    seq = sample.input_ids.tolist()
    start = seq.index(ids["<img>"])
    assert seq[start:start + 8] == [ids["<img>"]] + [ids["<IMG_CONTEXT>"]] * 6 + [ids["</img>"]]
    assert composed.img_context_token_id == ids["<IMG_CONTEXT>"]

    # Embeddings: old rows kept; new input rows ~ N(0, initializer_range) as transformers 4.37 drew them;
    # new lm_head rows = mean of the old rows, as the V1.2 script set them.
    n_old = base.vocab_size
    emb = composed.language_model.get_input_embeddings().weight
    head = composed.language_model.get_output_embeddings().weight
    assert emb.shape[0] == head.shape[0] == len(tok) == composed.config.llm_config.vocab_size
    torch.testing.assert_close(emb[:n_old], base_llm.get_input_embeddings().weight)
    new = emb[n_old:].detach()
    assert abs(float(new.mean())) < 0.01 and 0.012 < float(new.std()) < 0.03
    assert not torch.allclose(new[0], emb[:n_old].mean(0), atol=1e-3)  # not transformers 5's mean-resizing
    torch.testing.assert_close(head[n_old:], base_llm.get_output_embeddings().weight.mean(0, keepdim=True)
                               .expand(len(tok) - n_old, -1))


# -- every command starts on a folder with only tokenizer.model + tokenizer_config.json --------------------------
@pytest.mark.slow
def test_chat_command_on_sentencepiece_folder(sp_model_dir, tmp_path):
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(image)
    done = _run("chat", "--model", str(sp_model_dir), "--image", str(image), "--prompt", "what color is it",
                "--max-tokens", "4", "--threads", "1")
    from internvl_chat.infer.engine import InferenceEngine

    engine = InferenceEngine.from_model_dir(sp_model_dir)
    assert isinstance(engine.tokenizer, SentencePieceLlamaTokenizer)
    pv = engine.image_tensor(Image.open(image).convert("RGB")).unsqueeze(0)
    want = engine.model.chat(engine.tokenizer, pv, "what color is it", dict(max_new_tokens=4, do_sample=False))
    assert done.stdout.strip() == want


@pytest.mark.slow
def test_data_check_and_stats_commands_on_sentencepiece_folder(tmp_path):
    synth.generate(tmp_path / "synth", n_train=2, n_test=0, seed=0, image_size=28)
    tok_dir = _only_sentencepiece_files(DATA / IMG_BASE, tmp_path / "tok")
    meta = tmp_path / "synth" / "meta.json"
    _run("data", "check", str(meta), "--tokenizer", str(tok_dir), "--num-image-token", "4",
         "--rejects", str(tmp_path / "rejects.jsonl"))
    done = _run("data", "stats", str(meta), "--tokenizer", str(tok_dir), "--num-image-token", "4")
    assert "approximate" not in done.stdout + done.stderr  # the real tokenizer was used


@pytest.mark.slow
def test_train_command_on_sentencepiece_folder(sp_model_dir, tmp_path):
    synth.generate(tmp_path / "synth", n_train=4, n_test=0, seed=0, image_size=56)
    out = tmp_path / "out"
    _run("train", str(REPO / "configs" / "tiny.yaml"), "model.preset=null", f"model.path={sp_model_dir}",
         "model.force_image_size=56", f"output_dir={out}", "data.source=meta",
         f"meta_path={tmp_path / 'synth' / 'meta.json'}", "num_threads=1", "progress_bar=false", "tensorboard=false",
         "plot=false", "num_workers=0", "max_steps=1", timeout=400)
    assert (out / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_eval_command_on_sentencepiece_folder(sp_model_dir, tmp_path):
    from internvl_chat.data.synth import generate

    generate(tmp_path / "synth", n_train=0, n_test=1, image_size=56)
    out = tmp_path / "out"
    _run("eval", "--model", str(sp_model_dir), "--benchmarks", "synthetic", "--data-root", str(tmp_path / "synth"),
         "--out", str(out), "--batch-size", "2", "--limit", "2", "--max-new-tokens", "2", "--no-progress")
    assert (out / "synthetic" / "predictions.jsonl").read_text().count("\n") == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "web"])
def test_serve_and_web_commands_start_on_sentencepiece_folder(sp_model_dir, command):
    import httpx

    if command == "web":
        pytest.importorskip("nicegui")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "internvl_chat.cli", command, "--model", str(sp_model_dir),
                             "--port", str(port), "--threads", "1"], env=ENV, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, last = time.time() + 180, None
        while time.time() < deadline and proc.poll() is None:
            try:
                last = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if last.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-4000:]
        assert last is not None and last.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sentencepiece_tokenizer_pickles_for_dataloader_workers():
    import pickle

    tok = load_tokenizer(DATA / "yi_nonlegacy_userdefined")
    text = "<|im_start|>user\n 图中 12 只猫？\t😀<img><IMG_CONTEXT></img><|im_end|>"
    again = pickle.loads(pickle.dumps(tok))
    assert again(text)["input_ids"] == tok(text)["input_ids"] and again.legacy is False


def test_one_prompt_for_training_chat_and_engine(tiny_model):
    """The text (hence the tokens) a question gets at inference is what training rendered before the reply."""
    from internvl_chat.constants import image_block
    from internvl_chat.conversation import encode_prompt, render_prompt
    from internvl_chat.infer.engine import ChatTurn, InferenceEngine

    model, _ = tiny_model
    tok = load_tokenizer(DATA / "yi_nonlegacy_userdefined")
    n = model.num_image_token
    history = [("<image>\n图中 12 只猫？", "\n两只。"), ("And  the\tdog?", "```\nno\n```")]
    question = "Last one 😀"
    turns = [{"from": f, "value": v} for q, a in history for f, v in (("human", q), ("gpt", a))]
    train = render_prompt(turns + [{"from": "human", "value": question}, {"from": "gpt", "value": "ok"}],
                          "Hermes-2", image_blocks=image_block(n))
    train_prefix = train.text[:train.reply_spans[-1][0]]
    assert model.build_prompt(question, history=history, num_patches_list=[1]) == train_prefix
    engine = InferenceEngine(model, tok)
    chat_turns = [ChatTurn("user", "图中 12 只猫？", [torch.zeros(3, 8, 8)]), ChatTurn("assistant", "\n两只。"),
                  ChatTurn("user", "And  the\tdog?"), ChatTurn("assistant", "```\nno\n```"),
                  ChatTurn("user", question)]
    assert engine.build_prompt(chat_turns) == train_prefix
    assert engine.encode(train_prefix) == encode_prompt(tok, train_prefix) == tok(train_prefix)["input_ids"]
