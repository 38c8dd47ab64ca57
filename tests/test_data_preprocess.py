"""preprocess() must give the original V1.2 `preprocess_mpt` tokens and labels.

The oracle below is an independent re-statement of the original piecewise
algorithm (reference §5.4): tokenize the whole prompt, then walk the rounds
split on `<|im_end|>`, re-tokenizing each round and instruction to count tokens,
and wipe all labels on a count mismatch.
"""

from __future__ import annotations

import random

import pytest
import torch

from internvl_chat.constants import IGNORE_INDEX, IMG_CONTEXT_TOKEN, image_block
from internvl_chat.conversation import get_conv_template
from internvl_chat.data import preprocess
from internvl_chat.data.formats import RecordError
from internvl_chat.data.preprocess import tokenize_conversation
from internvl_chat.model.tokenizer import build_tiny_tokenizer

NUM_IMAGE_TOKEN = 4


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def original_preprocess_mpt(conversations, tokenizer, num_image_token, max_length, text_only=False):
    """Oracle: returns (input_ids, labels, mismatch_declared)."""
    conv = get_conv_template("Hermes-2")
    roles = {"human": conv.roles[0], "gpt": conv.roles[1]}
    source = list(conversations)
    if roles[source[0]["from"]] != conv.roles[0]:
        source = source[1:]
    for j, sentence in enumerate(source):
        value = sentence["value"]
        if text_only:
            value = value.replace("<image>", "").replace("<query>", "")
        conv.append_message(roles[sentence["from"]], value)
    prompt = conv.get_prompt().replace("<image>", image_block(num_image_token))
    ids = tokenizer(prompt, truncation=True, max_length=max_length)["input_ids"]
    target = list(ids)
    total_len = len(ids)  # no padding: every token is real
    sep = conv.sep + conv.roles[1]
    pieces = prompt.split(conv.sep)
    rounds = [conv.sep.join(pieces[:3])] + [conv.sep.join(pieces[k:k + 2]) for k in range(3, len(pieces), 2)]
    cursor = 0
    for rnd in rounds:
        if rnd == "":
            break
        round_len = len(tokenizer(rnd)["input_ids"]) + 1
        parts = rnd.split(sep)
        if len(parts) != 2:
            break
        instruction_len = len(tokenizer(parts[0] + sep)["input_ids"])
        for k in range(cursor, min(cursor + instruction_len, len(target))):
            target[k] = IGNORE_INDEX
        cursor += round_len
    for k in range(cursor, len(target)):
        target[k] = IGNORE_INDEX
    mismatch = cursor < max_length and cursor != total_len
    if mismatch:
        target = [IGNORE_INDEX] * len(target)
    return ids, target, mismatch


def human(v):
    return {"from": "human", "value": v}


def gpt(v):
    return {"from": "gpt", "value": v}


FIXED_CASES = {
    "single image first": [human("<image>\nWhat colour is the square?"), gpt("Red.")],
    "image after text": [human("What colour is the square?\n<image>"), gpt("Blue")],
    "multi turn": [human("<image>\nHow many circles?"), gpt("three"), human("And squares?"), gpt("two of them"),
                   human("Which is largest?"), gpt("the red circle on the left")],
    "text only": [human("What is the capital of France?"), gpt("Paris is the capital of France.")],
    "leading assistant turn": [gpt("Hello, ask me anything."), human("<image>\nDescribe the scene."),
                               gpt("A blue square above a green circle.")],
    "numbers and punctuation": [human("<image>\nWhat is the value for 2019 sales?"), gpt("1,024 (percent: 12.5%)")],
    "whitespace answers": [human("<image>\nRead the title."), gpt(" the title is  Sales \n"), human("ok?"),
                           gpt("\nyes")],
    "unicode": [human("<image>\n这是什么颜色？"), gpt("红色。 café")],
}


def test_where_original_declares_mismatch_we_keep_correct_labels(tok):
    # A trailing user turn makes the original's round walk stop early: it declares a
    # "tokenization mismatch" and wipes every label. Ours supervises the one answer.
    conv = [human("<image>\nhi"), gpt("hello"), human("bye")]
    ids, target, mismatch = original_preprocess_mpt(conv, tok, NUM_IMAGE_TOKEN, 512)
    assert mismatch and all(t == IGNORE_INDEX for t in target)
    out = preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 512)
    assert out["input_ids"].tolist() == ids
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert out["input_ids"][out["labels"] != IGNORE_INDEX].tolist() == tok("hello")["input_ids"] + [im_end]


@pytest.mark.parametrize("name", sorted(FIXED_CASES))
def test_matches_original_on_fixed_cases(tok, name):
    conv = FIXED_CASES[name]
    ids, target, mismatch = original_preprocess_mpt(conv, tok, NUM_IMAGE_TOKEN, 512)
    assert not mismatch, "the oracle should accept these cases"
    out = preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 512)
    assert out["input_ids"].dtype == torch.long and out["input_ids"].dim() == 1
    assert out["input_ids"].tolist() == ids
    assert out["labels"].tolist() == target


def test_text_only_flag_strips_placeholders_like_original(tok):
    conv = [human("<image>\nIs this text only?"), gpt("yes it is")]
    ids, target, mismatch = original_preprocess_mpt(conv, tok, NUM_IMAGE_TOKEN, 512, text_only=True)
    out = preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 512, text_only=True)
    assert not mismatch
    assert out["input_ids"].tolist() == ids and out["labels"].tolist() == target
    assert tok.convert_tokens_to_ids(IMG_CONTEXT_TOKEN) not in out["input_ids"].tolist()


