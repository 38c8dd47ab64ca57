"""chat / batch_chat: the V1.2 prompt, the same tokens as generate by hand, batch == one by one."""

import pytest
import torch

from internvl_chat.conversation import get_conv_template, template_names

GREEDY = dict(max_new_tokens=12, do_sample=False)


def test_hermes2_prompt_is_character_exact():
    conv = get_conv_template("Hermes-2")
    conv.append_message(conv.roles[0], "<image>\nWhat is this?")
    conv.append_message(conv.roles[1], "A cat.")
    conv.append_message(conv.roles[0], "And now?")
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == (
        "<|im_start|>system\nAnswer the questions.<|im_end|>"
        "<|im_start|>user\n<image>\nWhat is this?<|im_end|>"
        "<|im_start|>assistant\nA cat.<|im_end|>"
        "<|im_start|>user\nAnd now?<|im_end|>"
        "<|im_start|>assistant\n"
    )
    assert conv.stop_token_ids == (2, 6, 7, 8) and conv.stop_str == "<|endoftext|>"


def test_other_templates_are_character_exact():
    v = get_conv_template("vicuna_v1.1")
    v.append_message(v.roles[0], "Hi")
    v.append_message(v.roles[1], "Hello")
    v.append_message(v.roles[0], "Bye")
    v.append_message(v.roles[1], None)
    assert v.get_prompt() == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: Hi ASSISTANT: Hello</s>USER: Bye ASSISTANT:"
    )
    i = get_conv_template("internlm2-chat")
    i.append_message(i.roles[0], "Hi")
    i.append_message(i.roles[1], None)
    assert i.get_prompt() == (
        "<|im_start|>system\nYou are an AI assistant whose name is InternLM (书生·浦语).<|im_end|>"
        "<|im_start|>user\nHi<|im_end|><|im_start|>assistant\n"
    )
    assert {"Hermes-2", "internlm2-chat", "vicuna_v1.1", "chatml"} <= set(template_names())
    with pytest.raises(KeyError, match="unknown conversation template 'nope'"):
        get_conv_template("nope")


def test_templates_are_independent_copies():
    a = get_conv_template("Hermes-2")
    a.append_message(a.roles[0], "x")
    assert get_conv_template("Hermes-2").messages == []


def test_build_prompt_expands_image_blocks(tiny_model):
    model, _ = tiny_model
    n = model.num_image_token
    q = model.build_prompt("What colour?", num_patches_list=[1])
    assert q == ("<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n<img>"
                 + "<IMG_CONTEXT>" * n + "</img>\nWhat colour?<|im_end|><|im_start|>assistant\n")
    two = model.build_prompt("Image-1: <image>\nImage-2: <image>\nCompare.", num_patches_list=[1, 2])
    assert two.count("<IMG_CONTEXT>") == 3 * n and two.count("<img>") == 2
    text = model.build_prompt("Hello", has_image=False)
    assert "<img>" not in text


def test_chat_equals_generate_by_hand(tiny_model):
    model, tok = tiny_model
    torch.manual_seed(0)
    px = torch.randn(1, 3, 56, 56)
    reply = model.chat(tok, px, "What is in the image?", GREEDY)
    prompt = model.build_prompt("What is in the image?", num_patches_list=[1])
    enc = tok(prompt, return_tensors="pt")
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    vit = model.extract_feature(px)
    embeds = model.language_model.get_input_embeddings()(enc.input_ids).clone()
    embeds[enc.input_ids == model.img_context_token_id] = vit.reshape(-1, vit.shape[-1])
    with torch.no_grad():
        out = model.language_model.generate(inputs_embeds=embeds, attention_mask=enc.attention_mask,
                                            max_new_tokens=12, do_sample=False, eos_token_id=im_end,
                                            pad_token_id=tok.pad_token_id)
    want = tok.decode(out[0], skip_special_tokens=True).split("<|im_end|>")[0].strip()
    assert reply == want
    assert len(tok(reply).input_ids) >= 1


def test_chat_history_and_return_history(tiny_model):
    model, tok = tiny_model
    px = torch.randn(1, 3, 56, 56)
    r1, hist = model.chat(tok, px, "First question?", GREEDY, history=None, return_history=True)
    assert hist == [("<image>\nFirst question?", r1)]
    r2, hist2 = model.chat(tok, px, "Second?", GREEDY, history=hist, return_history=True)
    assert len(hist2) == 2 and hist2[1] == ("Second?", r2)
    # The second turn's prompt replays the first exchange, image block in the first user turn only.
    prompt = model.build_prompt("Second?", history=hist, num_patches_list=[1])
    assert prompt.count("<img>") == 1 and f"assistant\n{r1}<|im_end|><|im_start|>user\nSecond?" in prompt


def test_batch_chat_greedy_equals_one_by_one(tiny_model):
    model, tok = tiny_model
    torch.manual_seed(1)
    px = torch.randn(3, 3, 56, 56)
    questions = ["Colour?", "How many shapes are in this picture, counting all of them carefully?", "Where?"]
    batch = model.batch_chat(tok, px, questions, GREEDY)
    single = [model.chat(tok, px[i:i + 1], q, GREEDY) for i, q in enumerate(questions)]
    assert batch == single
    assert tok.padding_side == "right"  # restored after the left-padded batch


def test_batch_chat_rejects_history_and_bad_counts(tiny_model):
    model, tok = tiny_model
    px = torch.randn(2, 3, 56, 56)
    with pytest.raises(NotImplementedError):
        model.batch_chat(tok, px, ["a", "b"], GREEDY, history=[])
    with pytest.raises(ValueError, match="num_patches_list"):
        model.batch_chat(tok, px, ["a", "b"], GREEDY, num_patches_list=[1])
    with pytest.raises(ValueError, match="pixel_values has 2 images"):
        model.chat(tok, px, "a", GREEDY, num_patches_list=[1])


def test_chat_streams_tokens(tiny_model):
    model, tok = tiny_model
    from transformers import TextStreamer

    pieces = []

    class Collect(TextStreamer):
        def on_finalized_text(self, text, stream_end=False):
            pieces.append(text)

    px = torch.randn(1, 3, 56, 56)
    reply = model.chat(tok, px, "Say something.", GREEDY, streamer=Collect(tok, skip_prompt=True, skip_special_tokens=True))
    assert "".join(pieces).split("<|im_end|>")[0].strip() == reply


def test_chat_prints_nothing(tiny_model, capsys):
    model, tok = tiny_model
    model.chat(tok, torch.randn(1, 3, 56, 56), "Quiet?", GREEDY)
    model.batch_chat(tok, torch.randn(2, 3, 56, 56), ["a", "b"], GREEDY)
    assert capsys.readouterr().out == ""


def test_text_only_chat(tiny_model):
    model, tok = tiny_model
    assert isinstance(model.chat(tok, None, "Hello there?", GREEDY), str)
