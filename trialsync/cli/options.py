"""What the commands share: options declared once, opening the database, printing blocks, signals."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_ATTEMPTS, DEFAULT_DEADLINE
from ..errors import UsageError
from .completion import complete_topic


class Format(str, Enum):
    """Output formats of every command that prints rows."""

    table = "table"
    text = "text"
    json = "json"
    csv = "csv"
    nl = "nl"
    markdown = "markdown"


class StudyFormat(str, Enum):
    """Output formats of ``show``."""

    table = "table"
    text = "text"
    json = "json"


def finite(name: str):
    """A callback refusing NaN and infinity, which typer's float ranges let through."""
    def check(value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number", param_hint=name)
        return value
    return check


def _checked_api_url(value: str | None) -> str | None:
    """The ``--api-url`` given, checked before any command body runs (so that a bad one opens no database)."""
    if value is not None:
        from . import signals_held

        with signals_held():  # requests loads compiled modules
            from ..api.client import check_base_url

        check_base_url(value)
    return value


DbOption = Annotated[Optional[Path], typer.Option(
    "--db", envvar="TRIALSYNC_DB", help="Database file (default: in your user data directory).",
    dir_okay=False, show_default=False)]
ApiUrlOption = Annotated[Optional[str], typer.Option(
    "--api-url", envvar="TRIALSYNC_API_URL", show_default=False, callback=_checked_api_url,
    help="API base URL (default: https://clinicaltrials.gov/api/v2).")]
RateOption = Annotated[float, typer.Option(
    "--rate", envvar="TRIALSYNC_RATE", min=0, max=100000, callback=finite("--rate"),
    help="At most this many requests a minute; 0 turns pacing off.")]
RetriesOption = Annotated[int, typer.Option(
    "--retries", envvar="TRIALSYNC_RETRIES", min=1, max=100, help="Tries per request before giving up.")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", envvar="TRIALSYNC_TIMEOUT", min=1, max=86400, callback=finite("--timeout"),
    help="Seconds one request may take in all before it is abandoned and tried again.")]
MaxResponseOption = Annotated[int, typer.Option(
    "--max-response-mb", envvar="TRIALSYNC_MAX_RESPONSE_MB", min=1, max=1048576,
    help="Abandon (without retrying) an answer whose body is larger than this many MB.")]
FormatOption = Annotated[Optional[Format], typer.Option(
    "--format", "-f", help="Output format: table, text, json, csv, nl (JSON lines) or markdown; "
    "default: table on a terminal, text otherwise.", show_default=False)]
WaitOption = Annotated[float, typer.Option(
    "--wait", min=0, max=86400, callback=finite("--wait"),
    help="Seconds to wait for another pull's lock before giving up (exit code 75).")]
TopicArgument = Annotated[Optional[str], typer.Argument(
    help="Topic; default: the only stored one, or stem-cell-spine.", show_default=False, autocompletion=complete_topic)]
ChartOption = Annotated[bool, typer.Option(
    "--chart", help="Draw the counts as a chart (bars, or a line of each status over time) instead of a table.")]
AsOfOption = Annotated[Optional[str], typer.Option(
    "--as-of", help="Show the topic as it stood after its last complete pull at or before this date "
    "(YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM, UTC).", show_default=False)]


def db_path(db: Path | None) -> Path:
    """The database file a command uses."""
    from ..store import default_db_path

    return db if db is not None else default_db_path()


def read_db(db: Path | None):
    """A read-only connection: a missing database is an error, never created."""
    from ..store import open_for_reading

    return open_for_reading(db_path(db))


def write_db(db: Path | None, wait: float = 0.0):
    """The write lock and a read-write connection, as a context manager."""
    from ..store import open_for_writing

    return open_for_writing(db_path(db), wait)


def topic_name(conn, topic: str | None) -> str:
    """The topic a command means: the one named (stored or built in), else the default one."""
    from .. import store

    return store.get_topic(conn, topic).name if topic is not None else store.default_topic_name(conn)


