"""The V1.2 supervised fine-tuning data pipeline: formats, tokens + labels, datasets, sampling, packing, checks.

    from internvl_chat.data import SupervisedDataset, MixSampler, Collator, RejectLog, preprocess
"""

from .batch import Batch
from .collate import Collator, pad_collate
from .dataset import SupervisedDataset
from .formats import DatasetSpec, RejectedSample, SampleRejected, load_meta
from .jsonl_index import JsonlIndex
from .packing import PackedBatchSampler, block_causal_mask, greedy_packs, pack_collate, per_sample_loss
from .preprocess import preprocess, tokenize_conversation
from .rejects import RejectLog, TooManyRejects
from .sampler import MixSampler, length_grouped_indices

__all__ = [
    "Batch", "Collator", "DatasetSpec", "JsonlIndex", "MixSampler", "PackedBatchSampler", "RejectLog",
    "RejectedSample", "SampleRejected", "SupervisedDataset", "TooManyRejects", "block_causal_mask", "greedy_packs",
    "length_grouped_indices", "load_meta", "pack_collate", "pad_collate", "per_sample_loss", "preprocess",
    "tokenize_conversation",
]
