"""Standard output that fails in one line: a full disk (``> /dev/full``) or a closed descriptor (``>&-``)
becomes an ``OutputError``, for every command alike, instead of an unexpected error or Python's
"Exception ignored" at exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import TrialsyncError


class OutputError(TrialsyncError):
    """Standard output cannot be written."""


class GuardedOutput:
    """Wraps ``stream`` (None when the descriptor was closed): writes and flushes that fail raise
    OutputError; a reader that went away (BrokenPipeError) is left to the caller, as before."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guard(lambda stream: stream.write(text))

    def flush(self) -> None:
        if self._stream is not None:
            self._guard(lambda stream: stream.flush())

    @property
    def closed_at_start(self) -> bool:
        """Whether the descriptor was closed when trialsync started (``>&-``)."""
        return self._stream is None

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str):
        if self._stream is None:
            raise OutputError("cannot write to standard output: it is closed")
        return getattr(self._stream, name)

    def _guard(self, action):
        if self._stream is None:
            raise OutputError("cannot write to standard output: it is closed")
        try:
            return action(self._stream)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OutputError(f"cannot write to standard output: {reason}") from None


def discard_unwritten_output() -> None:
    """After an OutputError: point descriptor 1 at /dev/null, so Python's own flush at exit cannot fail a
    second time with a message of its own."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
    sys.stdout = open(os.devnull, "w")


_STDOUT_NAMES = ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")


def output_file(path: Path | None) -> Path | None:
    """The file an ``-o`` option names, or None for standard output (no option, or ``-``); OutputError when
    it names a standard output that was closed at start."""
    if path is None or str(path) == "-":
        return None
    check_not_closed_stdout(path)
    return path


def check_not_closed_stdout(path: os.PathLike | str) -> None:
    """OutputError when ``path`` names standard output and that was closed at start: the descriptor may
    since hold another file (SQLite puts /dev/null there), so writing to it would say "wrote" of nothing."""
    if str(path) in _STDOUT_NAMES and isinstance(sys.stdout, GuardedOutput) and sys.stdout.closed_at_start:
        raise OutputError(f"cannot write to {path}: standard output is closed")
