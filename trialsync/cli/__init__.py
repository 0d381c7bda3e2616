"""The command line: the only layer that knows typer, consoles and exit codes. ``root`` (the app, and where
failures become exit codes), ``options`` (declared once), and one module per command group.

This module stays light: ``main`` takes over Ctrl-C and SIGTERM before the rest is imported, so that a
signal in the first instants still ends in one line and exit code 130.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def signals_held():
    """Hold Ctrl-C and SIGTERM back while modules load: a compiled module interrupted in the middle of its
    own set-up can crash the interpreter. The signal arrives, and is acted on, as soon as the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def main() -> None:
    """Run the command line; expected failures print one line on stderr and set the exit code."""
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: exit 130, never a half-written line or a traceback
    try:
        with signals_held():
            from .root import run
        run()
    except KeyboardInterrupt:  # before run() could catch it, or after
        sys.stderr.write("trialsync: interrupted\n")
        sys.exit(130)


def __getattr__(name: str):
    if name in ("app", "topics_app"):
        import importlib

        return getattr(importlib.import_module(f"{__name__}.root"), name)
    raise AttributeError(name)


__all__ = ["app", "main", "topics_app"]
