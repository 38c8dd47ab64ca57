"""`python -m internvl_chat.train CONFIG.yaml ...`, the entry point for torchrun."""

import sys

from ..errors import pop_debug_flag, run_command
from .cli import main

sys.exit(run_command(main, pop_debug_flag(sys.argv[1:]), "internvl-chat train"))
