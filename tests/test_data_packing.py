"""Packing: a packed batch gives the same per-sample loss as each sample alone (1e-5 on CPU)."""

from __future__ import annotations

import pytest
import torch

from internvl_chat.constants import IGNORE_INDEX
from internvl_chat.data import Collator, PackedBatchSampler, SupervisedDataset, greedy_packs, per_sample_loss
from internvl_chat.data.packing import block_causal_mask, cu_seqlens, pack_collate
from internvl_chat.data.synth import generate
from internvl_chat.model.tokenizer import build_tiny_tokenizer

NUM_IMAGE_TOKEN, SIZE = 4, 56


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("synth")
    generate(root, n_train=6, n_test=0, seed=7, image_size=SIZE)
    return SupervisedDataset(root / "meta.json", tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE,
                             max_length=256, on_reject="raise", cache_dir=root / "cache")


def _tiny_llama(vocab: int, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def _text_items(tok, n=5):
    from internvl_chat.data import preprocess
    items = []
    for k in range(n):
        conv = [{"from": "human", "value": "what colour is the circle " * (k + 1)},
                {"from": "gpt", "value": "red and blue " * (2 * k + 1)}]
        items.append({**preprocess(conv, tok, "Hermes-2", NUM_IMAGE_TOKEN, 512, text_only=True),
                      "pixel_values": torch.zeros(1, 3, 2, 2), "image_flags": torch.tensor([0]),
                      "dataset": "t", "id": str(k), "truncated": 0})
    return items


def _alone_losses(forward, items, pad_id):
    losses = []
    for it in items:
        b = Collator(pad_id)([it])
        logits = forward(b, alone=True)
        losses.append(per_sample_loss(logits, b.inputs["labels"], b.sample_index)[0])
    return torch.stack(losses)


@pytest.mark.parametrize("attn,mask", [("sdpa", "4d"), ("eager", "4d_additive"), ("sdpa", "position_ids")])
def test_packed_llama_loss_equals_unpacked(tok, attn, mask):
    model = _tiny_llama(len(tok), attn)
    items = _text_items(tok)
    budget = sum(it["input_ids"].numel() for it in items[:3])  # forces at least two rows

    def forward(b, alone=False):
        with torch.no_grad():
            kw = {} if alone else {"use_cache": False}  # position_ids packing needs no KV cache
            return model(input_ids=b.inputs["input_ids"], attention_mask=b.inputs["attention_mask"],
                         position_ids=b.inputs["position_ids"], **kw).logits

    batch = Collator(tok.pad_token_id, pack=True, token_budget=budget, mask=mask)(items)
    assert batch.inputs["input_ids"].shape[0] >= 2
    packed = per_sample_loss(forward(batch), batch.inputs["labels"], batch.sample_index)
    torch.testing.assert_close(packed, _alone_losses(forward, items, tok.pad_token_id), atol=1e-5, rtol=0)


def test_position_ids_alone_leak_when_a_cache_is_built(tok):
    """transformers detects packing from position ids only without a KV cache: with the
    config default use_cache=True the samples attend to each other. Hence the default 4-D mask."""
    model = _tiny_llama(len(tok), "sdpa")
    items = _text_items(tok, 3)
    batch = Collator(tok.pad_token_id, pack=True, token_budget=10_000, mask="position_ids")(items)
    with torch.no_grad():
        leaky = model(input_ids=batch.inputs["input_ids"], position_ids=batch.inputs["position_ids"]).logits
        right = model(input_ids=batch.inputs["input_ids"], position_ids=batch.inputs["position_ids"],
                      use_cache=False).logits
    leak = per_sample_loss(leaky, batch.inputs["labels"], batch.sample_index)
    ok = per_sample_loss(right, batch.inputs["labels"], batch.sample_index)
    assert torch.allclose(leak[0], ok[0], atol=1e-6)  # the first sample sees nothing before it anyway
    assert not torch.allclose(leak[1:], ok[1:], atol=1e-4)


def test_packed_internvl_model_loss_equals_unpacked(tok, synth_dataset):
    from internvl_chat.model.presets import build_tiny_model

    model, _ = build_tiny_model(tokenizer=tok, image_size=SIZE)
    assert model.num_image_token == NUM_IMAGE_TOKEN
    items = [synth_dataset[i] for i in range(0, len(synth_dataset), 3)]  # all four task families
    budget = 256

    def forward(b, alone=False):
        with torch.no_grad():
            return model(pixel_values=b.inputs["pixel_values"], input_ids=b.inputs["input_ids"],
                         attention_mask=b.inputs["attention_mask"], position_ids=b.inputs["position_ids"],
                         image_flags=b.inputs["image_flags"]).logits

    batch = Collator(tok.pad_token_id, pack=True, token_budget=budget)(items)
    assert batch.inputs["input_ids"].shape[0] < len(items)  # really packed
    packed = per_sample_loss(forward(batch), batch.inputs["labels"], batch.sample_index)
    torch.testing.assert_close(packed, _alone_losses(forward, items, tok.pad_token_id), atol=1e-5, rtol=0)
    # The model's own mean loss equals the token-weighted mean of the samples' losses.
    with torch.no_grad():
        loss = model(pixel_values=batch.inputs["pixel_values"], input_ids=batch.inputs["input_ids"],
                     attention_mask=batch.inputs["attention_mask"], position_ids=batch.inputs["position_ids"],
                     image_flags=batch.inputs["image_flags"], labels=batch.inputs["labels"]).loss
    counts = torch.tensor([int((it["labels"][1:] != IGNORE_INDEX).sum()) for it in items], dtype=torch.float)
    torch.testing.assert_close(loss, (packed * counts).sum() / counts.sum(), atol=1e-5, rtol=0)


def test_pack_layout(tok):
    items = _text_items(tok, 4)
    lens = [it["input_ids"].numel() for it in items]
    budget = lens[0] + lens[1]
    batch = pack_collate(items, tok.pad_token_id, budget)
    packs = greedy_packs(lens, budget)
    assert batch.inputs["input_ids"].shape == (len(packs), max(sum(lens[i] for i in p) for p in packs))
    row0 = batch.inputs["position_ids"][0, : lens[0] + lens[1]].tolist()
    assert row0 == list(range(lens[0])) + list(range(lens[1]))  # positions restart per sample
    starts = [0, lens[0]]
    assert all(batch.inputs["labels"][0, s] == IGNORE_INDEX for s in starts)
    mask = batch.inputs["attention_mask"][0, 0]
    assert mask[lens[0], lens[0] - 1].item() is False and mask[lens[0] + 1, lens[0]].item() is True
    assert torch.equal(cu_seqlens(batch.sample_index)[:3], torch.tensor([0, lens[0], budget], dtype=torch.int32))
    assert batch.inputs["pixel_values"].shape[0] == batch.inputs["image_flags"].numel() == 4
    # Padded (unpacked) collation pads only to the longest sample.
    padded = Collator(tok.pad_token_id)(items)
    assert padded.inputs["input_ids"].shape == (4, max(lens))
    assert padded.inputs["attention_mask"].sum(1).tolist() == lens
    assert (padded.inputs["input_ids"][padded.inputs["attention_mask"] == 0] == tok.pad_token_id).all()
    assert (padded.inputs["labels"][padded.inputs["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_block_mask_pads_never_empty():
    idx = torch.tensor([[0, 0, 1, -1, -1]])
    m = block_causal_mask(idx)[0, 0]
    assert m.any(dim=-1).all()
    assert not m[2, :2].any() and m[2, 2]


def test_packed_batch_sampler_matches_collator(tok, synth_dataset):
    lengths = synth_dataset.lengths()
    order = list(torch.randperm(len(synth_dataset), generator=torch.Generator().manual_seed(0)).tolist())
    budget = 200
    batches = list(PackedBatchSampler(order, lengths, budget, rows_per_batch=2))
    assert sorted(i for b in batches for i in b) == sorted(order)
    for b in batches[:-1]:
        out = Collator(tok.pad_token_id, pack=True, token_budget=budget)([synth_dataset[i] for i in b])
        assert out.inputs["input_ids"].shape[0] == 2 and out.inputs["input_ids"].shape[1] <= budget


def test_the_loader_pins_the_inputs_of_a_batch(monkeypatch, tok):
    """DataLoader(pin_memory=True) pins an object through its own pin_memory method and passes any other
    object through unpinned: the Batch pins its inputs, so copies to the GPU stay asynchronous."""
    from torch.utils.data._utils.pin_memory import pin_memory

    from internvl_chat.data import Batch

    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: pinned.append(self) or self.clone())
    for collate in (Collator(tok.pad_token_id), Collator(tok.pad_token_id, pack=True, token_budget=10_000)):
        batch = collate(_text_items(tok, 2))
        pinned.clear()
        out = pin_memory(batch)
        assert isinstance(out, Batch) and out.ids == batch.ids and out.supervised == batch.supervised
        tensors = [v for v in batch.inputs.values() if torch.is_tensor(v)]
        assert len(pinned) == len(tensors) and all(any(p is t for t in tensors) for p in pinned)
        assert all(torch.equal(out.inputs[k], v) for k, v in batch.inputs.items() if torch.is_tensor(v))
