"""The command line: the only module that knows typer, consoles and exit codes."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import sys
import threading
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, NotFound, TrialsyncError, UsageError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
    help="Keep a local SQLite mirror of the ClinicalTrials.gov studies you follow, and report on them.",
)
topics_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Add, list, show and remove topics.")
app.add_typer(topics_app, name="topics")


class Format(str, Enum):
    table = "table"
    text = "text"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class StudyFormat(str, Enum):
    table = "table"
    text = "text"
    json = "json"


def _finite(name: str):
    """A callback refusing NaN and infinity, which typer's float ranges let through."""
    def check(value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a number of seconds", param_hint=name)
        return value
    return check


DbOption = Annotated[Optional[Path], typer.Option(
    "--db", envvar="TRIALSYNC_DB", help="Database file (default: in your user data directory).",
    dir_okay=False, show_default=False)]
ApiUrlOption = Annotated[Optional[str], typer.Option(
    "--api-url", envvar="TRIALSYNC_API_URL", show_default=False,
    help="API base URL (default: https://clinicaltrials.gov/api/v2).")]
RateOption = Annotated[float, typer.Option(
    "--rate", envvar="TRIALSYNC_RATE", min=0, max=100000, callback=_finite("--rate"),
    help="At most this many requests a minute; 0 turns pacing off.")]
RetriesOption = Annotated[int, typer.Option(
    "--retries", envvar="TRIALSYNC_RETRIES", min=1, max=100, help="Tries per request before giving up.")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", envvar="TRIALSYNC_TIMEOUT", min=1, max=86400, callback=_finite("--timeout"),
    help="Seconds one request may take in all before it is abandoned and tried again.")]
FormatOption = Annotated[Optional[Format], typer.Option(
    "--format", "-f", help="Output format; default: table on a terminal, text otherwise.", show_default=False)]
WaitOption = Annotated[float, typer.Option(
    "--wait", min=0, max=86400, callback=_finite("--wait"),
    help="Seconds to wait for another pull's lock before giving up (exit code 75).")]


def _db_path(db: Path | None) -> Path:
    from .store import default_db_path

    return db if db is not None else default_db_path()


def _read(db: Path | None):
    """A read-only connection: a missing database is an error, never created."""
    from .store import open_for_reading

    return open_for_reading(_db_path(db))


def _write(db: Path | None, wait: float = 0.0):
    """The write lock and a read-write connection, as a context manager."""
    from .store import open_for_writing

    return open_for_writing(_db_path(db), wait)


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _format(fmt: Enum | None) -> str:
    if fmt is not None:
        return fmt.value
    return "table" if _is_terminal() else "text"


def _emit(blocks: list) -> None:
    """Print rendered blocks to stdout, a blank line between them: rich renderables through rich, text as it is."""
    console = None
    for index, block in enumerate(blocks):
        if index:
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


def _err(message: str) -> None:
    sys.stderr.write(f"trialsync: {message}\n")
    sys.stderr.flush()


# -- the root -----------------------------------------------------------------------------------------


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"trialsync {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Keep a local SQLite mirror of the ClinicalTrials.gov studies you follow, and report on them."""


# -- pull ---------------------------------------------------------------------------------------------


