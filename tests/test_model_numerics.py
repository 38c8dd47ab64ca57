"""Numerics of InternViT, pixel shuffle and the chat forward, against plain re-statements of the V1.2 maths."""

import math

import pytest
import torch
import torch.nn.functional as F

from internvl_chat.constants import IGNORE_INDEX
from internvl_chat.model import InternVisionConfig, InternVisionModel, pixel_shuffle


def _rms(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def naive_internvit(sd, cfg, pixel_values):
    """InternViT-6B V1.2 written out from the reference notes: explicit softmax attention, no helpers."""
    D, H = cfg.hidden_size, cfg.num_attention_heads
    hd, eps = D // H, cfg.layer_norm_eps
    x = F.conv2d(pixel_values, sd["embeddings.patch_embedding.weight"], sd["embeddings.patch_embedding.bias"],
                 stride=cfg.patch_size)
    B = x.shape[0]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["embeddings.class_embedding"].expand(B, 1, D), x], 1) + sd["embeddings.position_embedding"]
    states = [x]
    for i in range(cfg.num_hidden_layers):
        p = lambda n: sd[f"encoder.layers.{i}.{n}"]  # noqa: E731
        h = _rms(x, p("norm1.weight"), eps)
        qkv = h @ p("attn.qkv.weight").T
        q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
        q, k = _rms(q, p("attn.q_norm.weight"), eps), _rms(k, p("attn.k_norm.weight"), eps)
        heads = lambda t: t.reshape(B, -1, H, hd).transpose(1, 2)  # noqa: E731
        att = ((heads(q) * hd**-0.5) @ heads(k).transpose(-1, -2)).softmax(-1)
        a = (att @ heads(v)).transpose(1, 2).reshape(B, -1, D)
        a = a @ p("attn.proj.weight").T + p("attn.proj.bias")
        x = x + a * p("ls1")
        h = _rms(x, p("norm2.weight"), eps)
        m = F.gelu(h @ p("mlp.fc1.weight").T + p("mlp.fc1.bias")) @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
        x = x + m * p("ls2")
        states.append(x)
    return x, states


@pytest.fixture()
def vit():
    cfg = InternVisionConfig(hidden_size=48, num_attention_heads=3, intermediate_size=96, num_hidden_layers=3,
                             image_size=56, patch_size=14, initializer_range=0.2)
    torch.manual_seed(0)
    model = InternVisionModel(cfg).eval()
    with torch.no_grad():  # make every parameter non-trivial so a wrong formula cannot hide
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(("ls1", "ls2")):
                p.uniform_(0.5, 1.5)
    return model


def test_internvit_matches_naive_reference(vit):
    px = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        out = vit(px, output_hidden_states=True)
        ref, ref_states = naive_internvit(vit.state_dict(), vit.config, px)
    assert out.last_hidden_state.shape == (2, 17, 48)
    torch.testing.assert_close(out.last_hidden_state, ref, rtol=1e-5, atol=1e-5)
    assert len(out.hidden_states) == 4  # embeddings + one per layer
    for got, want in zip(out.hidden_states, ref_states):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.pooler_output, ref[:, 0])


def test_qk_norm_is_over_the_full_width_not_per_head(vit):
    """Per-head normalisation would give a different result; the released weights need full-width."""
    layer = vit.encoder.layers[0].attn
    assert layer.q_norm.weight.shape == (48,)
    x = torch.randn(1, 5, 48)
    with torch.no_grad():
        q = layer.qkv(x)[..., :48]
        full = layer.q_norm(q)
        per_head = torch.cat([_rms(c, w, 1e-6) for c, w in zip(q.split(16, -1), layer.q_norm.weight.split(16))], -1)
    assert not torch.allclose(full, per_head, atol=1e-4)


def test_drop_path_schedule_and_only_active_in_training():
    cfg = InternVisionConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=5,
                             image_size=28, patch_size=14, drop_path_rate=0.4)
    torch.manual_seed(0)
    model = InternVisionModel(cfg)
    rates = [layer.drop_path1.drop_prob if hasattr(layer.drop_path1, "drop_prob") else 0.0
             for layer in model.encoder.layers]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    ref = InternVisionModel(InternVisionConfig(**{**cfg.to_dict(), "drop_path_rate": 0.0}))
    ref.load_state_dict(model.state_dict())
    px = torch.randn(8, 3, 28, 28)
    model.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(px).last_hidden_state, ref(px).last_hidden_state)
        model.train()
        torch.manual_seed(1)
        a = model(px).last_hidden_state
        torch.manual_seed(2)
        b = model(px).last_hidden_state
    assert not torch.allclose(a, b)


