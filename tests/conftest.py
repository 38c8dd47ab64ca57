import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