def test_supervises_exactly_answers_and_their_end_token(tok):
    conv = [human("<image>\nWhat shape?"), gpt("circle"), human("Colour?"), gpt("green")]
    out = preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 512)
    supervised = out["input_ids"][out["labels"] != IGNORE_INDEX]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    expected = tok("circle")["input_ids"] + [im_end] + tok("green")["input_ids"] + [im_end]
    assert supervised.tolist() == expected
    n_ctx = int((out["input_ids"] == tok.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)).sum())
    assert n_ctx == NUM_IMAGE_TOKEN


def test_truncation_inside_an_answer_matches_original(tok):
    conv = [human("<image>\nDescribe the picture in detail."),
            gpt("There is a red circle at the top left, a blue square in the middle and a green triangle "
                "at the bottom right of the image, next to a yellow star.")]
    full = preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 4096)
    cut = len(full["input_ids"]) - 7  # inside the answer
    ids, target, mismatch = original_preprocess_mpt(conv, tok, NUM_IMAGE_TOKEN, cut)
    out = tokenize_conversation(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, cut)
    assert not mismatch
    assert out.input_ids.tolist() == ids and out.labels.tolist() == target
    assert out.truncated == 7 and len(ids) == cut
    assert out.labels[-1].item() != IGNORE_INDEX  # the kept part of the answer is still supervised


def test_truncation_through_image_block_is_rejected(tok):
    conv = [human("<image>\nhi"), gpt("hello")]
    # The system prompt alone is ~10 tokens; a 12-token budget cuts the 4+2 image tokens.
    with pytest.raises(RecordError) as err:
        preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 12)
    assert err.value.kind == "over length" and "image block" in err.value.reason


def test_truncation_before_any_answer_is_rejected(tok):
    conv = [human("what is the capital of france " * 20), gpt("paris")]
    with pytest.raises(RecordError) as err:
        preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 40)
    assert err.value.kind == "over length" and "no answer token left" in err.value.reason


def test_bad_role_order_raises(tok):
    with pytest.raises(RecordError, match="role order: turn 1 is 'human', expected 'gpt'"):
        preprocess([human("a"), human("b")], tok, "Hermes-2", NUM_IMAGE_TOKEN, 512)


def _random_conversation(rng: random.Random):
    words = "the red green blue circle square how many what colour is there on left right top 3 12 2024 , . ?".split()
    def text():
        s = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        return rng.choice(["", " ", "\n"]) + s + rng.choice(["", ".", "!", " ", "\n", "  "])
    n_rounds = rng.randint(1, 4)
    conv = []
    if rng.random() < 0.15:
        conv.append(gpt(text()))
    for r in range(n_rounds):
        q = text()
        if r == 0 and rng.random() < 0.7:
            q = rng.choice(["<image>\n" + q, q + "\n<image>", q + " <image> " + text()])
        conv.append(human(q))
        conv.append(gpt(text()))
    return conv


def test_matches_original_on_many_random_conversations(tok):
    rng = random.Random(1234)
    compared = mismatches = 0
    for _ in range(300):
        conv = _random_conversation(rng)
        if not any(t["value"].strip() for t in conv):
            continue
        max_length = rng.choice([4096, 4096, 60, 90])
        ids, target, mismatch = original_preprocess_mpt(conv, tok, NUM_IMAGE_TOKEN, max_length)
        try:
            out = tokenize_conversation(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, max_length)
        except RecordError as e:
            # Ours rejects only what the original silently breaks or cannot learn from.
            assert e.kind == "over length", e.reason
            if "no answer token" in e.reason:
                assert all(t == IGNORE_INDEX for t in target)
            continue
        assert out.input_ids.tolist() == ids
        if mismatch:
            mismatches += 1  # the original drops this sample; ours keeps correct labels
            assert all(t == IGNORE_INDEX for t in target)
            assert (out.labels != IGNORE_INDEX).any()
        else:
            assert out.labels.tolist() == target, conv
            compared += 1
    assert compared > 150


def _sentencepiece_style_tokenizer(scheme: str):
    """A Llama/Yi-like fast tokenizer: '▁' for spaces, byte fallback; 'legacy' prepends '▁' to the text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from internvl_chat.constants import ADDED_SPECIAL_TOKENS
    from internvl_chat.model.tokenizer import BASE_SPECIAL_TOKENS, _corpus

    specials = BASE_SPECIAL_TOKENS + ADDED_SPECIAL_TOKENS
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    if scheme == "legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=800, show_progress=False,
                                  special_tokens=specials + [f"<0x{i:02X}>" for i in range(256)])
    tok.train_from_iterator(list(_corpus(2000, 1)), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                   pad_token="<unk>", additional_special_tokens=specials[1:])


@pytest.mark.parametrize("scheme", ["legacy", "metaspace"])
def test_matches_original_with_sentencepiece_style_tokenizers(scheme):
    tok = _sentencepiece_style_tokenizer(scheme)
    rng = random.Random(99)
    compared = 0
    for conv in list(FIXED_CASES.values()) + [_random_conversation(rng) for _ in range(120)]:
        max_length = rng.choice([4096, 70])
        ids, target, mismatch = original_preprocess_mpt(conv, tok, NUM_IMAGE_TOKEN, max_length)
        try:
            out = tokenize_conversation(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, max_length)
        except RecordError as e:
            assert e.kind == "over length"
            continue
        assert out.input_ids.tolist() == ids
        if not mismatch:
            assert out.labels.tolist() == target, conv
            compared += 1
    assert compared > 80
