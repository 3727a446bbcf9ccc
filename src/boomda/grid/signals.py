"""Stopping a grid on SIGINT, SIGTERM or SIGHUP.

A :class:`Stop` is the grid's stop request, shared by the orchestration and the executor.
:func:`stop_on_signals` sets it when a stop signal reaches the main process and raises
:class:`Stopped` in the main thread, so that whatever the main thread waits on (a cell trained
in process, the workers, Ray) is abandoned at once. An executor that sees another
``KeyboardInterrupt`` while the stop is set (a library that checks signals itself, such as Ray,
raises a plain one) turns it back into :class:`Stopped` (:meth:`Stop.reraise`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from boomda.errors import BoomdaError

#: the signals that stop a grid (those the platform has)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class GridInterrupted(BoomdaError):
    """A grid stopped by a signal (SIGINT, SIGTERM, SIGHUP) to the main process; ``done`` of
    ``total`` cells are done. Running the same grid on the folder again resumes it."""

    def __init__(self, message: str, *, signal_name: str, done: int, total: int) -> None:
        super().__init__(message)
        self.signal_name, self.done, self.total = signal_name, done, total


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when the grid's :class:`Stop` is set by signal ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Stop:
    """A grid's stop request: an event, and the signal that set it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def set(self, signum: int) -> None:
        """Request the stop, by signal ``signum`` (the first request's signal is kept)."""
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Stopped` if the stop is requested."""
        if self._event.is_set():
            raise Stopped(self.signum or 0)

    def reraise(self, interrupt: KeyboardInterrupt) -> None:
        """Re-raise ``interrupt``, as :class:`Stopped` when it is a plain ``KeyboardInterrupt``
        that arrived while the stop is requested."""
        if not isinstance(interrupt, Stopped) and self._event.is_set():
            raise Stopped(self.signum or 0) from None
        raise interrupt


@contextmanager
def stop_on_signals(stop: Stop) -> Iterator[Stop]:
    """For the duration of the block, SIGINT, SIGTERM and SIGHUP set ``stop`` and raise
    :class:`Stopped` in the main thread; a signal that is ignored (``nohup``, a background job)
    stays ignored. After the first one the others are ignored, so that the cleanup is not cut
    short. The previous handlers are restored at the end. Outside the main thread (where
    Python delivers no signal) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        stop.set(signum)
        raise Stopped(signum)

    try:
        for sig in STOP_SIGNALS:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN or current is None:
                continue
            previous[sig] = current
            signal.signal(sig, handler)
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
