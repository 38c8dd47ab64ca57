"""The batched generation engine: batch == one-by-one under greedy decoding, stops, sampling, streaming."""

import pytest
import torch
from PIL import Image

from internvl_chat.infer.engine import ChatTurn, GenerationRequest, InferenceEngine, SamplingParams, generate_batch


@pytest.fixture()
def engine(tiny_model):
    model, tok = tiny_model
    return InferenceEngine(model, tok, max_batch_size=8)


def _image(i: int) -> Image.Image:
    return Image.new("RGB", (40 + 13 * i, 30 + 7 * i), ((70 * i) % 256, 120, 255 - 40 * i))


QUESTIONS = ["what color", "describe the image in detail please, with many words and numbers 1 2 3", "hi",
             "how many objects are in the picture on the left side of the chart", "count"]


def _requests(engine, max_new_tokens=12, **params):
    reqs = []
    for i, q in enumerate(QUESTIONS):
        images = [_image(i)] if i != 2 else []  # one text-only request in the batch
        reqs.append(engine.prepare([ChatTurn("user", q, images)], SamplingParams(max_new_tokens=max_new_tokens,
                                                                                 **params)))
    return reqs


def test_greedy_batch_equals_one_by_one_with_left_padding(engine):
    reqs = _requests(engine)
    assert len({len(r.input_ids) for r in reqs}) > 3  # prompts really differ in length: padding is exercised
    batch = engine.generate(reqs)
    for req, got in zip(reqs, batch):
        alone = engine.generate([req])[0]
        assert got.token_ids == alone.token_ids
        assert got.text == alone.text
        assert got.finish_reason == alone.finish_reason
        assert got.prompt_tokens == len(req.input_ids)


def test_greedy_matches_the_models_own_chat(engine, tiny_model):
    model, tok = tiny_model
    img = _image(1)
    ours = engine.generate([engine.prepare([ChatTurn("user", "what color", [img])],
                                           SamplingParams(max_new_tokens=16))])[0]
    pv = engine.image_tensor(img).unsqueeze(0)
    reference = model.chat(tok, pv, "what color", dict(max_new_tokens=16, do_sample=False))
    assert ours.text.strip() == reference


