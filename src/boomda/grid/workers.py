"""The set-up of a process that runs cells: torch's threads, and ending with the bench.

A worker process ends with the main process whatever ends it (SIGKILL included:
``PR_SET_PDEATHSIG`` on Linux, and a thread that watches the parent pid everywhere), and ignores
SIGINT, so that a Ctrl-C in a terminal is handled by the main process only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: Linux prctl option: the signal a process gets when its parent dies
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """In a worker: end when the main process ``parent_pid`` ends, however it ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="boomda-parent-watch", daemon=True).start()


def init_worker(threads: int, parent_pid: int | None = None) -> None:
    """Set torch's threads; in a worker process (``parent_pid`` given), also end with the main
    process and leave SIGINT to it."""
    if parent_pid is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)
