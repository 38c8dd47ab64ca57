"""Training: the V1.2 SFT recipe on PyTorch FSDP2 + torch.distributed.checkpoint.

    from internvl_chat.train import load_config, train
    result = train(load_config("configs/tiny.yaml", ["output_dir=out"]))
"""

from .config import ConfigError, TrainConfig, load_config

__all__ = ["ConfigError", "TrainConfig", "load_config", "train"]


def train(cfg, dataset=None):
    """Run or resume training (see loop.train); imported lazily so config work stays light."""
    from .loop import train as _train

    return _train(cfg, dataset)