@contextmanager
def _stop_on_signal():
    """First Ctrl-C or SIGTERM: stop at the next page boundary, or at once while waiting on the API.
    A second Ctrl-C stops at once."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        _err("stopping (Ctrl-C again to stop at once)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_digest(database, topic: str) -> None:
    """Print what ``topic`` has not reported yet, then mark it reported (only once it is printed)."""
    from . import reports, store
    from .output import render_digest

    digest = reports.unreported_changes(database, topic)
    text = render_digest(topic, digest.changes)
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    if digest.changes:
        store.mark_reported(database, topic, digest.through)


@app.command()
def pull(
    topics: Annotated[Optional[list[str]], typer.Argument(
        help="Topics to pull; default: every stored topic, or the built-in stem-cell-spine.", show_default=False)] = None,
    db: DbOption = None,
    api_url: ApiUrlOption = None,
    rate: RateOption = 50,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000, help="Studies per request.")] = 1000,
    full: Annotated[bool, typer.Option("--full", help="Fetch every study, ignoring what changed since the last pull.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something changed (for cron).")] = False,
    wait: WaitOption = 0,
    retries: RetriesOption = 5,
    timeout: TimeoutOption = 120,
    list_every: Annotated[int, typer.Option(
        "--list-every", envvar="TRIALSYNC_LIST_EVERY", min=1, max=10000,
        help="Check which studies left a topic every N incremental pulls.")] = 1,
) -> None:
    """Fetch the studies of topics from ClinicalTrials.gov into the database. Example: trialsync pull"""
    from . import store
    from .api import ApiClient
    from .output import pull_summary
    from .sync.pull import PullOptions
    from .sync.run import pull_topics

    options = PullOptions(full=full, page_size=page_size, list_every=list_every)
    failures = 0
    with _write(db, wait) as database, _stop_on_signal() as stop:
        client = ApiClient(base_url=api_url, rate=rate, attempts=retries, deadline=timeout, stop=stop)
        killed = store.mark_abandoned_pulls(database)
        if killed and not quiet:
            _err(f"{killed} earlier pull(s) had been killed before finishing; this pull completes their work")
        with _progress(client, enabled=not quiet and sys.stderr.isatty()) as progress_for:
            for outcome in pull_topics(database, client, topics, options, progress_for):
                if outcome.note:
                    if not quiet:
                        _err(outcome.note)
                    continue
                if outcome.error is not None:
                    _err(f"{outcome.topic}: {outcome.error}")
                    failures += 1
                else:
                    result = outcome.result
                    pending = bool(_pending_changes(database, outcome.topic))
                    if not quiet or pending or result.first_fill:
                        sys.stdout.write(pull_summary(result) + "\n")
                        sys.stdout.flush()
                _print_digest(database, outcome.topic)
    if failures:
        raise typer.Exit(EXIT_FAILED)


def _pending_changes(database, topic: str) -> list:
    from . import reports

    return reports.unreported_changes(database, topic).changes


@contextmanager
def _progress(client, enabled: bool):
    """``progress_for(topic)``: a rich progress line on a terminal (saying when a request waits and why)."""
    if not enabled:
        yield lambda topic: (lambda stage, received, total: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    labels = {"studies": "studies", "listing": "checking ids", "missing": "fetching by id"}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=None)
        current = {"topic": ""}

        def waiting(message: str) -> None:
            bar.update(task, description=f"{current['topic']}: {message}")

        client.on_wait = waiting

        def progress_for(topic: str):
            current["topic"] = topic
            bar.update(task, description=topic, completed=0, total=None)

            def update(stage: str, received: int, total: int | None) -> None:
                bar.update(task, description=f"{topic}: {labels.get(stage, stage)}", completed=received, total=total)

            return update

        yield progress_for


# -- reports ------------------------------------------------------------------------------------------


@app.command("status-report")
def status_report(
    topic: Annotated[Optional[str], typer.Argument(help="Topic; default: the only stored one, or stem-cell-spine.",
                                                   show_default=False)] = None,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """Count a topic's studies by overall status, with changes since the previous pull. Example: trialsync status-report"""
    from . import reports, store
    from .output import render_status_report

    database = _read(db)
    name = store.get_topic(database, topic).name if topic else store.default_topic_name(database)
    report = reports.status_report(database, name)
    _emit(render_status_report(report, reports.status_summary(report), _format(fmt)))


def _check_date(value: str | None) -> str | None:
    from .dates import iso_day

    if value is None:
        return None
    if iso_day(value) is None:
        raise UsageError(f"--since takes a date as YYYY-MM-DD, not {value!r}")
    return value


