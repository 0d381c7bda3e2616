"""Commands that bring data in: pull, import, verify."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import (
    DEFAULT_ATTEMPTS, DEFAULT_DEADLINE, DEFAULT_LIST_EVERY, DEFAULT_MAX_RESPONSE_MB, DEFAULT_RATE, DEFAULT_REFRESH_DAYS,
    DEFAULT_TOPIC_NAME,
)
from ..errors import EXIT_FAILED, Interrupted
from .completion import complete_topic
from .options import (
    ApiUrlOption, DbOption, FormatOption, MaxResponseOption, RateOption, RetriesOption, TimeoutOption, TopicArgument, WaitOption,
    api_client, db_path, emit, err, print_digest, print_digests, read_db, resolve_format, stop_on_signal, topic_name, write_db,
)


def pull(
    topics: Annotated[Optional[list[str]], typer.Argument(
        help="Topics to pull; default: every stored topic, or the built-in stem-cell-spine.", show_default=False,
        autocompletion=complete_topic)] = None,
    db: DbOption = None,
    api_url: ApiUrlOption = None,
    rate: RateOption = DEFAULT_RATE,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000, help="Studies per request.")] = 1000,
    full: Annotated[bool, typer.Option("--full", help="Fetch every study, ignoring what changed since the last pull.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something changed (for cron).")] = False,
    wait: WaitOption = 0,
    retries: RetriesOption = DEFAULT_ATTEMPTS,
    timeout: TimeoutOption = DEFAULT_DEADLINE,
    list_every: Annotated[int, typer.Option(
        "--list-every", envvar="TRIALSYNC_LIST_EVERY", min=1, max=10000,
        help="List a large topic whole (ids and statuses) every N incremental pulls; between them its members "
        "are checked against the registry's list of changed studies. A small topic is listed every pull.")
    ] = DEFAULT_LIST_EVERY,
    refresh_days: Annotated[int, typer.Option(
        "--refresh-days", envvar="TRIALSYNC_REFRESH_DAYS", min=0, max=100000,
        help="Fetch again each study not fetched for N days, a share of the topic each pull (0: never).")
    ] = DEFAULT_REFRESH_DAYS,
    max_response_mb: MaxResponseOption = DEFAULT_MAX_RESPONSE_MB,
    feed_dir: Annotated[Optional[Path], typer.Option(
        "--feed", help="Then write each pulled topic's Atom feed of changes to DIR/<topic>.atom.",
        metavar="DIR", show_default=False)] = None,
) -> None:
    """Fetch the studies of topics from ClinicalTrials.gov into the database. Example: trialsync pull"""
    from .. import reports, store
    from ..render.changes import pull_summary
    from ..render.feed import check_feed_directory, check_feed_files, write_feeds
    from ..reports.changes import feed_entries
    from ..store.db import database_files
    from ..sync.pull import PullOptions
    from ..sync.run import pull_topics, topics_to_pull

    options = PullOptions(full=full, page_size=page_size, list_every=list_every, refresh_days=refresh_days)
    if feed_dir is not None:
        check_feed_directory(feed_dir)
    failures = 0
    with write_db(db, wait) as conn, stop_on_signal() as stop:
        client = api_client(api_url, rate, retries, timeout, stop, max_response_mb)
        if feed_dir is not None:
            check_feed_files(feed_dir, [name for name, _ in topics_to_pull(conn, topics)], database_files(db_path(db)))
        killed = store.mark_abandoned_pulls(conn)
        if killed and not quiet:
            err(f"{killed} earlier pull(s) had been killed before finishing; this pull completes their work")
        # The digests come after every topic's turn, as one: a change to a study several topics hold is
        # printed once. A topic whose pull failed or stopped still reports what it saw.
        digested: list[str] = []
        try:
            with _progress(client, enabled=not quiet and sys.stderr.isatty()) as progress_for:
                for outcome in pull_topics(conn, client, topics, options, progress_for, err):
                    if outcome.note:
                        if not quiet:
                            err(outcome.note)
                        continue
                    digested.append(outcome.topic)
                    if outcome.error is not None:
                        err(f"{outcome.topic}: {outcome.error}")
                        failures += 1
                    elif (not quiet or outcome.result.first_fill
                          or reports.unreported_changes(conn, outcome.topic).changes):
                        sys.stdout.write(pull_summary(outcome.result) + "\n")
                        sys.stdout.flush()
        except Interrupted:
            _print_digests_after_a_stop(conn, digested)
            raise
        print_digests(conn, digested)
        if feed_dir is not None:
            write_feeds(feed_dir, (feed_entries(conn, topic) for topic in dict.fromkeys(digested)),
                        database_files(db_path(db)))
    if failures:
        raise typer.Exit(EXIT_FAILED)


def _print_digests_after_a_stop(conn, topics: list[str]) -> None:
    """Ctrl-C or SIGTERM ended the run: the topics done by then still print their digests."""
    if topics:
        print_digests(conn, topics)


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
        client.on_wait = lambda message: bar.update(task, description=f"{current['topic']}: {message}")

        def progress_for(topic: str):
            current["topic"] = topic
            bar.update(task, description=topic, completed=0, total=None)

            def update(stage: str, received: int, total: int | None) -> None:
                bar.update(task, description=f"{topic}: {labels.get(stage, stage)}", completed=received, total=total)

            return update

        yield progress_for


def import_command(
    file: Annotated[Path, typer.Argument(help="ctg-studies.json, ctg-studies.json.zip, a saved /studies page or JSON lines.",
                                         show_default=False)],
    topic: Annotated[str, typer.Option("--topic", help="Topic the studies belong to.")] = DEFAULT_TOPIC_NAME,
    db: DbOption = None,
    wait: WaitOption = 0,
) -> None:
    """Load studies from a file downloaded from ClinicalTrials.gov. Example: trialsync import ctg-studies.json"""
    from ..render.changes import import_summary
    from ..sync.files import import_records, read_records
    from ..topics import validate_topic_name

    validate_topic_name(topic)
    records = read_records(file)
    with write_db(db, wait) as conn, stop_on_signal() as stop:
        result = import_records(conn, records, topic, source=str(file), stop=stop)
        for line in result.counts.warnings:  # said once the import is stored
            err(line)
        sys.stdout.write(import_summary(result, str(file)) + "\n")
        print_digest(conn, topic)


def verify(
    topic: TopicArgument = None,
    db: DbOption = None,
    api_url: ApiUrlOption = None,
    rate: RateOption = DEFAULT_RATE,
    retries: RetriesOption = DEFAULT_ATTEMPTS,
    timeout: TimeoutOption = DEFAULT_DEADLINE,
    fmt: FormatOption = None,
    max_response_mb: MaxResponseOption = DEFAULT_MAX_RESPONSE_MB,
) -> None:
    """Compare a topic's stored studies and counts by status with the API's; exit 1 if they differ. Example: trialsync verify"""
    from ..render.status import render_verification
    from ..sync.checks import verify_topic

    conn = read_db(db)
    name = topic_name(conn, topic)
    with stop_on_signal() as stop:
        check = verify_topic(conn, api_client(api_url, rate, retries, timeout, stop, max_response_mb), name)
    emit(render_verification(check, resolve_format(fmt)))
    if not check.agrees:
        differences = len(check.only_in_api) + len(check.only_in_store) + len(check.status_differs)
        err(f"{name}: the store differs from the API ({differences} "
            f"{'difference' if differences == 1 else 'differences'}); `trialsync pull {name}` brings it up to date")
        raise typer.Exit(EXIT_FAILED)
