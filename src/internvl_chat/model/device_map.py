"""A device map that splits the 40B model over several GPUs without cross-device surprises.

`device_map="auto"` can put the vision tower, the projector and the LLM's
embedding on different GPUs and then fail in the image-feature merge (users hit
this with InternVL, issue #118). This map keeps everything the merge and the
output head touch on GPU 0 and spreads the decoder layers over all GPUs,
counting GPU 0 as half a GPU because it also hosts the 5.5B vision tower.
"""

from __future__ import annotations

import math


def split_model(num_layers: int, num_gpus: int) -> dict[str, int]:
    """Device map for `InternVLChatModel.from_pretrained(..., device_map=split_model(60, n))`."""
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_gpus}")
    per_gpu = math.ceil(num_layers / (num_gpus - 0.5)) if num_gpus > 1 else num_layers
    counts = [per_gpu] * num_gpus
    counts[0] = math.ceil(per_gpu * 0.5) if num_gpus > 1 else num_layers
    device_map: dict[str, int] = {}
    layer = 0
    for gpu, count in enumerate(counts):
        for _ in range(count):
            if layer < num_layers:
                device_map[f"language_model.model.layers.{layer}"] = gpu
                layer += 1
    for name in ("vision_model", "mlp1", "language_model.model.embed_tokens", "language_model.model.norm",
                 "language_model.model.rotary_emb", "language_model.lm_head",
                 f"language_model.model.layers.{num_layers - 1}"):
        device_map[name] = 0
    return device_map
