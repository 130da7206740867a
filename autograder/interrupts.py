"""Ctrl-C and SIGTERM that are never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives. When
that is inside a finaliser (a socket's or an HTTP response's ``__del__``, run by the garbage
collector), the interpreter prints "Exception ignored in ..." and carries on: the grading then
ran to the end and exited 0 after a Ctrl-C. Here the signal also sets a flag, and the long-running
loops (every check, every sandbox wait, every container wait) call ``raise_if_interrupted``: an
interrupt swallowed once is raised again at the next of those points.
"""

from __future__ import annotations

import signal
import threading

_interrupted = threading.Event()


def _handler(signum, frame):  # noqa: ARG001 - the signal module's signature
    _interrupted.set()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Handle SIGINT and SIGTERM in the main thread (the CLI calls this; notebooks keep their own)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even one whose exception was swallowed."""
    if _interrupted.is_set():
        raise KeyboardInterrupt("interrupted")


def interrupted() -> bool:
    return _interrupted.is_set()
