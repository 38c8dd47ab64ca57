import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A subprocess that dies on a fatal signal (e.g. SIGABRT at exit) prints every thread's Python stack.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from internvl_chat.model.tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    from internvl_chat.model.presets import build_tiny_model

    model, tok = build_tiny_model(tokenizer=tiny_tokenizer, seed=0)
    return model, tok


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny model folder in the released layout (config.json, model.safetensors, tokenizer), built once."""
    from internvl_chat.model.presets import init_model_dir

    return init_model_dir("tiny", tmp_path_factory.mktemp("tiny_model"), seed=0)


@pytest.fixture(scope="session")
def synth_eval_data(tmp_path_factory):
    """The synthetic benchmark's data (24 questions at 56 px), built once."""
    from internvl_chat.data.synth import generate

    root = tmp_path_factory.mktemp("synth_eval")
    generate(root, n_train=0, n_test=6, image_size=56)
    return root
