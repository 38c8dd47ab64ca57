"""The InternVL-Chat-V1.2 model: configs, InternViT, the chat model, loading and composition."""

from .configuration import InternVisionConfig, InternVLChatConfig
from .modeling import InternVLChatModel, causal_lm_loss, pixel_shuffle
from .vision import InternVisionModel
from .loading import CheckpointMismatchError, compose_from_parts, load_mlp_projector

__all__ = [
    "InternVisionConfig", "InternVLChatConfig", "InternVisionModel", "InternVLChatModel",
    "causal_lm_loss", "pixel_shuffle", "compose_from_parts", "load_mlp_projector", "CheckpointMismatchError",
]


def _register_auto_classes() -> None:
    """Let AutoConfig/AutoModel (and AutoTokenizer, which reads config.json) resolve our model types
    locally, so a released checkpoint folder never needs remote code."""
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(InternVLChatConfig.model_type, InternVLChatConfig, exist_ok=True)
    AutoConfig.register(InternVisionConfig.model_type, InternVisionConfig, exist_ok=True)
    AutoModel.register(InternVLChatConfig, InternVLChatModel, exist_ok=True)
    AutoModel.register(InternVisionConfig, InternVisionModel, exist_ok=True)


_register_auto_classes()
