"""Reading the JSON fixture files of the end-to-end scorers (MMMU, MathVista)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def resolve_fixture(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, env_var: str) -> Path:
    """An absolute path as is; a relative one under ``root``, else under the directory in ``$env_var``."""
    path = Path(path)
    if path.is_absolute():
        return path
    base = root if root is not None else os.environ.get(env_var)
    if base is None:
        raise FileNotFoundError(f"{path} is relative: pass root=DIR or set {env_var} to the repository checkout")
    full = Path(base) / path
    if not full.is_file():
        raise FileNotFoundError(f"{full} not found (root {base})")
    return full


def load_json(path: Path) -> object:
    """Parse a JSON file, naming the file and line on a syntax error."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
