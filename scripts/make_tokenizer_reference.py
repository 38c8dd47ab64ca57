"""Regenerate tests/data/tokenizers/: small Yi-shaped sentencepiece tokenizers + the original's ids and labels.

Run with the side environment that has the ORIGINAL's versions (transformers 4.37.2, sentencepiece, protobuf 4):

    /work/side-venv/bin/python scripts/make_tokenizer_reference.py --upstream /path/to/InternVL-git-dir

`--upstream` is a git directory of OpenGVLab/InternVL (bare mirrors work). The script reads
`preprocess_mpt` and the conversation templates from commit 75960d8 into a temporary directory and
runs them there; nothing of upstream is copied into this repository. What it writes:

- `tests/data/tokenizers/<config>/`: slow tokenizer folders (tokenizer.model + tokenizer_config.json,
  and for the released-shaped folder what transformers 4.37's save_pretrained writes), one per configuration;
- `tests/data/tokenizers/reference.json`: per configuration and conversation, the ids and labels the
  original `preprocess_mpt` produced with `LlamaTokenizer.from_pretrained(folder, add_eos_token=False)`
  after `add_tokens(<the nine InternVL tokens>, special_tokens=True)`, and whether it printed
  "tokenization mismatch" (then it wiped every label).

The tests only read these files; they do not need this environment.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UPSTREAM_COMMIT = "75960d8"
INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
NUM_IMAGE_TOKEN = 4  # small image blocks keep the reference small; the logic does not depend on the count
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tokenizers"

# Yi's layout: control <unk>/<|startoftext|>/<|endoftext|> at 0/1/2, user-defined pieces at 3..8 with the
# ChatML tokens at 6/7/8.
USER_DEFINED = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<|im_start|>", "<|im_end|>", "<|im_sep|>"]

_EN = ("the a of in on to is are what which how many where color shape red green blue circle square image picture "
       "chart value answer question option letter correct yes no one two three number count describe detail scene "
       "object left right top bottom please choose from given choices directly word phrase user assistant system "
       "hello world model vision language cat dog bird car tree house sky water table person people text sign").split()
_ZH = "图中有几只猫这是什么颜色的图片请描述一下场景回答问题人物左边右边上面下面红色蓝色绿色汽车房子天空水面文字标志数量多少"
_CODE = ["def f(x):\n    return x * 2\n", "for i in range(10):\n\tprint(i)\n", "if a == b:\n    pass\n",
         "```python\nimport os\n```\n", "x = [1, 2, 3]\n", "{\"key\": \"value\"}\n"]


def corpus(with_img_pieces: bool, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(4000):
        kind = rng.random()
        if kind < 0.55:
            words = [rng.choice(_EN) for _ in range(rng.randint(3, 14))]
            if rng.random() < 0.4:
                words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
            line = " ".join(words)
            if rng.random() < 0.5:
                line = line.capitalize() + rng.choice([".", "?", "!", ":", ","])
        elif kind < 0.75:
            line = "".join(rng.choice(_ZH) for _ in range(rng.randint(4, 20))) + rng.choice(["。", "？", "，", ""])
        elif kind < 0.9:
            line = rng.choice(_CODE)
        else:
            line = rng.choice(["  ", "    ", "\t", "\n\n", "   \n"]).join(rng.choice(_EN) for _ in range(5))
        if with_img_pieces and rng.random() < 0.3:
            line = "<img>" + line + "</img>"
        lines.append(line)
    return lines


def train_spm(prefix: Path, with_img_pieces: bool, add_dummy_prefix: bool) -> Path:
    import sentencepiece as spm

    text = prefix.with_suffix(".txt")
    # sentencepiece reads one sentence per line; "\n" itself is learnt through byte fallback.
    text.write_text("\n".join(corpus(with_img_pieces)), encoding="utf-8")
    # Relative paths and one thread: the trainer records its input path in the model, and the
    # regenerated files should be byte-identical.
    os.chdir(prefix.parent)
    spm.SentencePieceTrainer.Train(
        input=text.name, model_prefix=prefix.name, model_type="bpe", vocab_size=1200, num_threads=1,
        character_coverage=0.9995, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=add_dummy_prefix, allow_whitespace_only_pieces=True,
        split_by_whitespace=True, split_by_unicode_script=not with_img_pieces, user_defined_symbols=USER_DEFINED, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        unk_piece="<unk>", bos_piece="<|startoftext|>", eos_piece="<|endoftext|>", max_sentence_length=100000,
        minloglevel=2,
    )
    model = prefix.with_suffix(".model")
    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert [sp.id_to_piece(i) for i in range(9)] == ["<unk>", "<|startoftext|>", "<|endoftext|>"] + USER_DEFINED
    if with_img_pieces:  # ordinary (NORMAL) pieces, as <img>/</img> are in Yi's base vocabulary
        for piece in ("<img>", "</img>"):
            pid = sp.piece_to_id(piece)
            assert pid != 0 and not sp.is_control(pid) and not sp.is_unknown(pid), piece
    return model


def tokenizer_config(legacy: bool, chatml_registered: bool) -> dict:
    def added(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}

    decoder = {"0": added("<unk>"), "1": added("<|startoftext|>"), "2": added("<|endoftext|>")}
    if chatml_registered:
        decoder.update({"6": added("<|im_start|>"), "7": added("<|im_end|>"), "8": added("<|im_sep|>")})
    return {
        "add_bos_token": False, "add_eos_token": False, "added_tokens_decoder": decoder,
        "bos_token": "<|startoftext|>", "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
        "legacy": legacy, "model_max_length": 4096, "pad_token": "<unk>", "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False,
    }


# name -> (spm model, legacy, ChatML registered as added tokens, InternVL tokens already added and saved)
CONFIGS = {
    "yi_legacy_registered": ("yi", True, True, False),
    "yi_nonlegacy_registered": ("yi", False, True, False),
    "yi_legacy_userdefined": ("yi", True, False, False),
    "yi_nonlegacy_userdefined": ("yi", False, False, False),
    "yi_img_legacy_registered": ("yi_img", True, True, False),
    "yi_img_nonlegacy_userdefined": ("yi_img", False, False, False),
    "internvl_released": ("yi_img", True, True, True),
    "dummy_prefix_legacy_registered": ("dummy", True, True, False),
    "dummy_prefix_nonlegacy_userdefined": ("dummy", False, False, False),
}


def conversations() -> list[dict]:
    """The cases: (id, turns, text_only). Turns alternate human/gpt unless a case tests otherwise."""
    H, G = "human", "gpt"

    def c(cid, *turns, text_only=False):
        return {"id": cid, "text_only": text_only,
                "conversations": [{"from": H if i % 2 == 0 else G, "value": v} for i, v in enumerate(turns)]}

    cases = [
        c("simple", "<image>\nWhat color is the square?", "Red."),
        c("image_end", "What is shown here?\n<image>", "A cat on a table."),
        c("image_middle", "Look: <image> what is it?", "A dog."),
        c("no_image_text", "Describe the sky.", "The sky is blue.", text_only=True),
        c("text_only_placeholder", "<image>\nHello <query> world", "Hi there.", text_only=True),
        c("multi_turn", "<image>\nHow many cats?", "Two.", "What color are they?", "One is black, one is white.",
          "Where are they?", "On the sofa."),
        c("digits", "What is 12345 + 678?", "13023"),
        c("digits_decimal", "Box: [0.12, 0.34, 0.56, 0.78]", "The year 2024 had 366 days."),
        c("spaces_runs", "a    b     c", "x  y   z"),
        c("tabs_newlines", "col1\tcol2\t\tcol3\n\n\nend", "ok\t\tdone\n\n"),
        c("chinese", "<image>\n图中有几只猫？", "图中有两只猫。"),
        c("chinese_english_mix", "请描述 the picture 中的人物。", "图片里有 three people 在 walking。"),
        c("emoji", "😀🎉 what is this?", "👍 a party 🎈"),
        c("byte_fallback", "Ω≈ç√∫˜µ≤≥÷ ∂ƒ©˙∆˚¬", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 한국어 and العربية"),
        c("japanese", "これは何ですか？", "猫です。"),
        c("literal_chatml_user", "<|im_start|>user\nhi<|im_end|> is that a tag?", "Yes."),
        c("literal_internvl_user", "What does <img> or <IMG_CONTEXT> or </img> mean?", "They are image tags."),
        c("literal_box_ref", "Find <ref>the cat</ref>", "<ref>cat</ref><box>[[10, 20, 300, 400]]</box>"),
        c("literal_endoftext", "Stop at <|endoftext|> please", "Done <|endoftext|>"),
        c("literal_unk", "What is <unk>?", "Unknown."),
        c("literal_startoftext", "<|startoftext|>Begin", "<s>ok</s>"),
        c("literal_im_end_in_reply", "Say the end tag.", "It is <|im_end|> here."),
        c("answer_leading_newline", "<image>\nQuestion?", "\nThe answer is A."),
        c("answer_two_newlines", "Question?", "\n\nTwo."),
        c("answer_leading_space", "Question?", " yes"),
        c("answer_trailing_space_newline", "Question?  ", "yes \n"),
        c("code_block", "Write a function.", "```python\ndef f(x):\n    return x * 2\n```"),
        c("code_tabs", "Loop?", "for i in range(3):\n\tprint(i)\n"),
        c("markdown_list", "List three colors.", "- red\n- green\n- blue"),
        c("multiple_choice", "<image>\nWhat is it?\nA. cat\nB. dog\nAnswer with the option's letter from the "
          "given choices directly.", "A"),
        c("crlf", "line one\r\nline two", "ok\r\n"),
        c("nbsp_zero_width", "a\u00a0b\u200bc", "d\u00a0e"),
        c("spiece_char", "a▁b ▁c", "▁d"),
        c("long_repeat", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        c("latex", "Solve $\\frac{1}{2} + x = 3$.", "$x = \\frac{5}{2}$"),
        c("url", "Open https://example.com/a?b=1&c=2", "Opened."),
        c("two_images", "<image>\nFirst. <image>\nSecond.", "Both are cats."),
        c("image_second_turn", "Hello.", "Hi.", "<image>\nWhat is this?", "\nA bird."),
        c("multi_turn_mixed", "你好", "你好！", "What is 2+2?", "4", "Code?", "```\nprint(4)\n```"),
        c("empty_lines_user", "\n\nQuestion after blank lines", "Answer."),
        {"id": "leading_gpt_turn", "text_only": False, "conversations": [
            {"from": G, "value": "Ignored greeting."}, {"from": H, "value": "<image>\nQ?"},
            {"from": G, "value": "A."}]},
    ]
    return cases


def load_upstream(git_dir: Path, workdir: Path):
    """Write upstream's conversation module to `workdir` and build preprocess_mpt from upstream source."""
    def show(path):
        return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{UPSTREAM_COMMIT}:{path}"],
                              check=True, capture_output=True, text=True).stdout

    (workdir / "upstream_conversation.py").write_text(show("internvl_chat/internvl/conversation.py"))
    finetune = show("internvl_chat/internvl/train/internvl_chat_finetune.py")
    tree = ast.parse(finetune)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "preprocess_mpt")
    source = ast.get_source_segment(finetune, fn)
    sys.path.insert(0, str(workdir))
    import torch
    import transformers
    import upstream_conversation

    namespace = {"get_conv_template": upstream_conversation.get_conv_template, "IGNORE_TOKEN_ID": -100,
                 "IMG_START_TOKEN": "<img>", "IMG_END_TOKEN": "</img>", "IMG_CONTEXT_TOKEN": "<IMG_CONTEXT>",
                 "torch": torch, "sys": sys, "transformers": transformers, "Dict": dict}
    exec(compile(source, f"upstream@{UPSTREAM_COMMIT}:preprocess_mpt", "exec"), namespace)
    return namespace["preprocess_mpt"]


