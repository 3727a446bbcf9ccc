"""Exclusive locks on a folder that one process writes at a time: a grid folder (held by
``boomda bench``) or a run folder (held by the run that trains in it, fresh or resumed).

The lock is an exclusive ``flock`` on the folder's ``.lock`` file, which names its holder (pid,
host, start, command). A second process fails at once with a one-line :class:`FolderLocked`
naming the holder. The kernel releases a ``flock`` when its holder dies, however it dies, so the
lock of a killed process is simply taken over (with one line on stderr). The file is kept and
emptied on release: unlinking it would race with a new holder. Without ``fcntl`` (Windows),
``.lock`` is created exclusively and holds the pid, and the lock of a process that no longer
runs is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from boomda.errors import BoomdaError

try:
    import fcntl
except ImportError:  # Windows: an exclusively created pid file instead
    fcntl = None  # type: ignore[assignment]

#: the lock file of a locked folder
LOCK = ".lock"


class FolderLocked(BoomdaError):
    """The folder is in use by another process."""


@contextmanager
def folder_lock(folder: str | Path, *, what: str, command: str,
                error: type[FolderLocked] = FolderLocked) -> Iterator[Path]:
    """Hold ``folder`` (which must exist) exclusively for the duration of the block; raises
    ``error`` naming the holder if another process holds it. ``what`` names the folder in
    messages (``"grid folder"``), ``command`` the holder (``"boomda bench"``)."""
    lock = _Lock(Path(folder), what, command, error)
    release = lock.with_flock() if fcntl is not None else lock.with_pid_file()
    try:
        yield lock.path
    finally:
        release()


class _Lock:
    def __init__(self, folder: Path, what: str, command: str,
                 error: type[FolderLocked]) -> None:
        self.folder, self.what, self.command, self.error = folder, what, command, error
        self.path = folder / LOCK

    def holder_text(self) -> str:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "command": self.command}) + "\n"

    def in_use(self, holder: dict[str, Any] | None) -> FolderLocked:
        if not holder:
            who = f"another {self.command} (pid unknown)"
        else:
            who = (f"{holder.get('command', self.command)} (pid {holder.get('pid', '?')} on "
                   f"host {holder.get('host', '?')}, since {holder.get('since', '?')})")
        return self.error(f"{self.what} {self.folder} is in use by {who}; wait for it or "
                          f"stop it")

    def taking_over(self, holder: dict[str, Any] | None) -> None:
        if holder:
            print(f"boomda: {self.what} {self.folder}: taking over the lock of pid "
                  f"{holder.get('pid', '?')} (host {holder.get('host', '?')}, since "
                  f"{holder.get('since', '?')}), which is no longer running", file=sys.stderr)

    def cannot(self, reason: str) -> BoomdaError:
        return BoomdaError(f"{self.what} {self.folder}: cannot lock {self.path.name} ({reason})")

    def with_flock(self) -> Callable[[], None]:
        assert fcntl is not None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise self.cannot(exc.strerror or str(exc)) from None
        os.set_inheritable(fd, False)  # no child process keeps the lock alive
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = None
            for _ in range(20):  # the holder writes its name right after taking the lock
                holder = _parse_holder(_read_fd(fd))
                if holder:
                    break
                time.sleep(0.025)
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                raise self.in_use(holder) from None
            raise self.cannot(exc.strerror or str(exc)) from None
        try:
            self.taking_over(_parse_holder(_read_fd(fd)))  # a clean release leaves it empty
            os.ftruncate(fd, 0)
            os.pwrite(fd, self.holder_text().encode(), 0)
        except BaseException:
            os.close(fd)
            raise

        def release() -> None:
            try:
                os.ftruncate(fd, 0)  # kept, emptied: unlinking would race with a new holder
            finally:
                os.close(fd)  # releases the flock

        return release

    def with_pid_file(self) -> Callable[[], None]:
        path, text = self.path, self.holder_text()
        for _ in range(5):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    holder = _parse_holder(path.read_text())
                except OSError:
                    holder = None
                if holder is None:  # being written right now, or garbage
                    time.sleep(0.05)
                    try:
                        holder = _parse_holder(path.read_text())
                    except OSError:
                        continue
                if holder is not None:
                    same_host = holder.get("host") == socket.gethostname()
                    pid = holder.get("pid")
                    if not same_host or not isinstance(pid, int) or pid_alive(pid):
                        raise self.in_use(holder) from None
                self.taking_over(holder)
                path.unlink(missing_ok=True)
                continue
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)

            def release() -> None:
                try:
                    if path.read_text() == text:
                        path.unlink()
                except OSError:
                    pass

            return release
        raise self.cannot("another process keeps replacing it")


def _parse_holder(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _read_fd(fd: int) -> str:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 4096, offset)
        if not chunk:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(chunk)
        offset += len(chunk)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
