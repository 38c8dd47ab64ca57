"""`python -m internvl_chat.train CONFIG.yaml ...`, the entry point for torchrun."""

import sys

from .cli import main

sys.exit(main())
