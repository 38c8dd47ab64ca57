"""A data set with one of each kind of broken record: `data check` names each with its
reason, and a training pass over it uses every good sample and reports every bad one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from internvl_chat.constants import IMG_CONTEXT_TOKEN
from internvl_chat.data import Collator, MixSampler, RejectLog, SampleRejected, SupervisedDataset, TooManyRejects
from internvl_chat.data.cli import main as data_main
from internvl_chat.data.jsonl_index import JsonlIndex, scan_line_offsets
from internvl_chat.model.tokenizer import build_tiny_tokenizer

NUM_IMAGE_TOKEN, MAX_LENGTH, SIZE = 4, 96, 28


def conv(q, a):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture()
def broken(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERNVL_CHAT_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    for k, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40, 30), colour).save(data / "img" / f"good{k}.jpg", quality=90)
    good_bytes = (data / "img" / "good0.jpg").read_bytes()
    (data / "img" / "broken.jpg").write_bytes(good_bytes[: len(good_bytes) // 2])  # truncated JPEG
    (data / "img" / "garbage.jpg").write_bytes(b"this is not an image at all")
    lines = [
        json.dumps({"id": "good-0", "image": "img/good0.jpg", "conversations": conv("<image>\nColour?", "red")}),
        json.dumps({"id": "broken-jpeg", "image": "img/broken.jpg", "conversations": conv("<image>\nColour?", "red")}),
        json.dumps({"id": "good-1", "image": "img/good1.jpg", "conversations": conv("Colour?\n<image>", "green")}),
        json.dumps({"id": "missing-image", "image": "img/nope.jpg", "conversations": conv("<image>\nhi", "x")}),
        '{"id": "bad-json", "image": "img/good0.jpg", "conversations": [',
        json.dumps({"id": "good-text", "conversations": conv("What is the capital of France?", "Paris")}),
        json.dumps({"id": "role-order", "conversations": [{"from": "human", "value": "a"},
                                                           {"from": "human", "value": "b"}]}),
        json.dumps({"id": "image-count", "image": "img/good2.jpg",
                    "conversations": conv("<image>\n<image>\nSame?", "yes")}),
        json.dumps({"id": "over-length", "image": "img/good2.jpg",
                    "conversations": conv("<image>\n" + "describe the red circle and blue square " * 30, "ok")}),
        json.dumps({"id": "good-2", "image": "img/good2.jpg",
                    "conversations": [{"from": "gpt", "value": "Hi!"}] + conv("<image>\nColour?", "blue")}),
        json.dumps({"id": "undecodable", "image": "img/garbage.jpg", "conversations": conv("<image>\nhi", "x")}),
    ]
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"broken_mix": {"root": "data", "annotation": "data/train.jsonl",
                                               "data_augment": False, "repeat_time": 1, "length": len(lines)}}))
    return meta, data


EXPECTED = {  # id (or line for the unparseable one) -> (kind, a fragment of the reason)
    "broken-jpeg": ("image undecodable", "broken.jpg"),
    "missing-image": ("image not found", "image not found:"),
    5: ("invalid JSON", "invalid JSON at line 5"),
    "role-order": ("role order", "role order: turn 1 is 'human', expected 'gpt'"),
    "image-count": ("<image> count", "<image> count 2 != 1 images"),
    "over-length": ("over length", "over length:"),
    "undecodable": ("image undecodable", "garbage.jpg"),
}
GOOD = {"good-0", "good-1", "good-text", "good-2"}


def _key(rec):
    return rec["id"] if rec["id"] is not None else rec["line"]


def test_data_check_names_every_bad_record(broken, tmp_path, capsys):
    meta, data = broken
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    rejects = tmp_path / "rejects.jsonl"
    rc = data_main(["check", str(meta), "--rejects", str(rejects), "--num-image-token", str(NUM_IMAGE_TOKEN),
                    "--max-length", str(MAX_LENGTH), "--no-progress"])
    assert rc == 1
    recs = [json.loads(line) for line in rejects.read_text().splitlines()]
    got = {_key(r): r for r in recs}
    assert set(got) == set(EXPECTED)
    for key, (kind, fragment) in EXPECTED.items():
        assert got[key]["kind"] == kind and fragment in got[key]["reason"], got[key]
        assert got[key]["dataset"] == "broken_mix" and got[key]["line"] is not None
    out = capsys.readouterr().out
    assert "broken_mix" in out and "approximate" in out and "FAILED: 7 of 11" in out
    after = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert after == before  # check never modifies the data


def test_training_pass_uses_all_good_samples_and_reports_each_bad_one(broken, tok, tmp_path):
    meta, _ = broken
    ds = SupervisedDataset(meta, tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE, max_length=MAX_LENGTH,
                           overlength="reject")
    assert len(ds) == 11
    loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=MixSampler(len(ds), seed=1),
                                         collate_fn=Collator(tok.pad_token_id), num_workers=0)
    log = RejectLog(tmp_path / "run" / "rejects.jsonl", max_reject_fraction=0.9, min_samples=1)
    trained_ids = []
    for batch in loader:
        log.update(batch)
        if batch.empty:
            continue
        trained_ids += batch.ids
        n_img = batch.inputs["pixel_values"].shape[0]
        assert n_img == batch.inputs["input_ids"].shape[0] == batch.inputs["image_flags"].numel()
        # Every image whose flag is 1 has exactly one image block in its row.
        ctx = (batch.inputs["input_ids"] == tok.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)).sum(1)
        assert ctx.tolist() == [NUM_IMAGE_TOKEN * int(f) for f in batch.inputs["image_flags"]]
    log.close()
    assert sorted(trained_ids) == sorted(GOOD)  # nothing good is lost, nothing bad trained on
    logged = {_key(json.loads(line)): json.loads(line) for line in (tmp_path / "run" / "rejects.jsonl").read_text().splitlines()}
    assert set(logged) == set(EXPECTED)
    summary = log.summary()
    assert summary["seen"] == 11 and summary["rejected"] == 7
    assert summary["rejected_by_dataset"]["broken_mix"]["image undecodable"] == 2


def test_text_only_sample_gets_white_image_and_flag_zero(broken, tok):
    meta, _ = broken
    ds = SupervisedDataset(meta, tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE, max_length=MAX_LENGTH)
    item = ds[5]
    assert item["id"] == "good-text" and item["image_flags"].tolist() == [0]
    assert item["pixel_values"].shape == (1, 3, SIZE, SIZE)
    assert torch.allclose(item["pixel_values"], ds[5]["pixel_values"])
    assert tok.convert_tokens_to_ids(IMG_CONTEXT_TOKEN) not in item["input_ids"].tolist()


def test_raise_mode_and_reject_fraction_abort(broken, tok, tmp_path):
    meta, _ = broken
    ds = SupervisedDataset(meta, tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE, max_length=MAX_LENGTH,
                           on_reject="raise")
    with pytest.raises(SampleRejected) as err:
        ds[3]
    assert err.value.dataset == "broken_mix" and err.value.id == "missing-image"
    assert "train.jsonl:4" in str(err.value)
    ds.on_reject = "return"
    log = RejectLog(None, max_reject_fraction=0.3, min_samples=5)
    with pytest.raises(TooManyRejects, match="rejected"):
        for start in range(0, 11, 2):
            log.update(Collator(tok.pad_token_id)([ds[i] for i in range(start, min(start + 2, 11))]))


def test_truncated_samples_are_kept_and_reported(broken, tok, tmp_path):
    _, data = broken
    long = json.dumps({"id": "long-answer", "image": "img/good0.jpg",
                       "conversations": conv("<image>\nDescribe.", "a red circle and a blue square " * 30)})
    (data / "long.jsonl").write_text(long + "\n")
    meta = {"long": {"root": str(data), "annotation": str(data / "long.jsonl")}}
    ds = SupervisedDataset(meta, tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE, max_length=MAX_LENGTH)
    item = ds[0]  # over length, but only the answer is cut: kept as the original does, and reported
    assert item["truncated"] > 0 and item["input_ids"].numel() == MAX_LENGTH
    log = RejectLog(tmp_path / "r.jsonl")
    log.update(Collator(tok.pad_token_id)([item]))
    log.close()
    rec = json.loads((tmp_path / "r.jsonl").read_text())
    assert rec["kept"] and rec["id"] == "long-answer" and "truncated" in rec["reason"]


def test_jsonl_index_is_cached_and_random_access(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = [json.dumps({"i": i, "pad": "x" * (i * 37 % 101)}) for i in range(1000)]
    path.write_text("\n".join(lines))  # no trailing newline on the last line
    offsets = scan_line_offsets(path)
    assert offsets.dtype == np.int64 and len(offsets) == 1000
    idx = JsonlIndex(path, cache_dir=tmp_path / "cache")
    assert idx.cache_file.is_file() and isinstance(idx.offsets, np.memmap)
    for i in (0, 1, 500, 999):
        assert json.loads(idx.read(i))["i"] == i
    import pickle
    clone = pickle.loads(pickle.dumps(idx))  # what a dataloader worker receives
    assert clone._offsets is None and len(pickle.dumps(idx)) < 2000
    assert json.loads(clone.read(777))["i"] == 777
    with pytest.raises(IndexError):
        idx.read(1000)
    # Editing the file gives a new cache key, so a stale index is never used.
    path.write_text("\n".join(lines[:10]) + "\n")
    assert len(JsonlIndex(path, cache_dir=tmp_path / "cache")) == 10


def test_repeat_time_subsamples_and_repeats(tmp_path, tok, monkeypatch):
    monkeypatch.setenv("INTERNVL_CHAT_CACHE", str(tmp_path / "cache"))
    for name, n in (("a", 10), ("b", 3)):
        rows = [json.dumps({"id": f"{name}{i}", "conversations": conv(f"q {i}", f"answer {i}")}) for i in range(n)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    meta = {"a": {"root": ".", "annotation": "a.jsonl", "repeat_time": 0.5},
            "b": {"root": ".", "annotation": "b.jsonl", "repeat_time": 3}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    ds = SupervisedDataset(tmp_path / "meta.json", tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE)
    assert ds.dataset_sizes() == {"a": 5, "b": 9}
    ids = [ds[i]["id"] for i in range(len(ds))]
    assert ids == ["a0", "a1", "a2", "a3", "a4"] + ["b0", "b1", "b2"] * 3
    lengths = ds.lengths()
    assert lengths.tolist() == [ds[i]["input_ids"].numel() for i in range(len(ds))]


def test_data_augment_crops_are_deterministic_per_epoch(tmp_path, tok):
    img = Image.new("RGB", (64, 48))
    img.putdata([(x * 4, y * 5, (x + y) % 256) for y in range(48) for x in range(64)])
    img.save(tmp_path / "g.png")
    row = json.dumps({"id": "a", "image": "g.png", "conversations": conv("<image>\nColour?", "many")})
    (tmp_path / "a.jsonl").write_text(row + "\n")
    meta = {"aug": {"root": str(tmp_path), "annotation": str(tmp_path / "a.jsonl"), "data_augment": True},
            "plain": {"root": str(tmp_path), "annotation": str(tmp_path / "a.jsonl"), "data_augment": False}}
    ds = SupervisedDataset(meta, tok, num_image_token=NUM_IMAGE_TOKEN, image_size=SIZE, on_reject="raise",
                           cache_dir=tmp_path / "cache")
    aug0, plain0 = ds[0]["pixel_values"], ds[1]["pixel_values"]
    assert torch.equal(aug0, ds[0]["pixel_values"])  # same (seed, epoch, index): same crop
    assert not torch.allclose(aug0, plain0)
    ds.set_epoch(1)
    assert not torch.equal(aug0, ds[0]["pixel_values"]) and torch.equal(plain0, ds[1]["pixel_values"])


@pytest.mark.parametrize("record,kind,fragment", [
    ({"id": 1, "conversations": []}, "schema", "non-empty list"),
    ({"id": 1, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "  "}]}, "schema",
     "turn 1 (gpt) has an empty value"),
    ({"id": 1, "conversations": [{"from": "system", "value": "s"}, {"from": "gpt", "value": "a"}]}, "role order",
     "unknown role 'system'"),
    ({"id": 1, "conversations": [{"from": "human", "value": "q"}]}, "no supervised tokens", "no assistant turn"),
    ({"id": 1, "conversations": conv("<image>\nq", "a")}, "<image> count", "<image> count 1 != 0 images"),
    ({"id": 1, "image": "x.jpg", "conversations": conv("q", "see <image>")}, "<image> count", "assistant turn"),
    ({"id": 1, "image": 3, "conversations": conv("q", "a")}, "schema", "'image' must be a string"),
    ({"id": 1, "conversations": conv("q <|im_end|>", "a")}, "schema", "control string"),
])
def test_record_validation_reasons(record, kind, fragment):
    from internvl_chat.data.formats import RecordError, validate_record
    with pytest.raises(RecordError) as err:
        validate_record(record, 3)
    assert err.value.kind == kind and fragment in err.value.reason


def test_record_normalisation_matches_the_original():
    from internvl_chat.data.formats import validate_record
    rec = validate_record({"id": 7, "image": "a.jpg", "conversations": [{"from": "gpt", "value": "hi"}] +
                           conv("What is it?", "a cat")}, 1)
    assert rec.id == "7" and rec.image == "a.jpg"
    assert [t["from"] for t in rec.conversations] == ["human", "gpt"]  # leading assistant turn dropped
    assert rec.conversations[0]["value"] == "<image>\nWhat is it?"  # placeholder added in front, as the original
    assert validate_record({"id": 8, "image": "", "conversations": conv("q", "a")}, 2).image is None  # text-only


@pytest.mark.parametrize("pack", [False, True])
def test_an_all_rejected_batch_is_a_stand_in_with_zero_loss(pack):
    """Every sample rejected: the collator still returns model inputs (one pad token, no label, a dummy image
    of the model's size with flag 0), so every rank runs the same modules; the loss is exactly 0."""
    from internvl_chat.data import RejectedSample
    from internvl_chat.model.presets import build_tiny_model

    model, tok = build_tiny_model(image_size=56)
    rejects = [RejectedSample("d", str(i), i + 1, "image not found", "missing") for i in range(2)]
    batch = Collator(tok.pad_token_id, pack=pack, token_budget=64, image_size=56)(rejects)
    assert batch.empty and batch.num_samples == 0 and batch.rejects == rejects and batch.supervised == 0
    assert batch.inputs["pixel_values"].shape == (1, 3, 56, 56) and batch.inputs["image_flags"].tolist() == [0]
    loss = model(**batch.inputs, use_cache=False, num_items_in_batch=1.0, loss_only=True).loss
    assert loss.item() == 0.0
    loss.backward()  # the ViT ran: its parameters get (zero) gradients, as on a rank with real images
    assert model.vision_model.embeddings.patch_embedding.weight.grad is not None
