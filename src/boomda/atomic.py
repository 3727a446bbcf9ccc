"""Atomic file writes: write next to the target, then rename over it, so a reader never sees a
half-written file (an interrupted write leaves the old file, or none)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from boomda.errors import BoomdaError

#: where torch.save's zip writer reports a write that fell short (a full disk)
_TORCH_WRITER = "inline_container.cc"


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file in ``path``'s folder, then rename it to
    ``path`` (mode 0644). The temporary file is removed if ``write`` fails; a full disk (an
    ``OSError`` ENOSPC, or torch's writer failing) is a :class:`BoomdaError` naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(exc):
            raise BoomdaError(f"no space left on device: {path} (the write stopped short; free "
                              f"some space and run again)") from exc
        raise
    return path


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says that a write found the disk full."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    text = str(exc)
    return isinstance(exc, RuntimeError) and (_TORCH_WRITER in text
                                              or os.strerror(errno.ENOSPC) in text)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
