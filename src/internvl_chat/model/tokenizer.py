"""The one tokenizer loader, InternVL's special tokens, and tiny offline tokenizers for tests.

`load_tokenizer(path)` is what every command uses. Sentencepiece folders (`tokenizer.model` +
`tokenizer_config.json`, with or without `tokenizer.json`, as Nous-Hermes-2-Yi-34B and the released
InternVL-Chat-V1-2 ship them) load into `SentencePieceLlamaTokenizer`, which gives the ids transformers 4.37's
slow `LlamaTokenizer` gave (the ids V1.2 trained on); folders with only a `tokenizer.json` (byte-level BPE)
load with transformers' fast tokenizer. Remote code is never run.

The tiny tokenizer mirrors the conventions of Nous-Hermes-2-Yi-34B that matter
to V1.2 (no BOS added, pad = `<unk>` = id 0, eos = `<|im_end|>`, ChatML control
tokens, `<img>`/`</img>`/`<IMG_CONTEXT>` as single tokens) so the data and chat
code paths are exercised exactly as with the real tokenizer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..constants import ADDED_SPECIAL_TOKENS

# tokenizer_config.json classes that mean "a sentencepiece Llama tokenizer" (the original loaded them with
# the slow LlamaTokenizer whatever the folder said).
SENTENCEPIECE_CLASSES = {None, "LlamaTokenizer", "LlamaTokenizerFast", "SentencePieceLlamaTokenizer"}


class TokenizerLoadError(ValueError):
    """A tokenizer folder that cannot be loaded; the message names the folder and what is wrong."""

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
    """Register all nine InternVL tokens as special tokens, as the V1.2 script's `add_tokens(..., special_tokens=True)`.

    Tokens the vocabulary already holds (as added tokens, or as ordinary pieces: `<img>`/`</img>` in Yi) keep
    their ids and are never split again; the others get the next ids in order. Returns how many ids are new.
    """
    before = len(tokenizer)
    tokenizer.add_tokens(list(ADDED_SPECIAL_TOKENS), special_tokens=True)
    for tok in ADDED_SPECIAL_TOKENS:  # every one must now be a single token
        ids = tokenizer(tok, add_special_tokens=False)["input_ids"]
        if ids != [tokenizer.convert_tokens_to_ids(tok)]:
            raise TokenizerLoadError(f"{tok!r} is still split into {ids} after add_tokens")
    return len(tokenizer) - before


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TokenizerLoadError(f"{path}: unreadable tokenizer file ({e})") from None


def _load_sentencepiece(folder: Path, cfg: dict):
    """The folder as transformers 4.37's `LlamaTokenizer.from_pretrained(folder, add_eos_token=False)` read it."""
    from transformers import AddedToken

    from .sentencepiece_tokenizer import SentencePieceLlamaTokenizer

    kwargs = {k: v for k, v in cfg.items() if k in (
        "unk_token", "bos_token", "eos_token", "pad_token", "add_bos_token", "legacy",
        "clean_up_tokenization_spaces", "model_max_length", "padding_side", "additional_special_tokens")}
    special_map = folder / "special_tokens_map.json"
    if special_map.is_file():  # as 4.37: the map overrides tokenizer_config.json
        kwargs.update(_read_json(special_map))
    for key in ("unk_token", "bos_token", "eos_token", "pad_token"):
        if isinstance(kwargs.get(key), dict):
            kwargs[key] = AddedToken(**{**kwargs[key], "special": True})
    extra = kwargs.pop("additional_special_tokens", None) or []
    extra = [AddedToken(**t) if isinstance(t, dict) else t for t in extra]
    decoder = {int(i): AddedToken(**t) for i, t in (cfg.get("added_tokens_decoder") or {}).items()}
    added_file = folder / "added_tokens.json"
    if added_file.is_file():  # older folders list their added tokens only there
        named = {str(kwargs.get(k)) for k in ("unk_token", "bos_token", "eos_token", "pad_token")} | set(map(str, extra))
        for content, idx in _read_json(added_file).items():
            if int(idx) not in decoder:
                special = content in named
                decoder[int(idx)] = AddedToken(content, normalized=not special, special=special)
    kwargs.setdefault("padding_side", "left")  # LlamaTokenizer's default side
    tok = SentencePieceLlamaTokenizer(vocab_file=str(folder / "tokenizer.model"), add_eos_token=False,
                                      added_tokens_decoder=decoder, extra_special_tokens=extra, **kwargs)
    return tok


def _load_library_tokenizer(folder: Path, load):
    """Run a library loader on the user's files; what it raises on a damaged file becomes one TokenizerLoadError
    naming the folder (the libraries raise plain Exception/RuntimeError for a malformed tokenizer.json/.model)."""
    try:
        return load()
    except TokenizerLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the folder named; --debug keeps the cause
        detail = " ".join(str(e).split())[:300]
        raise TokenizerLoadError(f"{folder}: cannot load it as a tokenizer ({type(e).__name__}: {detail})") from e


def load_tokenizer(path, internvl_tokens: bool = True):
    """Load a tokenizer folder as V1.2 did, then register the nine InternVL tokens (ids already there are kept).

    `tokenizer.model` (+ `tokenizer_config.json` of a Llama tokenizer class, with or without `tokenizer.json`):
    the slow-Llama-exact sentencepiece tokenizer. Only `tokenizer.json`: transformers' fast tokenizer.
    Raises TokenizerLoadError naming the folder when neither is there or the class is not supported.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise TokenizerLoadError(f"{folder}: tokenizer folder does not exist")
    cfg_path = folder / "tokenizer_config.json"
    cfg = _read_json(cfg_path) if cfg_path.is_file() else {}
    cls = cfg.get("tokenizer_class")
    has_model, has_json = (folder / "tokenizer.model").is_file(), (folder / "tokenizer.json").is_file()
    if has_model and cls in SENTENCEPIECE_CLASSES:
        tok = _load_library_tokenizer(folder, lambda: _load_sentencepiece(folder, cfg))
    elif has_json:
        from transformers import AutoTokenizer

        tok = _load_library_tokenizer(folder, lambda: AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False))
    elif has_model:
        raise TokenizerLoadError(f"{folder}: tokenizer_class {cls!r} with only tokenizer.model is not supported "
                                 f"(supported: LlamaTokenizer sentencepiece folders, or a tokenizer.json)")
    else:
        raise TokenizerLoadError(f"{folder}: no tokenizer.model or tokenizer.json")
    if internvl_tokens:
        add_internvl_tokens(tok)
    return tok
