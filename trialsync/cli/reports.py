"""Commands that report on what is stored: status-report, history, changes, pulls, report."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (
    AsOfOption, ChartOption, DbOption, FormatOption, TopicArgument, chart_format, db_path, emit, err, not_both, read_db,
    resolve_format, topic_name,
)
from .completion import complete_topic

TREND_PULLS = 12  # the complete pulls the status report's sparklines span


class Dimension(str, Enum):
    """What ``status-report --by`` cross-tabulates status against."""

    phase = "phase"
    study_type = "study-type"
    sponsor_class = "sponsor-class"
    sponsor = "sponsor"
    start_year = "start-year"
    country = "country"
    condition = "condition"
    results = "results"


def status_report(
    topic: TopicArgument = None,
    by: Annotated[Optional[Dimension], typer.Option(
        "--by", help="Cross-tabulate status against phase, study-type, sponsor-class, sponsor, start-year, country, "
        "condition or results (posted, under review, delayed, due, not yet due, not applicable).",
        show_default=False)] = None,
    every: Annotated[bool, typer.Option("--all", help="One line per stored topic.")] = False,
    as_of: AsOfOption = None,
    chart: ChartOption = False,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """Count a topic's studies by overall status, with changes since the previous pull. Example: trialsync status-report"""
    from .. import reports
    from ..reports.breakdowns import breakdown
    from ..reports.common import read_moment
    from ..render.status import render_breakdown, render_every_topic, render_status_report

    not_both(topic=topic, all=every)
    not_both(all=every, by=by)
    not_both(all=every, as_of=as_of)
    not_both(chart=chart, all=every)
    not_both(chart=chart, by=by)
    moment = read_moment(as_of) if as_of is not None else None
    conn = read_db(db)
    fmt = chart_format(fmt) if chart else resolve_format(fmt)
    if every:
        found = reports.every_topic(conn)
        emit(render_every_topic(found, [reports.status_summary(r) for r in found], fmt))
        return
    name = topic_name(conn, topic)
    if by is not None:
        emit(render_breakdown(breakdown(conn, name, by.value, as_of=moment), fmt))
        return
    report = reports.status_report(conn, name, as_of=moment)
    trend = reports.history(conn, name, last=TREND_PULLS, finished_by=moment)
    emit(render_status_report(report, reports.status_summary(report), fmt, trend=trend, chart=chart))


def history(topic: TopicArgument = None, chart: ChartOption = False, db: DbOption = None,
            fmt: FormatOption = None) -> None:
    """The topic's counts by status at each complete pull, oldest first. Example: trialsync history stem-cell-spine"""
    from .. import reports
    from ..render.status import render_history

    conn = read_db(db)
    name = topic_name(conn, topic)
    fmt = chart_format(fmt) if chart else resolve_format(fmt)
    emit(render_history(name, reports.history(conn, name), fmt, chart=chart))


def changes(
    topic: Annotated[Optional[str], typer.Argument(help="Topic; default: every topic.", show_default=False,
                                                          autocompletion=complete_topic)] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only changes observed on or after this date (YYYY-MM-DD).",
                                                 show_default=False)] = None,
    pulls: Annotated[Optional[int], typer.Option("--pulls", min=1, max=1_000_000,
                                                 help="Only changes from the last N pulls and imports (of the topic, when one is named).",
                                                 show_default=False)] = None,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """List what changed in the studies, newest first. Example: trialsync changes --since 2026-11-01"""
    from .. import reports, store
    from ..render.changes import render_changes
    from ..reports.common import read_date
    from ..vocab import plural

    not_both(since=since, pulls=pulls)
    if since is not None:
        read_date(since, "--since")
    conn = read_db(db)
    name = store.get_topic(conn, topic).name if topic is not None else None
    found, fmt = reports.list_changes(conn, name, since=since, pulls=pulls), resolve_format(fmt)
    if not found and name is not None and pulls is not None and fmt not in ("json", "csv", "nl"):
        emit([f"nothing in the last {plural(pulls, 'pull')} of {name}"])
        return
    emit(render_changes(found, fmt))


def pulls_command(
    topic: Annotated[Optional[str], typer.Argument(help="Topic; default: every topic.", show_default=False,
                                                          autocompletion=complete_topic)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many pulls to list.")] = 20,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """List recent pulls and imports with their outcome, counts and duration. Example: trialsync pulls -n 5"""
    from .. import reports
    from ..render.changes import render_pulls

    emit(render_pulls(reports.list_pulls(read_db(db), topic, limit), resolve_format(fmt)))


def report(
    html: Annotated[Path, typer.Option("--html", help="Write the report to this HTML file; - means standard output.",
                                       dir_okay=False, show_default=False)],
    topic: TopicArgument = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --html file if it exists.")] = False,
    db: DbOption = None,
) -> None:
    """Write a topic's report as one HTML page that opens offline: charts, changes, breakdowns, its studies.
    Example: trialsync report --html spine.html"""
    import sys

    from ..reports.overview import topic_overview
    from ..render.export import check_export_target, write_whole
    from ..render.html import render_html
    from ..store.db import database_files
    from ..vocab import plural
    from .streams import output_file

    target = output_file(html)
    if target is not None:
        check_export_target(target, force, database_files(db_path(db)))
    conn = read_db(db)
    overview = topic_overview(conn, topic_name(conn, topic))
    page = render_html(overview)
    if target is None:
        sys.stdout.write(page)
        return
    write_whole(target, lambda out: out.write(page))
    err(f"wrote the report of {overview['topic']} ({plural(len(overview['studies']), 'study', 'studies')}) to {html}")
