"""internvl-chat: InternVL-Chat-V1.2, re-implemented.

The public API, importable from the package root:

    from internvl_chat import InternVLChatModel, InternVLChatConfig, load_tokenizer, get_conv_template, load_pixel_values

Names resolve on first use (module `__getattr__`), so `import internvl_chat` and the
CLI dispatcher do not import torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "InternVLChatModel": "internvl_chat.model.modeling",
    "InternVLChatConfig": "internvl_chat.model.configuration",
    "load_tokenizer": "internvl_chat.model.tokenizer",
    "get_conv_template": "internvl_chat.conversation",
    "load_pixel_values": "internvl_chat.image",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'internvl_chat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
