"""The command that serves the database to an AI assistant: mcp (the Model Context Protocol, on stdio)."""

from __future__ import annotations

import os
import signal

from ..errors import EXIT_INTERRUPTED, TrialsyncError
from .options import DbOption, db_path
from .streams import OutputError


def serve_mcp(db: DbOption = None) -> None:
    """Serve the database to an AI assistant over the Model Context Protocol on stdio; it only reads (never pulls,
    never writes). Needs pip install 'trialsync[mcp]'. Example: trialsync mcp --db ~/trialsync.db"""
    from . import signals_held

    try:
        with signals_held():  # pydantic loads compiled modules
            from ..mcp_server import serve
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "trialsync":
            raise
        raise TrialsyncError(f"`trialsync mcp` needs the MCP Python SDK, which cannot be imported here ({exc}): "
                             "pip install 'trialsync[mcp]'") from None
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _stop_at_once)
    try:
        serve(db_path(db))
    except BaseExceptionGroup as group:  # the SDK's task group: a write to standard output that failed, say
        failed = group.subgroup(lambda error: isinstance(error, OSError))
        if failed is None:
            raise
        error = _first(failed)
        raise OutputError(f"cannot write to standard output: {error.strerror or error}") from None


def _stop_at_once(signum=None, frame=None) -> None:
    """Ctrl-C or SIGTERM while serving: one line and exit 130, at once. Raised as KeyboardInterrupt, the signal
    would land inside one of the SDK's asyncio tasks, and asyncio's shutdown would log that task's failure as a
    traceback. Nor can the process exit normally: the SDK reads standard input in a thread no signal can stop,
    and a normal exit waits for it until the client closes the pipe. Nothing is left to close: each call
    opens and closes its own read-only connection, so the database is never mid-write."""
    os.write(2, b"trialsync: interrupted\n")  # not sys.stderr: the signal may have come in the middle of a write
    os._exit(EXIT_INTERRUPTED)


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first exception in ``group``, however deeply grouped."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
