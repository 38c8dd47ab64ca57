"""Loading the released checkpoint layout, saving it back bit-identically, and composing from released parts."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from internvl_chat.model import CheckpointMismatchError, InternVisionModel, InternVLChatModel, compose_from_parts
from internvl_chat.model.presets import build_tiny_model


def _logits(model, tok):
    q = model.build_prompt("Describe the picture.", num_patches_list=[1])
    ids = torch.tensor([tok(q).input_ids])
    torch.manual_seed(0)
    px = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        return model(pixel_values=px, input_ids=ids).logits


def test_save_load_roundtrip_is_bit_identical(tmp_path, tiny_model):
    model, tok = tiny_model
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    stored = load_file(tmp_path / "model.safetensors")
    assert set(stored) == set(model.state_dict())  # released names, no renaming
    loaded = InternVLChatModel.from_pretrained(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    loaded.bind_token_ids(model.img_context_token_id)
    assert torch.equal(_logits(model, tok), _logits(loaded, tok))
    assert not loaded.training


def test_sharded_bf16_checkpoint_with_index(tmp_path, tiny_model):
    model, tok = tiny_model
    model = model.to(torch.bfloat16)
    model.save_pretrained(tmp_path, max_shard_size="100KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    loaded = InternVLChatModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    assert loaded.language_model.lm_head.weight.dtype == torch.bfloat16
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    as_fp32 = InternVLChatModel.from_pretrained(tmp_path, torch_dtype=torch.float32)
    assert as_fp32.mlp1[1].weight.dtype == torch.float32


def test_checkpoint_written_in_the_original_layout_loads(tmp_path, tiny_model):
    """Hand-write what the original code's save_pretrained produces (4.36-era config keys, flat rope,
    torch_dtype, auto_map, attn_implementation) and load it."""
    model, tok = tiny_model
    cfg = model.config.to_dict()
    llm = dict(cfg["llm_config"])
    llm.pop("rope_parameters")
    llm.update(rope_theta=5_000_000.0, rope_scaling=None, attn_implementation="flash_attention_2",
               torch_dtype="float32", transformers_version="4.36.2")
    original = {
        "architectures": ["InternVLChatModel"],
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel"},
        "downsample_ratio": 0.5, "force_image_size": 56, "llm_config": llm, "model_type": "internvl_chat",
        "pad2square": False, "select_layer": -1, "template": "Hermes-2", "torch_dtype": "float32",
        "transformers_version": "4.36.2", "use_backbone_lora": 0, "use_llm_lora": 0,
        "vision_config": {k: v for k, v in cfg["vision_config"].items() if k != "norm_type"},
    }
    (tmp_path / "config.json").write_text(json.dumps(original))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})
    loaded = InternVLChatModel.from_pretrained(tmp_path)
    assert loaded.ps_version == "v1" and loaded.template == "Hermes-2"
    assert loaded.language_model.config.rope_parameters["rope_theta"] == 5_000_000.0
    loaded.bind_token_ids(model.img_context_token_id)
    torch.testing.assert_close(_logits(loaded, tok), _logits(model, tok), rtol=0, atol=0)


def test_missing_or_unexpected_weights_are_errors(tmp_path, tiny_model):
    model, _ = tiny_model
    model.save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    sd.pop("mlp1.3.weight")
    sd["mlp1.9.weight"] = torch.zeros(3)
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError, match=r"missing from the checkpoint: mlp1\.3\.weight.*not used by the model: mlp1\.9\.weight"):
        InternVLChatModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        InternVLChatModel.from_pretrained(tmp_path / "nope")


def _write_parts(tmp_path, tiny_model):
    """A stand-alone InternViT folder, an LLM folder without InternVL tokens, and a projector .pth."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from internvl_chat.model.tokenizer import build_tiny_tokenizer

    model, _ = tiny_model
    vit_dir, llm_dir = tmp_path / "vit", tmp_path / "llm"
    model.vision_model.save_pretrained(vit_dir)
    base_tok = build_tiny_tokenizer(vocab_size=600)
    # A plain LLM tokenizer: drop our InternVL tokens by rebuilding from a vocabulary without them.
    base_tok = _strip_internvl_tokens(base_tok)
    llm_cfg = LlamaConfig(vocab_size=len(base_tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, rope_theta=5e6,
                          eos_token_id=base_tok.eos_token_id, pad_token_id=0)
    torch.manual_seed(1)
    LlamaForCausalLM(llm_cfg).save_pretrained(llm_dir)
    base_tok.save_pretrained(llm_dir)
    torch.save({k: v.clone() for k, v in model.mlp1.state_dict().items()}, tmp_path / "mlp.pth")
    return vit_dir, llm_dir, tmp_path / "mlp.pth"


def _strip_internvl_tokens(tok):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from internvl_chat.constants import ADDED_SPECIAL_TOKENS

    data = json.loads(tok.backend_tokenizer.to_str())
    vocab = {t: i for t, i in data["model"]["vocab"].items() if t not in ADDED_SPECIAL_TOKENS}
    remap = {t: n for n, (t, _) in enumerate(sorted(vocab.items(), key=lambda kv: kv[1]))}
    merges = [m for m in data["model"]["merges"]]
    bpe = Tokenizer(models.BPE(vocab=remap, merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges],
                               unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|startoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>"]
    return PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<unk>",
                                   additional_special_tokens=specials)


def test_compose_from_released_parts(tmp_path, tiny_model):
    model, _ = tiny_model
    vit_dir, llm_dir, mlp = _write_parts(tmp_path, tiny_model)
    from transformers import AutoModelForCausalLM

    base_llm = AutoModelForCausalLM.from_pretrained(llm_dir)
    old_vocab = base_llm.config.vocab_size
    composed, tok = compose_from_parts(vit_dir, llm_dir, mlp, dtype=torch.float32, drop_path_rate=0.2)
    assert "<IMG_CONTEXT>" in tok.get_vocab() and "<box>" in tok.get_vocab()
    assert len(tok) == old_vocab + 9
    assert composed.language_model.get_input_embeddings().weight.shape[0] == len(tok)
    assert composed.config.llm_config.vocab_size == len(tok)
    assert composed.img_context_token_id == tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    head = composed.language_model.get_output_embeddings().weight
    torch.testing.assert_close(head[old_vocab:], base_llm.get_output_embeddings().weight.mean(0, keepdim=True).expand(9, -1))
    torch.testing.assert_close(head[:old_vocab], base_llm.get_output_embeddings().weight)
    for k, v in model.mlp1.state_dict().items():
        assert torch.equal(composed.mlp1.state_dict()[k], v)
    for k, v in model.vision_model.state_dict().items():
        assert torch.equal(composed.vision_model.state_dict()[k], v)
    assert composed.vision_model.encoder.layers[-1].drop_path1.drop_prob == pytest.approx(0.2)
    assert composed.config.template == "Hermes-2" and composed.config.select_layer == -1
    # The composed model saves in the released layout and loads back.
    composed.save_pretrained(tmp_path / "out")
    again = InternVLChatModel.from_pretrained(tmp_path / "out")
    assert set(again.state_dict()) == set(composed.state_dict())


def test_stand_alone_internvit_layout_has_no_prefix(tmp_path, tiny_model):
    model, _ = tiny_model
    model.vision_model.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "embeddings.class_embedding" in keys and "encoder.layers.0.attn.qkv.weight" in keys
    assert not any(k.startswith("vision_model.") for k in keys)
    assert isinstance(InternVisionModel.from_pretrained(tmp_path), InternVisionModel)


def test_projector_file_is_loaded_without_unpickling_objects(tmp_path):
    from internvl_chat.model import load_mlp_projector

    torch.save({"0.weight": torch.ones(4), "0.bias": torch.zeros(4), "1.weight": torch.ones(2, 4),
                "1.bias": torch.zeros(2), "3.weight": torch.ones(2, 2), "3.bias": torch.zeros(2)}, tmp_path / "ok.pth")
    assert set(load_mlp_projector(tmp_path / "ok.pth")) == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"}

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"0.weight": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_mlp_projector(tmp_path / "evil.pth")
    torch.save({"0.weight": torch.ones(4)}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointMismatchError, match="expected mlp1 keys"):
        load_mlp_projector(tmp_path / "partial.pth")


def test_init_cli_writes_a_loadable_tiny_model(tmp_path):
    from transformers import AutoTokenizer

    from internvl_chat.cli import main

    assert main(["init", "--preset", "tiny", "--output", str(tmp_path / "m")]) == 0
    model = InternVLChatModel.from_pretrained(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") != tok.unk_token_id
    assert model.num_image_token == 4
    assert main(["init", "--preset", "v1_2", "--output", str(tmp_path / "big")]) == 0
    cfg = json.loads((tmp_path / "big" / "config.json").read_text())
    assert cfg["llm_config"]["hidden_size"] == 7168 and cfg["vision_config"]["num_hidden_layers"] == 45
    assert not (tmp_path / "big" / "model.safetensors").exists()
    _ = build_tiny_model  # the preset API used above is public


def test_split_model_device_map_covers_every_layer_and_keeps_merge_on_gpu0():
    from internvl_chat.model.device_map import split_model

    for gpus in (1, 2, 4, 8):
        dm = split_model(60, gpus)
        layers = {k: v for k, v in dm.items() if k.startswith("language_model.model.layers.")}
        assert len(layers) == 60 and set(dm.values()) <= set(range(gpus))
        for k in ("vision_model", "mlp1", "language_model.model.embed_tokens", "language_model.lm_head",
                  "language_model.model.norm", "language_model.model.layers.59"):
            assert dm[k] == 0
        if gpus > 1:
            assert len({v for v in layers.values()}) == gpus
    with pytest.raises(ValueError):
        split_model(60, 0)


def test_auto_classes_resolve_locally_even_with_the_released_auto_map(tmp_path, tiny_model):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model, tok = tiny_model
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                       "AutoModel": "modeling_internvl_chat.InternVLChatModel"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert not list(tmp_path.glob("*.py"))  # nothing to execute: the code is this package
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "InternVLChatConfig"
    assert isinstance(AutoModel.from_pretrained(tmp_path), InternVLChatModel)
    assert AutoTokenizer.from_pretrained(tmp_path).convert_tokens_to_ids("<IMG_CONTEXT>") == model.img_context_token_id


def test_lora_export_with_tied_llm_embeddings_loads(tmp_path):
    """SmolLM2-style tied embeddings + LLM LoRA: PEFT moves the LLM, tied paths must follow it."""
    from internvl_chat.model import InternVLChatConfig
    from internvl_chat.model.presets import tiny_config

    cfg = tiny_config().to_dict()
    cfg["llm_config"]["tie_word_embeddings"] = True
    cfg["use_llm_lora"] = 4
    model = InternVLChatModel(InternVLChatConfig(**cfg)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    model.save_pretrained(tmp_path)
    loaded = InternVLChatModel.from_pretrained(tmp_path)
    llm = loaded.language_model.base_model.model
    assert llm.lm_head.weight.data_ptr() == llm.model.embed_tokens.weight.data_ptr()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
