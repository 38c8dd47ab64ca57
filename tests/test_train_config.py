"""Training config, optimizer, schedule and FLOP formula: no training, fast."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from internvl_chat.train.config import ConfigError, TrainConfig, TuneConfig, load_config
from internvl_chat.train.flops import flop_model, peak_flops_per_device
from internvl_chat.train.lora import apply_tuning
from internvl_chat.train.optim import build_optimizer, build_scheduler, lr_multiplier, param_groups, warmup_steps_for

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def test_v1_2_recipe_config_matches_the_published_hyperparameters():
    cfg = load_config(CONFIGS / "internvl_chat_v1_2_hermes2_yi34b.yaml")
    assert (cfg.optim.lr, cfg.optim.weight_decay, tuple(cfg.optim.betas), cfg.optim.eps) == (1e-5, 0.05, (0.9, 0.999), 1e-8)
    assert (cfg.schedule.lr_scheduler, cfg.schedule.warmup_ratio, cfg.schedule.num_train_epochs) == ("cosine", 0.03, 1.0)
    assert cfg.data.max_seq_length == 2048 and cfg.model.drop_path_rate == 0.4
    assert cfg.model.vision_path and cfg.model.llm_path and cfg.model.mlp_path
    assert (cfg.model.force_image_size, cfg.model.downsample_ratio, cfg.model.template) == (448, 0.5, "Hermes-2")
    assert not (cfg.tune.freeze_llm or cfg.tune.freeze_backbone or cfg.tune.freeze_mlp)
    assert cfg.parallel.dtype == "bf16" and cfg.parallel.reduce_dtype == "fp32" and cfg.parallel.activation_checkpointing
    assert (cfg.batch.global_batch_size, cfg.batch.per_device_batch_size) == (512, 8)
    from internvl_chat.data import load_meta

    mix = load_meta(ROOT / cfg.data.meta_path, base_dir=cfg.data.base_dir)
    assert len(mix) == 9 and sum(spec.length for spec in mix) == 1_267_819
    # Accumulation is derived, as the original's GRADIENT_ACC = 512 / 8 / GPUS.
    assert cfg.gradient_accumulation(64) == 1 and cfg.gradient_accumulation(32) == 2
    with pytest.raises(ConfigError, match="not divisible"):
        cfg.gradient_accumulation(48)


def test_continued_finetune_configs():
    full = load_config(CONFIGS / "internvl_chat_v1_2_hermes2_yi34b_continue_full.yaml")
    assert full.tune.freeze_backbone and not full.tune.freeze_llm and full.model.drop_path_rate == 0.0
    assert full.gradient_accumulation(16) == 2
    lora = load_config(CONFIGS / "internvl_chat_v1_2_hermes2_yi34b_continue_lora.yaml")
    assert lora.tune.use_llm_lora == 16 and lora.tune.freeze_llm and lora.tune.freeze_mlp and lora.tune.freeze_backbone
    assert lora.gradient_accumulation(2) == 2
    stage1 = load_config(CONFIGS / "internvl_chat_v1_2_stage1_projector.yaml")
    assert stage1.tune.freeze_llm and not stage1.tune.freeze_mlp and stage1.model.mlp_path is None
    tiny = load_config(CONFIGS / "tiny.yaml")
    assert tiny.model.preset == "tiny" and tiny.data.source == "synthetic"


def test_overrides_bare_and_dotted_with_type_conversion(tmp_path):
    cfg = load_config(CONFIGS / "tiny.yaml", [f"output_dir={tmp_path}", "max_steps=7", "save_every=3",
                                               "optim.lr=2e-5", "freeze_llm=true", "betas=[0.8, 0.95]", "seed=3",
                                               "model.preset_args={image_size: 112}"])
    assert cfg.logging.output_dir == str(tmp_path)
    assert (cfg.schedule.max_steps, cfg.checkpoint.save_every, cfg.seed) == (7, 3, 3)
    assert cfg.optim.lr == 2e-5 and isinstance(cfg.optim.lr, float)  # YAML would read "2e-5" as a string
    assert cfg.tune.freeze_llm is True and cfg.optim.betas == [0.8, 0.95]
    assert cfg.model.preset_args == {"image_size": 112}


@pytest.mark.parametrize("override, message", [
    ("max_step=3", "unknown key 'max_step'"),
    ("optim.lrate=1", "unknown key optim.lrate; valid keys of 'optim': lr"),
    ("optimiser.lr=1", "unknown section 'optimiser'"),
    ("max_steps=ten", "cannot use 'ten' as int"),
    ("freeze_llm=maybe", "cannot use 'maybe' as bool"),
    ("max_steps", "expected key=value"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(CONFIGS / "tiny.yaml", [override])


def test_bad_yaml_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  preset: tiny\ndata:\n  source: random\n  max_len: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: data.max_len: unknown key data.max_len"):
        load_config(bad)
    bad.write_text("model:\n  preset: tiny\n  path: /x\n")
    with pytest.raises(ConfigError, match="exactly one of"):
        load_config(bad)


def test_weight_decay_only_on_matrices_and_cosine_schedule():
    from internvl_chat.model.presets import build_tiny_model

    model, _ = build_tiny_model()
    groups = param_groups(model, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2 and name.endswith(".weight")), name
    emb = model.vision_model.embeddings
    assert id(emb.position_embedding) not in decayed and id(emb.class_embedding) not in decayed
    assert id(model.language_model.get_input_embeddings().weight) in decayed
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0

    cfg = TrainConfig()
    opt = build_optimizer(model, cfg.optim)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    total = 100
    sched = build_scheduler(opt, cfg.schedule, total)
    lrs = []
    for _ in range(total):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    warm = warmup_steps_for(total, 0.03)
    assert warm == 3 and lrs[0] == 0.0 and lrs[warm] == pytest.approx(1e-5)
    assert lrs[1] == pytest.approx(1e-5 / 3)
    mid = warm + (total - warm) // 2
    assert lrs[mid] == pytest.approx(1e-5 * 0.5 * (1 + math.cos(math.pi * (mid - warm) / (total - warm))))
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))  # monotone decay after warmup
    assert lr_multiplier(total, total, warm) == pytest.approx(0.0)


def test_flop_formula_matches_6n_rule_and_is_trainability_aware():
    from internvl_chat.model.presets import build_tiny_model

    model, _ = build_tiny_model()
    fm = flop_model(model)
    c = model.config
    v, l = c.vision_config, c.llm_config
    # Hand count of matmul weights per token.
    vit_mm = 3 * v.patch_size ** 2 * v.hidden_size + v.num_hidden_layers * (
        v.hidden_size * 3 * v.hidden_size + v.hidden_size ** 2 + 2 * v.hidden_size * v.intermediate_size)
    mlp_mm = 4 * v.hidden_size * l.hidden_size + l.hidden_size ** 2
    kv = l.num_key_value_heads * (l.hidden_size // l.num_attention_heads)
    llm_mm = l.num_hidden_layers * (2 * l.hidden_size ** 2 + 2 * l.hidden_size * kv
                                    + 3 * l.hidden_size * l.intermediate_size)
    head = l.hidden_size * l.vocab_size  # lm_head, applied to supervised tokens only
    assert (fm.vit.matmul_params, fm.mlp.matmul_params, fm.llm.matmul_params) == (vit_mm, mlp_mm, llm_mm)
    assert fm.lm_head_params == head
    T, P = 100, fm.vit_tokens
    assert fm.step_flops(1, [T], 10) == pytest.approx(fm.step_flops(1, [T]) - 6 * head * (T - 10))
    llm_mm += head
    full = fm.step_flops(1, [T])
    expected = (6 * vit_mm * P + 12 * v.num_hidden_layers * v.hidden_size * P ** 2 + 6 * mlp_mm * fm.image_tokens
                + 6 * llm_mm * T + 6 * l.num_hidden_layers * l.hidden_size * T ** 2)
    assert full == pytest.approx(expected)
    # A frozen ViT costs only its forward: 2N per patch token instead of 6N (attention 1x instead of 3x).
    apply_tuning(model, TuneConfig(freeze_backbone=True))
    frozen = flop_model(model).step_flops(1, [T])
    vit_full = 6 * vit_mm * P + 12 * v.num_hidden_layers * v.hidden_size * P ** 2
    assert full - frozen == pytest.approx(vit_full * 2 / 3)
    assert peak_flops_per_device(torch.device("cpu")) > 0 and peak_flops_per_device(torch.device("cpu"), 5.0) == 5.0


def test_lr_multipliers_make_per_module_groups_that_the_schedule_scales():
    import torch

    from internvl_chat.model.presets import build_tiny_model
    from internvl_chat.train.config import OptimConfig, ScheduleConfig
    from internvl_chat.train.optim import build_optimizer, build_scheduler

    model, _ = build_tiny_model()
    opt = build_optimizer(model, OptimConfig(lr=1e-4, lr_multipliers={"mlp1": 10, "vision_model": 5}))
    lr_of = {}
    for group in opt.param_groups:
        for p in group["params"]:
            lr_of[id(p)] = group["lr"]
    for name, p in model.named_parameters():
        want = 1e-3 if name.startswith("mlp1.") else 5e-4 if name.startswith("vision_model.") else 1e-4
        assert lr_of[id(p)] == pytest.approx(want), name
    sched = build_scheduler(opt, ScheduleConfig(lr_scheduler="cosine", warmup_ratio=0.0, max_steps=10), 10)
    opt.step()
    sched.step()
    ratios = {round(g["lr"] / g["initial_lr"], 6) for g in opt.param_groups}
    assert len(ratios) == 1 and 0 < ratios.pop() < 1  # one schedule, applied to every group
    with pytest.raises(ValueError, match="no parameter under"):
        build_optimizer(model, OptimConfig(lr_multipliers={"projector": 10}))
    del torch


def test_lr_multipliers_override_from_the_command_line(tmp_path):
    from internvl_chat.train import load_config

    path = tmp_path / "c.yaml"
    path.write_text("model:\n  preset: tiny\ndata:\n  source: synthetic\noptim:\n  lr: 1.0e-4\n")
    cfg = load_config(path, ["optim.lr_multipliers={mlp1: 10, vision_model: 3}"])
    assert cfg.optim.lr_multipliers == {"mlp1": 10, "vision_model": 3}
