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


def resolve_device_map(device: str | None, num_layers: int, gpu_count: int | None = None):
    """`--device` of serve / chat / eval -> the `device_map` for `from_pretrained` (None: stay on the CPU).

    - None / "cpu": the CPU;
    - "cuda:N": the whole model on GPU N;
    - "cuda" or "auto": one GPU holds everything, several GPUs get `split_model` (bf16 40B = 74.6 GiB
      leaves no room for a KV cache on one 80 GB card); "auto" without a GPU is the CPU.
    """
    import torch

    if device is None or device == "cpu":
        return None
    if gpu_count is None:
        gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto" and gpu_count == 0:
        return None
    if device in ("auto", "cuda"):
        if gpu_count == 0:
            raise ValueError("--device cuda: no CUDA device is visible (use --device cpu or auto)")
        return {"": 0} if gpu_count == 1 else split_model(num_layers, gpu_count)
    where = torch.device(device)
    if where.type != "cuda":
        raise ValueError(f"--device {device}: use cpu, cuda, cuda:N or auto")
    return {"": where.index or 0}
