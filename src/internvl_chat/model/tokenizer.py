"""Tokenizer helpers: adding InternVL's special tokens, and tiny offline tokenizers for tests.

The tiny tokenizer mirrors the conventions of Nous-Hermes-2-Yi-34B that matter
to V1.2 (no BOS added, pad = `<unk>` = id 0, eos = `<|im_end|>`, ChatML control
tokens, `<img>`/`</img>`/`<IMG_CONTEXT>` as single tokens) so the data and chat
code paths are exercised exactly as with the real tokenizer.
"""

from __future__ import annotations

import random

from ..constants import ADDED_SPECIAL_TOKENS

BASE_SPECIAL_TOKENS = ["<unk>", "<|startoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>"]

_WORDS = (
    "the a an of in on at to is are was be this that what which how many where who why color colour shape "
    "red green blue yellow purple orange black white gray pink brown cyan circle square triangle star "
    "left right top bottom middle center above below next image picture photo chart bar value title "
    "document text read write answer question questions option options choose letter correct yes no "
    "one two three four five six seven eight nine ten zero number count total largest smallest highest "
    "lowest describe detail scene there object objects with and or not it its for from by as show shows "
    "please given choices directly single word phrase use using based following user assistant system "
    "hello world model vision language chat cat dog bird fish car tree house sky water the capital of "
    "france paris science math diagram label labels year sales percent "
).split()


def _corpus(n_lines: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2024)))
        line = " ".join(words)
        if rng.random() < 0.5:
            line = line.capitalize() + rng.choice([".", "?", "!", ":", ","])
        yield line + rng.choice(["", "\n"])


def build_tiny_tokenizer(vocab_size: int = 1000, extra_corpus=(), seed: int = 0):
    """Train a byte-level BPE tokenizer (under a second) and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = BASE_SPECIAL_TOKENS + ADDED_SPECIAL_TOKENS
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(_corpus(3000, seed)) + list(extra_corpus)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<unk>",
        additional_special_tokens=specials[1:],
    )
    fast.padding_side = "right"
    return fast


def add_internvl_tokens(tokenizer) -> int:
    """Add the V1.2 special tokens the tokenizer lacks (as the training script does); returns how many were added."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in ADDED_SPECIAL_TOKENS if t not in vocab]
    if not missing:
        return 0
    return tokenizer.add_tokens(missing, special_tokens=True)
