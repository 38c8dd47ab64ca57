"""The InternVL-Chat-V1.2 model: configs, InternViT, the chat model, loading and composition."""

from .configuration import InternVisionConfig, InternVLChatConfig
from .modeling import InternVLChatModel, causal_lm_loss, pixel_shuffle
from .vision import InternVisionModel
from .loading import CheckpointMismatchError, compose_from_parts, load_mlp_projector  # noqa: E402  (patches from_pretrained)

__all__ = [
    "InternVisionConfig", "InternVLChatConfig", "InternVisionModel", "InternVLChatModel",
    "causal_lm_loss", "pixel_shuffle", "compose_from_parts", "load_mlp_projector", "CheckpointMismatchError",
]
