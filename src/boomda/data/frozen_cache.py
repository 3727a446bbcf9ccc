"""A disk cache of the frozen backbone part's outputs, one ``.npy`` file per (input, settings).

The frozen part of a backbone (embeddings and the first N - k layers, see
:class:`~boomda.nn.backbones.PretrainedBackbone`) is evaluated without gradients and in eval
mode, so its output for an utterance depends only on:

- the input (the file's path, size and modification time; the text itself for transcripts);
- how the signal was prepared (sampling rate, truncation, frame count and size, tokenizer);
- the corruption applied to it, with its settings and random seed (target domain only);
- the backbone (its fingerprint: model type, config, split point and frozen weights).

The key of an entry is the SHA-256 of all of these, so changing any of them misses the cache
and recomputes; nothing is ever invalidated by hand. Entries are written atomically; an
unreadable entry (e.g. a disk error) is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from boomda.atomic import atomic_write
from boomda.errors import ConfigError

FORMAT = 1
DTYPES = ("float16", "float32")


def cache_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the JSON of ``parts`` with sorted keys."""
    blob = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies an input file or frame folder: resolved path, sizes and modification
    times (of every file inside, for a folder)."""
    path = Path(path).resolve()
    if path.is_dir():
        entries = [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
                   for p in sorted(path.iterdir()) if p.is_file()]
        return {"path": str(path), "entries": entries}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class FrozenCache:
    """Arrays stored under ``root/<group>/<key[:2]>/<key>.npy`` in ``dtype``.

    :meth:`get_or_compute` returns the stored array, or computes, stores and returns it; the
    returned array is always the stored (``dtype``-rounded) value, so a run that fills the cache
    and a run that reads it see identical inputs. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, root: str | Path, dtype: str = "float16") -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.root = Path(root)
        self.dtype = np.dtype(dtype)
        self.hits = 0
        self.misses = 0

    def path(self, group: str, key: str) -> Path:
        return self.root / group / key[:2] / f"{key}.npy"

    def get_or_compute(self, group: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.path(group, key)
        if path.is_file():
            try:
                value = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                value = None
            if value is not None and value.dtype == self.dtype:
                self.hits += 1
                return value
        self.misses += 1
        value = to_dtype(compute(), self.dtype, f"{group} cache entry")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, value, allow_pickle=False)

        atomic_write(path, write)
        return value


def to_dtype(value: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """``value`` cast to ``dtype``; an overflow to inf is an error (use float32 then)."""
    out = np.ascontiguousarray(value, dtype=dtype)
    if not np.isfinite(out).all():
        raise ConfigError(f"{what}: values overflow {dtype} (largest |value| "
                          f"{float(np.abs(np.asarray(value, dtype=np.float64)).max()):.3g}); "
                          f"set raw.cache_dtype: float32")
    return out
