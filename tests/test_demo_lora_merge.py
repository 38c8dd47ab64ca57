"""Merging a LoRA export whose LLM ties its embeddings (SmolLM2-style) gives the same model, plain."""

from __future__ import annotations

import pytest
import torch

from internvl_chat.demo.run import merge_lora_export
from internvl_chat.demo.smollm2 import ScratchLLM, write_scratch_llm
from internvl_chat.model import (CheckpointMismatchError, InternVisionConfig, InternVisionModel, InternVLChatModel,
                                 compose_from_parts)


@pytest.fixture()
def lora_export(tmp_path):
    write_scratch_llm(tmp_path / "llm", ScratchLLM(hidden_size=32, num_layers=1, vocab_size=600))
    torch.manual_seed(0)
    InternVisionModel(InternVisionConfig(image_size=28, patch_size=14, hidden_size=32, num_attention_heads=2,
                                         intermediate_size=64, num_hidden_layers=1)).save_pretrained(tmp_path / "vit")
    model, tok = compose_from_parts(tmp_path / "vit", tmp_path / "llm", dtype=torch.float32, force_image_size=28)
    model.wrap_llm_lora(r=4, lora_alpha=8, lora_dropout=0.0)
    model.config.use_llm_lora = 4
    with torch.no_grad():  # non-zero adapters, so that merging changes the base weights
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "lora")
    tok.save_pretrained(tmp_path / "lora")
    return model.eval(), tok, tmp_path


def test_merged_model_matches_the_adapter_model(lora_export):
    model, tok, root = lora_export
    merged_dir = merge_lora_export(root / "lora", root / "merged")
    merged = InternVLChatModel.from_pretrained(merged_dir, dtype=torch.float32)
    assert not merged.config.use_llm_lora and not hasattr(merged.language_model, "peft_config")
    assert (merged_dir / "tokenizer.json").is_file()
    ids = torch.tensor([tok("<img>" + "<IMG_CONTEXT>" * model.num_image_token + "</img> hello")["input_ids"]])
    merged.bind_token_ids(model.img_context_token_id)
    pixels = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        want = model(pixel_values=pixels, input_ids=ids).logits
        got = merged(pixel_values=pixels, input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_a_plain_export_is_refused(lora_export, tmp_path):
    _, _, root = lora_export
    plain = merge_lora_export(root / "lora", root / "merged")
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        merge_lora_export(plain, tmp_path / "again")


def test_a_damaged_export_names_the_missing_weights(lora_export, tmp_path):
    model, _, root = lora_export
    state = {k: v for k, v in model.state_dict().items() if "mlp1.0" not in k}
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items() if "lm_head" not in k}, str(root / "lora" / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="mlp1.0"):
        merge_lora_export(root / "lora", tmp_path / "out")
