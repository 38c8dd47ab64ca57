"""Break 2: packing + flash-attention. transformers' flash path splits packed samples by
`position_ids` only for a one-row batch; with 2+ rows it needs `cu_seq_lens_*`. The
pure-PyTorch stand-in (`varlen_reference`) follows flash's rules on CPU."""

from __future__ import annotations

import pytest
import torch

from internvl_chat.data import Collator, SupervisedDataset, per_sample_loss
from internvl_chat.data.synth import generate
from internvl_chat.model.presets import build_tiny_model
from internvl_chat.model.varlen_reference import register_varlen_reference, segment_ids
from internvl_chat.model.tokenizer import build_tiny_tokenizer

SIZE = 56


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tok = build_tiny_tokenizer()
    model, _ = build_tiny_model(tokenizer=tok, image_size=SIZE)
    model.language_model.config._attn_implementation = register_varlen_reference()
    root = tmp_path_factory.mktemp("synth")
    generate(root, n_train=6, n_test=0, seed=3, image_size=SIZE)
    ds = SupervisedDataset(root / "meta.json", tok, num_image_token=model.num_image_token, image_size=SIZE,
                           max_length=256, on_reject="raise", cache_dir=root / "cache")
    items = [ds[i] for i in range(0, len(ds), 2)]
    return model, tok, items


def _losses(model, batch, inputs):
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits
    return per_sample_loss(logits, batch.inputs["labels"], batch.sample_index)


def _alone(model, tok, items):
    out = []
    for it in items:
        b = Collator(tok.pad_token_id)([it])
        out.append(_losses(model, b, b.to("cpu").inputs)[0])
    return torch.stack(out)


def test_stand_in_follows_flash_rules():
    pos = torch.tensor([[0, 1, 2, 0, 1]])
    assert segment_ids(1, 5, position_ids=pos).tolist() == [1, 1, 1, 2, 2]  # one row: split at restarts
    assert segment_ids(2, 5, position_ids=pos.repeat(2, 1)).tolist() == [0] * 5 + [1] * 5  # 2 rows: per row only
    cu = torch.tensor([0, 3, 5, 8, 10])
    assert segment_ids(2, 5, position_ids=pos.repeat(2, 1), cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=3,
                       max_length_k=3).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_trainer_inputs_keep_packed_samples_apart_with_two_rows(setup):
    model, tok, items = setup
    lengths = sorted(int(it["input_ids"].numel()) for it in items)
    budget = max(lengths[-1], sum(lengths) // 3 + 1)  # about three rows of several samples
    batch = Collator(tok.pad_token_id, pack=True, token_budget=budget, mask="position_ids")(items)
    assert batch.inputs["input_ids"].shape[0] >= 2 and batch.num_samples > batch.inputs["input_ids"].shape[0]
    alone = _alone(model, tok, items)
    packed = _losses(model, batch, batch.to("cpu").inputs)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)
    # What the loop passed before the fix (no varlen offsets): flash-attention mixes the samples of a row.
    varlen = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
    leaky = _losses(model, batch, {k: v for k, v in batch.inputs.items() if k not in varlen})
    assert (leaky - alone).abs().max() > 1e-3