@app.command()
def changes(
    topic: Annotated[Optional[str], typer.Argument(help="Topic; default: every topic.", show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only changes observed on or after this date (YYYY-MM-DD).",
                                                 show_default=False)] = None,
    pulls: Annotated[Optional[int], typer.Option("--pulls", min=1, max=1_000_000,
                                                 help="Only changes from the last N pulls and imports.",
                                                 show_default=False)] = None,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """List what changed in the studies, newest first. Example: trialsync changes --since 2026-11-01"""
    from . import reports, store
    from .output import render_changes

    if since is not None and pulls is not None:
        raise UsageError("use either --since or --pulls, not both")
    since = _check_date(since)
    database = _read(db)
    name = store.get_topic(database, topic).name if topic else None
    _emit(render_changes(reports.list_changes(database, name, since=since, pulls=pulls), _format(fmt)))


@app.command("pulls")
def pulls_command(
    topic: Annotated[Optional[str], typer.Argument(help="Topic; default: every topic.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many pulls to list.")] = 20,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """List recent pulls and imports with their outcome, counts and duration. Example: trialsync pulls -n 5"""
    from . import reports
    from .output import render_pulls

    database = _read(db)
    _emit(render_pulls(reports.list_pulls(database, topic, limit), _format(fmt)))


@app.command()
def verify(
    topic: Annotated[Optional[str], typer.Argument(help="Topic; default: the only stored one, or stem-cell-spine.",
                                                   show_default=False)] = None,
    db: DbOption = None,
    api_url: ApiUrlOption = None,
    rate: RateOption = 50,
    retries: RetriesOption = 5,
    timeout: TimeoutOption = 120,
    fmt: FormatOption = None,
) -> None:
    """Compare a topic's stored studies and counts by status with the API's; exit 1 if they differ. Example: trialsync verify"""
    from . import store
    from .api import ApiClient
    from .output import render_verification
    from .sync.checks import verify_topic

    database = _read(db)
    name = store.get_topic(database, topic).name if topic else store.default_topic_name(database)
    with _stop_on_signal() as stop:
        client = ApiClient(base_url=api_url, rate=rate, attempts=retries, deadline=timeout, stop=stop)
        check = verify_topic(database, client, name)
    _emit(render_verification(check, _format(fmt)))
    if not check.agrees:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def show(
    nct_id: Annotated[str, typer.Argument(help="The study's NCT id, e.g. NCT04042844.", show_default=False)],
    db: DbOption = None,
    fmt: Annotated[Optional[StudyFormat], typer.Option(
        "--format", "-f", help="json prints the stored raw record.", show_default=False)] = None,
) -> None:
    """Show the key facts of one stored study. Example: trialsync show NCT04042844"""
    from . import reports
    from .errors import NotFound
    from .ids import is_nct_id
    from .output import render_study

    wanted = nct_id.strip().upper()
    if not is_nct_id(wanted):
        raise NotFound(f"{nct_id!r} is not an NCT id (NCT followed by 8 digits, e.g. NCT04042844)")
    database = _read(db)
    if fmt is StudyFormat.json:
        sys.stdout.write(reports.study_raw(database, wanted) + "\n")
        return
    _emit(render_study(reports.study_facts(database, wanted), _format(fmt)))


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="ctg-studies.json, ctg-studies.json.zip, a saved /studies page or JSON lines.",
                                         show_default=False)],
    topic: Annotated[str, typer.Option("--topic", help="Topic the studies belong to.")] = "stem-cell-spine",
    db: DbOption = None,
    wait: WaitOption = 0,
) -> None:
    """Load studies from a file downloaded from ClinicalTrials.gov. Example: trialsync import ctg-studies.json"""
    from .output import import_summary
    from .sync.files import import_records, read_records
    from .topics import validate_topic_name

    validate_topic_name(topic)
    records = read_records(file)
    with _write(db, wait) as database, _stop_on_signal() as stop:
        result = import_records(database, records, topic, source=str(file), stop=stop)
        sys.stdout.write(import_summary(result, str(file)) + "\n")
        _print_digest(database, topic)


# -- topics -------------------------------------------------------------------------------------------


def _search_option(name: str, help_text: str):
    return Annotated[Optional[str], typer.Option(f"--{name}", help=help_text, show_default=False)]


@topics_app.command("add")
def topics_add(
    name: Annotated[str, typer.Argument(help="Topic name: lowercase letters, digits, '-', '_' or '.'.", show_default=False)],
    cond: _search_option("cond", "query.cond: conditions or diseases.") = None,
    intr: _search_option("intr", "query.intr: interventions or treatments.") = None,
    term: _search_option("term", "query.term: other terms.") = None,
    titles: _search_option("titles", "query.titles: title or acronym.") = None,
    spons: _search_option("spons", "query.spons: sponsor or collaborator.") = None,
    locn: _search_option("locn", "query.locn: location terms.") = None,
    status: _search_option("status", "filter.overallStatus: comma-separated statuses, e.g. RECRUITING,COMPLETED.") = None,
    advanced: _search_option("advanced", "filter.advanced: an Essie expression.") = None,
    geo: _search_option("geo", "filter.geo: e.g. distance(39.0035707,-77.1013313,50mi).") = None,
    replace: Annotated[bool, typer.Option("--replace", help="Change an existing topic's search.")] = False,
    db: DbOption = None,
    wait: WaitOption = 0,
) -> None:
    """Add a topic: a name plus API search parameters. Example: trialsync topics add sci --cond "spinal cord injury" """
    from . import store
    from .topics import make_topic

    topic = make_topic(name, {"cond": cond, "intr": intr, "term": term, "titles": titles, "spons": spons,
                              "locn": locn, "status": status, "advanced": advanced, "geo": geo})
    with _write(db, wait) as database:
        added = store.save_topic(database, topic, replace=replace)
    what = "added topic" if added else "changed topic; its next pull fetches everything under the new search:"
    sys.stdout.write(f"{what} {topic.name}; pull it with: trialsync pull {topic.name}\n")


