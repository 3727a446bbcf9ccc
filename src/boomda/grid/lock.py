"""The grid folder's lock: one ``boomda bench`` at a time on a folder.

While a bench runs, it holds :func:`grid_lock` on the grid folder (see :mod:`boomda.lock`): a
second bench on the folder fails at once with a one-line :class:`GridLocked` naming the holder,
and the lock of a killed bench is simply taken over (with one line on stderr).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from boomda.errors import BoomdaError
from boomda.lock import LOCK as LOCK  # the grid folder's lock file
from boomda.lock import FolderLocked, folder_lock


class GridLocked(FolderLocked):
    """The grid folder is in use by another bench."""


@contextmanager
def grid_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the grid folder ``folder`` (created if needed) exclusively for the duration of the
    block; raises :class:`GridLocked` (a ``BoomdaError``) naming the holder if another process
    holds it. The lock ends with its holder, however that ends (see :mod:`boomda.lock`)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BoomdaError(f"cannot create the grid folder {folder}: "
                          f"{exc.strerror or exc}") from None
    with folder_lock(folder, what="grid folder", command="boomda bench",
                     error=GridLocked) as path:
        yield path