def test_generate_batch_helper_matches_batch_chat(tiny_model):
    model, tok = tiny_model
    pvs = [torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    questions = ["what color", "<image>\nhow many objects are there", "describe"]
    ours = generate_batch(model, tok, questions, pvs, max_new_tokens=10)
    reference = [model.chat(tok, pv, q, dict(max_new_tokens=10, do_sample=False)) for q, pv in zip(questions, pvs)]
    assert ours == reference


def test_each_image_goes_through_the_vit_once(engine):
    img = _image(3)
    reqs = [engine.prepare([ChatTurn("user", q, [img])], SamplingParams(max_new_tokens=2)) for q in QUESTIONS]
    calls = []
    original = engine.model.extract_feature
    engine.model.extract_feature = lambda pv: calls.append(pv.shape[0]) or original(pv)
    engine.generate(reqs)
    engine.generate(reqs[:2])  # a second batch with the same image: served from the feature cache
    assert calls == [1]
    assert engine.vit_images_encoded == 1


def test_decoding_uses_the_kv_cache(engine):
    seen = []
    lm = engine.model.language_model
    original = lm.forward

    def spy(*args, **kwargs):
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        seen.append(x.shape[1])
        return original(*args, **kwargs)

    lm.forward = spy
    req = _requests(engine, max_new_tokens=6)[0]
    out = engine.generate([req])[0]
    assert out.completion_tokens == 6
    assert seen[0] == len(req.input_ids) and seen[1:] == [1] * 5  # prefill once, then one token per step


def test_max_new_tokens_gives_length_and_stop_token_ends_early(engine):
    req = _requests(engine, max_new_tokens=7)[1]
    out = engine.generate([req])[0]
    assert (out.finish_reason, out.completion_tokens) == ("length", 7)
    # make <|im_end|> the only sensible next token: generation stops at once, the stop token is not returned
    im_end = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    head = engine.model.language_model.get_output_embeddings()
    with torch.no_grad():
        head.bias = torch.nn.Parameter(torch.zeros(head.out_features))
        head.bias[im_end] = 1e4
    out = engine.generate([req])[0]
    assert (out.finish_reason, out.token_ids, out.text) == ("stop", [], "")


def test_user_stop_string_truncates_and_is_never_streamed(engine):
    req = _requests(engine, max_new_tokens=20)[0]
    full = engine.generate([req])[0].text
    stop = full[5:9]
    assert len(stop) == 4 and full.find(stop) == 5
    streamed = []
    req.params = SamplingParams(max_new_tokens=20, stop=(stop,))
    req.on_text = streamed.append
    out = engine.generate([req])[0]
    assert out.finish_reason == "stop"
    assert out.text == full[:5]
    assert "".join(streamed) == out.text


def test_streaming_pieces_add_up_to_the_answer(engine):
    reqs = _requests(engine, max_new_tokens=15)
    pieces = {i: [] for i in range(len(reqs))}
    for i, r in enumerate(reqs):
        r.on_text = pieces[i].append
    outs = engine.generate(reqs)
    for i, out in enumerate(outs):
        assert len(pieces[i]) > 3
        assert "".join(pieces[i]) == out.text


def test_sampling_is_seeded_and_top_p_tiny_is_greedy(engine):
    greedy = [o.token_ids for o in engine.generate(_requests(engine))]
    a = [o.token_ids for o in engine.generate(_requests(engine, temperature=1.5, seed=7))]
    b = [o.token_ids for o in engine.generate(_requests(engine, temperature=1.5, seed=7))]
    c = [o.token_ids for o in engine.generate(_requests(engine, temperature=1.5, seed=8))]
    assert a == b and a != c and a != greedy
    for top_p in (1e-6, 0.0):  # only the most likely token survives a tiny top_p
        nucleus = [o.token_ids for o in engine.generate(_requests(engine, temperature=1.5, top_p=top_p, seed=3))]
        assert nucleus == greedy


def test_cancelled_row_stops_while_others_continue(engine):
    import threading

    reqs = _requests(engine, max_new_tokens=10)[:2]
    reqs[0].cancelled = threading.Event()
    reqs[0].on_text = lambda _: reqs[0].cancelled.set()
    first, second = engine.generate(reqs)
    assert first.finish_reason == "cancelled" and first.completion_tokens < 10
    assert second.completion_tokens == 10


def test_multi_turn_prompt_is_the_v1_2_format(engine, tiny_model):
    model, _ = tiny_model
    img = _image(0)
    turns = [ChatTurn("user", "what color", [img]), ChatTurn("assistant", "red"), ChatTurn("user", "why")]
    prompt = engine.build_prompt(turns)
    assert prompt == model.build_prompt("why", history=[("<image>\nwhat color", "red")], num_patches_list=[1])
    assert prompt.count("<IMG_CONTEXT>") == model.num_image_token


def test_bad_inputs_raise_clear_errors(engine):
    with pytest.raises(ValueError, match="reserved marker '<IMG_CONTEXT>'"):
        engine.build_prompt([ChatTurn("user", "sneaky <IMG_CONTEXT>")])
    with pytest.raises(ValueError, match="must end with a user message"):
        engine.build_prompt([ChatTurn("user", "a"), ChatTurn("assistant", "b")])
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=1.5)
    req = _requests(engine)[0]
    with pytest.raises(ValueError, match="request 0: 4 <IMG_CONTEXT> tokens but 0 images"):
        engine.generate([GenerationRequest(req.input_ids, None, req.params)])
    with pytest.raises(ValueError, match="exceeds the model context"):
        engine.generate([GenerationRequest(req.input_ids, req.pixel_values, SamplingParams(max_new_tokens=5000))])
