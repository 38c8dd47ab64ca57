"""Random access into large JSONL files through a cached byte-offset index.

The original reads every annotation file with `readlines()` in every dataloader
worker: 1.27M Python strings per worker. Here each file costs one int64 per line,
built once by a streaming scan, saved under a cache folder keyed by the file's
path, size and mtime, and memory-mapped, so all workers share the same pages.
The data folder itself is never written to.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

_CHUNK = 1 << 22  # 4 MiB per read while scanning


def default_cache_dir() -> Path:
    env = os.environ.get("INTERNVL_CHAT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "internvl_chat"


def scan_line_offsets(path: str | Path) -> np.ndarray:
    """Byte offset of the start of every line (a final line without '\\n' counts; a trailing empty piece does not)."""
    starts = [np.zeros(1, dtype=np.int64)]
    pos = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            starts.append(nl.astype(np.int64) + pos + 1)
            pos += len(chunk)
    offsets = np.concatenate(starts)
    if offsets[-1] >= pos:  # empty file, or the file ends with '\n'
        offsets = offsets[:-1]
    return offsets


class JsonlIndex:
    """Line `i` (0-based) of a JSONL file as raw bytes, in O(1), without loading the file.

    Pickles as (path, cache file) only, so dataloader workers re-open the
    memory map instead of copying the array.
    """

    def __init__(self, path: str | Path, cache_dir: str | Path | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"annotation file not found: {self.path}")
        st = self.path.stat()
        self.size = st.st_size
        key = hashlib.sha1(f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "jsonl_index"
        self.cache_file = cache / f"{self.path.stem}-{key}.npy"
        if not self.cache_file.is_file():
            offsets = scan_line_offsets(self.path)
            cache.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, offsets)
            os.replace(tmp, self.cache_file)  # atomic: concurrent ranks never see half a file
        self._offsets: np.ndarray | None = None
        self._fh = None

    @property
    def offsets(self) -> np.ndarray:
        if self._offsets is None:
            self._offsets = np.load(self.cache_file, mmap_mode="r")
        return self._offsets

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def read(self, i: int) -> bytes:
        """Raw bytes of line i, without the trailing newline."""
        n = len(self)
        if not 0 <= i < n:
            raise IndexError(f"line index {i} out of range for {self.path} ({n} lines)")
        start = int(self.offsets[i])
        end = int(self.offsets[i + 1]) if i + 1 < n else self.size
        if self._fh is None:
            self._fh = open(self.path, "rb")
        self._fh.seek(start)
        return self._fh.read(end - start).rstrip(b"\r\n")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_offsets"], state["_fh"] = None, None
        return state

    def __del__(self):
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