def is_terminal() -> bool:
    """Whether standard output is a terminal (tables and colour) or a pipe or file (plain text)."""
    return sys.stdout.isatty()


def resolve_format(fmt: Enum | None) -> str:
    """The format asked for, else a table on a terminal and plain text otherwise."""
    if fmt is not None:
        return fmt.value
    return "table" if is_terminal() else "text"


def chart_format(fmt: Enum | None) -> str:
    """The format of a ``--chart``: table (colour) or text (plain characters); UsageError for another."""
    chosen = resolve_format(fmt)
    if chosen not in ("table", "text"):
        raise UsageError(f"--chart draws with characters: use it with --format table or text, not {chosen}")
    return chosen


def emit(blocks: list) -> None:
    """Print rendered blocks to stdout, a blank line between them: rich renderables through rich, text as it is."""
    console = None
    for index, block in enumerate(blocks):
        if index and not (isinstance(blocks[index - 1], str) and not isinstance(block, str)):
            sys.stdout.write("\n")
        if isinstance(block, str):
            sys.stdout.write(block + "\n")
            continue
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        sys.stdout.flush()
        console.print(block)
    sys.stdout.flush()


def err(message: str) -> None:
    """One line on stderr, whatever the message holds (record text in it is made visible)."""
    from ..render.visible import visible

    sys.stderr.write(f"trialsync: {visible(message)}\n")
    sys.stderr.flush()


@contextmanager
def stop_on_signal():
    """First Ctrl-C or SIGTERM: stop at the next page boundary, or at once while waiting on the API.
    A second Ctrl-C stops at once."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if sys.stderr.isatty():  # a person at a terminal; cron gets the one line that says how it ended
            err("stopping after the page being written (Ctrl-C again to stop at once)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def api_client(api_url: str | None, rate: float, retries: int = DEFAULT_ATTEMPTS, timeout: float = DEFAULT_DEADLINE, stop=None,
               max_response_mb: int | None = None):
    """The API client the commands that reach the API use. ``max_response_mb``: the option's value, else (for a
    command without the option) ``TRIALSYNC_MAX_RESPONSE_MB``, else 64."""
    from . import signals_held

    if max_response_mb is None:
        text = os.environ.get("TRIALSYNC_MAX_RESPONSE_MB", "").strip() or "64"
        if not text.isdigit() or not 1 <= int(text) <= 1048576:
            raise UsageError(f"TRIALSYNC_MAX_RESPONSE_MB={text!r} is not a whole number of MB from 1 to 1048576")
        max_response_mb = int(text)

    with signals_held():  # requests loads compiled modules
        from ..api import ApiClient

    return ApiClient(base_url=api_url, rate=rate, attempts=retries, deadline=timeout, stop=stop,
                     max_response_mb=max_response_mb)


def print_digest(conn, topic: str) -> None:
    """Print what ``topic`` has not reported yet, then mark it reported (only once it is printed)."""
    print_digests(conn, [topic])


def print_digests(conn, topics: list[str]) -> None:
    """Print what each of ``topics`` has not reported yet, a change they share once (naming them), then move
    each topic's own cursor (only once it is printed), so that the next run repeats none of it."""
    from .. import reports, store
    from ..render.changes import render_digests

    digests = [reports.unreported_changes(conn, topic) for topic in dict.fromkeys(topics)]
    text = render_digests([(digest.topic, digest.changes) for digest in digests])
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    for digest in digests:
        if digest.changes:
            store.mark_reported(conn, digest.topic, digest.through)


def not_both(**options) -> None:
    """UsageError when more than one of the given options was used."""
    given = [name for name, value in options.items() if value not in (None, False, [], ())]
    if len(given) > 1:
        raise UsageError(f"use either {' or '.join('--' + g.replace('_', '-') for g in given)}, not both")
