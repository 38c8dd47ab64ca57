"""internvl-chat: InternVL-Chat-V1.2, re-implemented."""
__version__ = "0.1.0"