@topics_app.command("list")
def topics_list(db: DbOption = None, fmt: FormatOption = None) -> None:
    """List stored topics with their studies and last pull. Example: trialsync topics list"""
    from . import reports
    from .output import Column, rows_as
    from .topics import DEFAULT_TOPIC_NAME

    rows = reports.topic_rows(_read(db))
    if not rows and _format(fmt) not in ("json", "csv"):
        sys.stdout.write(f"No topics stored yet; `trialsync pull` adds and pulls the built-in {DEFAULT_TOPIC_NAME}.\n")
        return
    columns = [Column("name", "Topic"), Column("studies", "Studies", numeric=True),
               Column("last_pull", "Last pull"), Column("search", "Search")]
    _emit(rows_as(rows, columns, _format(fmt)))


@topics_app.command("show")
def topics_show(
    name: Annotated[str, typer.Argument(help="Topic name.", show_default=False)],
    db: DbOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Show a topic's search and the exact API URL it requests. Example: trialsync topics show stem-cell-spine"""
    from . import store
    from .api import DEFAULT_PAGE_SIZE, ApiClient
    from .topics import BUILTIN_TOPICS

    path = _db_path(db)
    topic = store.get_topic(_read(db), name) if path.exists() or name not in BUILTIN_TOPICS else BUILTIN_TOPICS[name]
    lines = [f"topic: {topic.name}"] + [f"{k}: {v}" for k, v in topic.search_params().items()]
    if topic.search_params():
        params = {**topic.search_params(), "pageSize": str(DEFAULT_PAGE_SIZE), "countTotal": "true"}
        lines.append(f"url: {ApiClient(base_url=api_url).url_for('/studies', params)}")
    else:
        lines.append("url: none (this topic holds imported studies only)")
    sys.stdout.write("\n".join(lines) + "\n")


@topics_app.command("remove")
def topics_remove(
    name: Annotated[str, typer.Argument(help="Topic name.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    wait: WaitOption = 0,
) -> None:
    """Remove a topic and its membership list; the study records and their history are kept."""
    from . import store

    with _write(db, wait) as database:
        if store.get_stored_topic(database, name) is None:
            raise NotFound(f"unknown topic {name!r}: it is not stored")
        members = len(store.present_ids(database, name))
        if not yes and not typer.confirm(
                f"Remove topic {name} and its list of {members} studies? (study records and history are kept)"):
            raise TrialsyncError("not removed")
        store.remove_topic(database, name)
    sys.stdout.write(f"removed topic {name}; study records and their history are kept\n")


# -- entry point --------------------------------------------------------------------------------------


def _is_click_error(exc: Exception) -> bool:
    # typer's own copy of click and click itself raise different classes that share this protocol.
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Run the command line; expected failures print one line on stderr and set the exit code."""
    from .store import describe_error

    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: exit 130, never a half-written line or a traceback
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="trialsync", standalone_mode=False)
    except TrialsyncError as exc:
        _err(str(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err("aborted")
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except sqlite3.Error as exc:
        _err(str(describe_error(exc)))
        sys.exit(EXIT_FAILED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # the promise is one line, never a traceback
        if _is_click_error(exc):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and exc.exit_code == EXIT_USAGE else ""
            _err(f"{exc.format_message()}{hint}")
            sys.exit(exc.exit_code)
        if os.environ.get("TRIALSYNC_DEBUG"):
            raise
        _err(f"unexpected error: {type(exc).__name__}: {exc} (set TRIALSYNC_DEBUG=1 for details)")
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
