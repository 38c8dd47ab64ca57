"""A pure-PyTorch stand-in for flash-attention's dispatch in transformers, for CPU tests.

transformers' `flash_attention_2` path (`_flash_attention_forward`) decides per call
which sequences exist, in this order:
1. a 2-D padding mask is given: each row's unpadded tokens are one sequence;
2. `cu_seq_lens_q/k` and `max_length_q/k` are all given: the batch is flattened
   (B*N tokens) and split at those offsets, so one row may hold several samples;
3. the batch has ONE row and its position ids restart: split where they restart;
4. otherwise: plain causal attention over each row (packed samples see each other).

`varlen_reference_attention` applies the same rules with SDPA on a block-causal mask,
so on a CPU the packed loss shows exactly what flash-attention would compute on a GPU.
Registered as attention implementation "varlen_reference" (with flash's mask rule:
no 4-D mask is built) by `register_varlen_reference()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "varlen_reference"


def _segments_from_position_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """(N,) positions restarting at 0 -> (N,) segment id (transformers splits where pos == min)."""
    starts = position_ids == position_ids.min()
    return starts.long().cumsum(0)


def _segments_from_cu(cu: torch.Tensor, total: int) -> torch.Tensor:
    seg = torch.zeros(total, dtype=torch.long, device=cu.device)
    seg[cu[1:-1].long()] = 1
    return seg.cumsum(0)


def segment_ids(batch: int, length: int, attention_mask=None, position_ids=None, cu_seq_lens_q=None,
                cu_seq_lens_k=None, max_length_q=None, max_length_k=None) -> torch.Tensor:
    """(B*N,) id of the sequence each flattened token belongs to (-1: a padding token), per the rules above."""
    if attention_mask is not None:  # rule 1: 2-D padding mask
        if attention_mask.dim() != 2:
            raise ValueError("flash-attention takes a 2-D padding mask only (got a "
                             f"{attention_mask.dim()}-D mask); pack with Collator(mask='position_ids')")
        row = torch.arange(batch, device=attention_mask.device).repeat_interleave(length)
        return torch.where(attention_mask.reshape(-1).bool(), row, torch.full_like(row, -1))
    if all(x is not None for x in (cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k)):  # rule 2
        if int(cu_seq_lens_q[-1]) != batch * length:
            raise ValueError(f"cu_seq_lens end at {int(cu_seq_lens_q[-1])}, the batch has {batch * length} tokens")
        return _segments_from_cu(cu_seq_lens_q, batch * length)
    row = torch.arange(batch).repeat_interleave(length)
    if batch == 1 and position_ids is not None and length > 1:  # rule 3
        pos = position_ids.reshape(-1)
        if bool((pos[1:] - pos[:-1] != 1).any()):
            return _segments_from_position_ids(pos)
    return row  # rule 4


def varlen_reference_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                               scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers attention interface: (B, H, N, D) q/k/v -> ((B, N, H, D) output, None)."""
    b, h, n, d = query.shape
    seg = segment_ids(b, n, attention_mask, kwargs.get("position_ids"), kwargs.get("cu_seq_lens_q"),
                      kwargs.get("cu_seq_lens_k"), kwargs.get("max_length_q"), kwargs.get("max_length_k"))
    seg = seg.to(query.device)
    kv_groups = h // key.shape[1]
    k = key.repeat_interleave(kv_groups, dim=1) if kv_groups > 1 else key
    v = value.repeat_interleave(kv_groups, dim=1) if kv_groups > 1 else value
    # Attention over the flattened batch, like varlen: a token sees earlier tokens of its own segment.
    q2, k2, v2 = (t.transpose(0, 1).reshape(h, b * n, d) for t in (query, k, v))
    idx = torch.arange(b * n, device=query.device)
    allowed = (seg[:, None] == seg[None, :]) & (idx[:, None] >= idx[None, :])
    allowed |= torch.eye(b * n, dtype=torch.bool, device=query.device)  # padding rows: never empty
    out = F.scaled_dot_product_attention(q2, k2, v2, attn_mask=allowed, dropout_p=dropout if module.training else 0.0,
                                         scale=scaling)
    out = out.reshape(h, b, n, d).permute(1, 2, 0, 3).contiguous()
    return out, None


def register_varlen_reference() -> str:
    """Register the stand-in with transformers (idempotent); returns its attn_implementation name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(NAME, varlen_reference_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, flash_attention_mask)
    return NAME