def make_folders(workdir: Path) -> None:
    from transformers import LlamaTokenizer

    models = {"yi": train_spm(workdir / "yi", False, False), "yi_img": train_spm(workdir / "yi_img", True, False),
              "dummy": train_spm(workdir / "dummy", False, True)}
    if OUT.exists():
        shutil.rmtree(OUT)
    for name, (model, legacy, registered, internvl_added) in CONFIGS.items():
        folder = OUT / name
        folder.mkdir(parents=True)
        shutil.copy(models[model], folder / "tokenizer.model")
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(legacy, registered), indent=2))
        if internvl_added:  # what the original's training run saved next to the released weights
            tok = LlamaTokenizer.from_pretrained(str(folder), add_eos_token=False)
            tok.add_tokens(INTERNVL_TOKENS, special_tokens=True)
            shutil.rmtree(folder)
            tok.save_pretrained(str(folder))


def reference(preprocess_mpt) -> dict:
    from transformers import LlamaTokenizer

    out = {"upstream_commit": UPSTREAM_COMMIT, "num_image_token": NUM_IMAGE_TOKEN, "template": "Hermes-2",
           "configs": {}}
    for name in CONFIGS:
        tok = LlamaTokenizer.from_pretrained(str(OUT / name), add_eos_token=False)
        tok.model_max_length = 1_000_000  # no truncation: every reference sample is whole
        added = tok.add_tokens(INTERNVL_TOKENS, special_tokens=True)
        cases = []
        for case in conversations():
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                ret = preprocess_mpt("Hermes-2", [json.loads(json.dumps(case["conversations"]))], tok,
                                     NUM_IMAGE_TOKEN, text_only=case["text_only"], group_by_length=True)
            cases.append({**case, "input_ids": ret["input_ids"][0].tolist(), "labels": ret["labels"][0].tolist(),
                          "wiped": "tokenization mismatch" in printed.getvalue()})
        out["configs"][name] = {
            "added_by_add_tokens": added, "len_tokenizer": len(tok),
            "internvl_token_ids": {t: tok.convert_tokens_to_ids(t) for t in INTERNVL_TOKENS}, "cases": cases,
        }
        wiped = sum(c["wiped"] for c in cases)
        print(f"{name}: {len(cases)} cases, {wiped} wiped by the original, len(tokenizer)={len(tok)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=Path, required=True, help="git dir of OpenGVLab/InternVL")
    args = ap.parse_args()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        preprocess_mpt = load_upstream(args.upstream, workdir)
        make_folders(workdir)
        ref = reference(preprocess_mpt)
        os.chdir(cwd)
    (OUT / "reference.json").write_text(json.dumps(ref, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