def test_internvit_activation_checkpointing_through_transformers_gives_the_same_gradients(vit):
    """`gradient_checkpointing_enable()` (transformers' own switch) turns the encoder's checkpointing on and
    off, and recomputing the layers changes no gradient."""
    px = torch.randn(2, 3, 56, 56)

    def grads():
        vit.zero_grad()
        vit(px).last_hidden_state.square().sum().backward()
        return {n: p.grad.clone() for n, p in vit.named_parameters()}

    vit.train()
    want = grads()
    vit.gradient_checkpointing_enable()
    assert vit.encoder.gradient_checkpointing
    got = grads()
    for name in want:
        torch.testing.assert_close(got[name], want[name])
    vit.gradient_checkpointing_disable()
    assert not vit.encoder.gradient_checkpointing


def _index_grid(h=4, w=4, c=2):
    """x[n, row, col, ch] = 100*row + 10*col + ch, so every output value names its source."""
    rows = torch.arange(h).view(h, 1, 1) * 100
    cols = torch.arange(w).view(1, w, 1) * 10
    return (rows + cols + torch.arange(c).view(1, 1, c)).unsqueeze(0).float()


def test_pixel_shuffle_v1_layout_is_the_transposed_grid():
    x = _index_grid()
    out = pixel_shuffle(x, 0.5, "v1").reshape(1, 4, 8)  # 2x2 blocks -> 4 tokens of 4*2 channels
    for t in range(4):
        j, i = divmod(t, 2)  # v1: token t = j * (w/2) + i  (column pair major)
        expect = []
        for (r, c) in [(2 * i, 2 * j), (2 * i, 2 * j + 1), (2 * i + 1, 2 * j), (2 * i + 1, 2 * j + 1)]:
            expect += [100 * r + 10 * c + ch for ch in range(2)]
        assert out[0, t].tolist() == expect, t


def test_pixel_shuffle_v2_layout_is_row_major():
    x = _index_grid()
    out = pixel_shuffle(x, 0.5, "v2").reshape(1, 4, 8)
    for t in range(4):
        i, j = divmod(t, 2)  # v2: token t = i * (w/2) + j  (row pair major)
        expect = []
        for (r, c) in [(2 * i, 2 * j), (2 * i, 2 * j + 1), (2 * i + 1, 2 * j), (2 * i + 1, 2 * j + 1)]:
            expect += [100 * r + 10 * c + ch for ch in range(2)]
        assert out[0, t].tolist() == expect, t


def test_pixel_shuffle_v1_full_v1_2_shape():
    out = pixel_shuffle(torch.zeros(1, 32, 32, 3200), 0.5, "v1")
    assert out.shape == (1, 16, 16, 12800)


def test_extract_feature_is_vit_then_shuffle_then_projector(tiny_model):
    model, _ = tiny_model
    px = torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        vit = model.vision_model(px).last_hidden_state[:, 1:]
        g = int(math.sqrt(vit.shape[1]))
        shuffled = pixel_shuffle(vit.reshape(3, g, g, -1), 0.5, "v1").reshape(3, -1, vit.shape[-1] * 4)
        want = model.mlp1(shuffled)
        got = model.extract_feature(px)
    assert got.shape == (3, model.num_image_token, model.config.llm_config.hidden_size)
    torch.testing.assert_close(got, want)


def _sample(model, tok, question="What colour is the circle?", answer="Red."):
    prompt = model.build_prompt(question, num_patches_list=[1]) + answer + "<|im_end|>"
    ids = torch.tensor([tok(prompt).input_ids])
    labels = ids.clone()
    labels[:, : ids.shape[1] - 4] = IGNORE_INDEX
    return ids, labels


def test_forward_injects_features_at_context_tokens_and_computes_shifted_loss(tiny_model):
    model, tok = tiny_model
    ids, labels = _sample(model, tok)
    px = torch.randn(1, 3, 56, 56)
    seen = {}
    def grab(mod, args, kwargs):
        seen["embeds"] = kwargs["inputs_embeds"]

    hook = model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        out = model(pixel_values=px, input_ids=ids, labels=labels, image_flags=torch.tensor([[1]]))
        feats = model.extract_feature(px)[0]
    hook.remove()
    ctx = (ids[0] == model.img_context_token_id).nonzero().squeeze(1)
    assert len(ctx) == model.num_image_token
    torch.testing.assert_close(seen["embeds"][0, ctx], feats)
    others = (ids[0] != model.img_context_token_id).nonzero().squeeze(1)
    torch.testing.assert_close(seen["embeds"][0, others], model.language_model.get_input_embeddings()(ids[0, others]))
    manual = F.cross_entropy(out.logits[0, :-1].float(), labels[0, 1:], ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, manual)


def test_image_flags_drop_padding_images_and_text_only_batches_work(tiny_model):
    model, tok = tiny_model
    ids, labels = _sample(model, tok)
    text = torch.tensor([tok(model.build_prompt("Hello?", has_image=False) + "Hi.<|im_end|>").input_ids])
    px = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        one = model(pixel_values=px[:1], input_ids=ids, labels=labels, image_flags=torch.tensor([1])).loss
        # Same sample, plus a dummy image flagged 0 (as text-only samples carry): identical loss.
        two = model(pixel_values=px, input_ids=ids, labels=labels, image_flags=torch.tensor([1, 0])).loss
        t = model(pixel_values=px[:1], input_ids=text, labels=text, image_flags=torch.tensor([0])).loss
    torch.testing.assert_close(one, two)
    assert torch.isfinite(t)


def test_count_mismatch_raises_naming_both_counts(tiny_model):
    model, tok = tiny_model
    ids, labels = _sample(model, tok)
    ctx = (ids[0] == model.img_context_token_id).nonzero().squeeze(1)
    broken = ids.clone()
    broken[0, ctx[-1]] = tok.convert_tokens_to_ids("<|im_start|>")  # one context token short
    with pytest.raises(ValueError, match=rf"{model.num_image_token - 1} <IMG_CONTEXT> tokens.*{model.num_image_token} image feature"):
        model(pixel_values=torch.randn(1, 3, 56, 56), input_ids=broken, labels=labels)
    with pytest.raises(ValueError, match="2 images"):
        model(pixel_values=torch.randn(2, 3, 56, 56), input_ids=ids, labels=labels)


def test_num_items_in_batch_gives_token_weighted_loss(tiny_model):
    model, tok = tiny_model
    ids, labels = _sample(model, tok)
    px = torch.randn(1, 3, 56, 56)
    n = int((labels[:, 1:] != IGNORE_INDEX).sum())
    with torch.no_grad():
        mean = model(pixel_values=px, input_ids=ids, labels=labels).loss
        summed = model(pixel_values=px, input_ids=ids, labels=labels, num_items_in_batch=2 * n).loss
    torch.testing.assert_close(summed * 2, mean)


def test_position_embedding_interpolates_when_force_image_size_differs():
    from internvl_chat.model.vision import resize_position_embedding

    cfg = InternVisionConfig(hidden_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=1,
                             image_size=28, patch_size=14)
    model = InternVisionModel(cfg)
    old = model.embeddings.position_embedding.detach().clone()
    model.resize_pos_embeddings(28, 56, 14)
    new = model.embeddings.position_embedding
    assert new.shape == (1, 17, 16)
    torch.testing.assert_close(new[:, :1], old[:, :1])
    grid = F.interpolate(old[:, 1:].reshape(1, 2, 2, 16).permute(0, 3, 1, 2), size=(4, 4), mode="bicubic",
                         align_corners=False)
    torch.testing.assert_close(new[:, 1:], grid.flatten(2).transpose(1, 2))
    torch.testing.assert_close(resize_position_embedding(old, 4), new.detach())
    assert model(torch.randn(1, 3, 56, 56)).last_hidden_state.shape == (1, 17, 16)


def test_forward_with_past_key_values_continues_the_sequence(tiny_model):
    model, tok = tiny_model
    ids = torch.tensor([tok("Hello there, how are you?").input_ids])
    nxt = torch.tensor([[tok.convert_tokens_to_ids("<|im_end|>")]])
    with torch.no_grad():
        first = model(input_ids=ids, use_cache=True)
        step = model(input_ids=nxt, past_key_values=first.past_key_values, use_cache=True)
        full = model(input_ids=torch.cat([ids, nxt], 1)).logits
    torch.testing.assert_close(step.logits[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)


def test_loss_only_gives_the_same_loss_and_gradients_without_full_logits(tiny_model):
    model, tok = tiny_model
    model.train()
    ids, labels = _sample(model, tok)
    ids, labels = torch.cat([ids, ids]), torch.cat([labels, labels])
    labels[1, -2:] = IGNORE_INDEX
    px = torch.randn(2, 3, 56, 56)
    flags = torch.tensor([1, 1])
    full = model(pixel_values=px, input_ids=ids, labels=labels, image_flags=flags, num_items_in_batch=7)
    full.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    fast = model(pixel_values=px, input_ids=ids, labels=labels, image_flags=flags, num_items_in_batch=7, loss_only=True)
    fast.loss.backward()
    assert fast.logits is None
    torch.testing.assert_close(fast.loss, full.loss, rtol=1e-6, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-5, atol=1e-7, msg=n)
    mean_full = model(pixel_values=px, input_ids=ids, labels=labels, image_flags=flags).loss
    mean_fast = model(pixel_values=px, input_ids=ids, labels=labels, image_flags=flags, loss_only=True).loss
    torch.testing.assert_close(mean_fast, mean_full, rtol=1e-6, atol=1e-6)
