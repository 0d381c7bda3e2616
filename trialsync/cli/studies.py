"""Commands about the studies themselves: list, show, export."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_RATE
from ..errors import UsageError
from ..vocab import plural
from .completion import complete_status
from .options import (
    ApiUrlOption, AsOfOption, DbOption, FormatOption, StudyFormat, TopicArgument, api_client, db_path, emit, err, finite,
    not_both, read_db, resolve_format, topic_name,
)


class Units(str, Enum):
    """Units of distance."""

    km = "km"
    mi = "mi"


class Sort(str, Enum):
    """Orders of ``list``."""

    updated = "updated"
    start = "start"
    title = "title"
    status = "status"
    nct = "nct"
    enrollment = "enrollment"
    distance = "distance"
    relevance = "relevance"
    overdue = "overdue"


def list_command(
    topic: TopicArgument = None,
    status: Annotated[Optional[list[str]], typer.Option(
        "--status", help="Overall status, as the API or the website writes it (repeat, or separate with commas).",
        show_default=False, autocompletion=complete_status)] = None,
    phase: Annotated[Optional[list[str]], typer.Option("--phase", help="Phase: 1, 2, 'phase 3', early1, NA (repeatable).",
                                                       show_default=False)] = None,
    study_type: Annotated[Optional[str], typer.Option("--type", help="interventional, observational or expanded access.",
                                                      show_default=False)] = None,
    sponsor: Annotated[Optional[str], typer.Option("--sponsor", help="Lead sponsor or collaborator name contains this.",
                                                   show_default=False)] = None,
    sponsor_class: Annotated[Optional[str], typer.Option("--sponsor-class", help="industry, nih, fed, other, ...",
                                                         show_default=False)] = None,
    country: Annotated[Optional[str], typer.Option("--country", help="A site in this country.", show_default=False)] = None,
    near: Annotated[Optional[str], typer.Option(
        "--near", help="A place: 'Chicago, IL', 'Paris, France', a US ZIP code, or LAT,LON.", show_default=False)] = None,
    within: Annotated[Optional[str], typer.Option("--within", help="With --near: a site within this distance "
                                                  "(50km, 30mi; a bare number is km).", show_default=False)] = None,
    units: Annotated[Optional[Units], typer.Option("--units", help="Distances in km or mi (default: as --within "
                                                   "is written, else km).", show_default=False)] = None,
    site_status: Annotated[Optional[list[str]], typer.Option(
        "--site-status", help="With --near: the site statuses that count (default: open sites when every "
        "--status is open, else every site).", show_default=False, autocompletion=complete_status)] = None,
    age: Annotated[Optional[float], typer.Option("--age", min=0, max=150, callback=finite("--age"),
                                                 help="Takes participants of this age (years).", show_default=False)] = None,
    sex: Annotated[Optional[str], typer.Option("--sex", help="Takes participants of this sex (female, male).",
                                               show_default=False)] = None,
    healthy_volunteers: Annotated[bool, typer.Option("--healthy-volunteers", help="Accepts healthy volunteers.")] = False,
    started_after: Annotated[Optional[str], typer.Option("--started-after", help="Started on or after (YYYY[-MM[-DD]]).",
                                                         show_default=False)] = None,
    started_before: Annotated[Optional[str], typer.Option("--started-before", help="Started before (YYYY[-MM[-DD]]).",
                                                          show_default=False)] = None,
    has_results: Annotated[Optional[bool], typer.Option("--has-results/--no-results", help="Has posted results, or not.",
                                                        show_default=False)] = None,
    results_due: Annotated[bool, typer.Option("--results-due", help="Owes results that are overdue, by trialsync's "
                                              "reading of FDAAA 801 (see the README; not a legal determination), "
                                              "most overdue first.")] = False,
    results_posted_since: Annotated[Optional[str], typer.Option(
        "--results-posted-since", help="Results first posted on or after this date (YYYY[-MM[-DD]]).",
        show_default=False)] = None,
    changed_since: Annotated[Optional[str], typer.Option(
        "--changed-since", help="Posted an update on or after this date (YYYY-MM-DD).", show_default=False)] = None,
    search: Annotated[Optional[str], typer.Option(
        "--search", help="Full-text search of titles, summary, conditions, interventions and keywords "
        "(words, \"phrases\", prefix*, AND, OR, NOT).", show_default=False)] = None,
    sort: Annotated[Optional[Sort], typer.Option("--sort", help="Order; default: relevance with --search, distance "
                                                 "with --near, else last update, newest first.", show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, max=10_000_000, show_default=False,
                                                 help="At most this many studies.")] = None,
    as_of: AsOfOption = None,
    db: DbOption = None,
    fmt: FormatOption = None,
) -> None:
    """List a topic's studies, one a line, filtered and sorted. Example: trialsync list --status recruiting --age 45"""
    from .. import vocab
    from ..reports.asof import topic_as_of
    from ..reports.common import read_day, read_moment
    from ..places import parse_distance
    from ..reports.studies import StudyQuery, list_studies, resolve_place
    from ..render.studies import render_study_list
    from ..statuses import sites_that_count, status_label

    if within is not None and near is None:
        raise UsageError("--within needs --near")
    if site_status and near is None:
        raise UsageError("--site-status needs --near")
    if sort is Sort.distance and near is None:
        raise UsageError("--sort distance needs --near")
    if sort is Sort.relevance and search is None:
        raise UsageError("--sort relevance needs --search")
    if sort is Sort.overdue and not results_due:
        raise UsageError("--sort overdue needs --results-due")
    within_km, written_in = parse_distance(within) if within is not None else (None, "km")
    unit = units.value if units else written_in
    if search is not None and as_of is not None:
        raise UsageError("--search reads the text stored now; it cannot be combined with --as-of")
    if search is not None and not search.strip():
        raise UsageError("--search needs words to look for")
    moment = read_moment(as_of) if as_of is not None else None
    query = StudyQuery(
        statuses=vocab.read_values(status, vocab.read_status, "--status"),
        phases=vocab.read_values(phase, vocab.read_phase, "--phase"),
        study_type=vocab.read_study_type(study_type) if study_type is not None else None,
        sponsor=_text(sponsor, "--sponsor"),
        sponsor_class=vocab.read_sponsor_class(sponsor_class) if sponsor_class is not None else None,
        country=_text(country, "--country"), within_km=within_km, age=age,
        sex=vocab.read_sex(sex) if sex is not None else None,
        healthy_volunteers=healthy_volunteers,
        started_after=read_day(started_after, "--started-after") if started_after is not None else None,
        started_before=read_day(started_before, "--started-before") if started_before is not None else None,
        has_results=has_results, results_due=results_due,
        results_posted_since=(read_day(results_posted_since, "--results-posted-since")
                              if results_posted_since is not None else None),
        today=moment[:10] if moment else None,
        changed_since=read_day(changed_since, "--changed-since") if changed_since is not None else None,
        search=search, sort=sort.value if sort else None, limit=limit)
    query.site_statuses = sites_that_count(query.statuses, vocab.read_values(site_status, vocab.read_status,
                                                                             "--site-status"))
    conn = read_db(db)
    name = topic_name(conn, topic)
    if near is not None:
        query.near = resolve_place(conn, near)
    if moment is None:
        rows = list_studies(conn, name, query)
    else:
        with topic_as_of(conn, name, moment):
            rows = list_studies(conn, name, query)
    where = _near_heading(query, unit)
    statuses = f" ({', '.join(status_label(s).lower() for s in query.statuses)})" if query.statuses else ""
    if results_due:
        statuses += " owing overdue results"
    count = f"The first {len(rows)}" if limit is not None and len(rows) == limit else str(len(rows))
    title = f"{count} {'study' if len(rows) == 1 else 'studies'} of {name}{statuses}{where}" + (
        f", as of {moment}" if moment else "") + "."
    emit(render_study_list(rows, resolve_format(fmt), title=title, units=unit))


def _text(value: str | None, option: str) -> str | None:
    """A text filter as given; an empty one is a usage error, not "no filter"."""
    if value is not None and not value.strip():
        raise UsageError(f"{option} needs a value, not {value!r}")
    return value


def _near_heading(query, unit: str) -> str:
    """How a list's heading says where distances were measured from, and to which sites."""
    from ..places import in_units
    from ..statuses import OPEN_STATUSES

    if query.near is None:
        return ""
    sites = ("open sites" if query.site_statuses == list(OPEN_STATUSES) else
             "sites " + "/".join(s.lower().replace("_", " ") for s in query.site_statuses)
             if query.site_statuses else "sites")
    if query.within_km is None:
        return f", by distance of the nearest of its {sites} to {query.near.name}"
    return f", with one of its {sites} within {round(in_units(query.within_km, unit), 1):g} {unit} of {query.near.name}"


def show(
    nct_id: Annotated[str, typer.Argument(help="The study's NCT id, e.g. NCT04042844.", show_default=False)],
    near: Annotated[Optional[str], typer.Option("--near", help="List the open sites nearest to this place (as "
                                                "list --near takes it) first, then the others.",
                                                show_default=False)] = None,
    sites: Annotated[str, typer.Option("--sites", help="How many sites to print: a number, or all.")] = "10",
    fetch: Annotated[bool, typer.Option("--fetch", help="Fetch the study from the API when it is not stored "
                                        "(it is shown, not stored).")] = False,
    results: Annotated[bool, typer.Option("--results", help="Every outcome measure, analysis and adverse event "
                                          "of its results, not only the primary outcomes and serious events; with "
                                          "--format json, its results (AACT's tables, arranged) instead of the "
                                          "record.")] = False,
    api_url: ApiUrlOption = None,
    db: DbOption = None,
    fmt: Annotated[Optional[StudyFormat], typer.Option(
        "--format", "-f", help="table or text for a person; json prints the raw record.", show_default=False)] = None,
) -> None:
    """Show one study for a person: status, eligibility, sites, contacts, links, changes. Example: trialsync show NCT04042844"""
    from ..errors import NotFound
    from ..ids import read_nct_id
    from ..reports.results import results_of_rows, study_results
    from ..reports.studies import facts_from_rows, resolve_place, sites_by_distance, study_facts, study_raw
    from ..render.studies import render_study
    from ..transform import study_rows

    sites_limit = _sites_limit(sites)
    wanted = read_nct_id(nct_id)
    conn = None
    if not fetch or db_path(db).exists():
        try:
            conn = read_db(db)
            facts = study_facts(conn, wanted)
            raw = study_raw(conn, wanted)
            facts["results"] = study_results(conn, wanted)
        except NotFound:
            if not fetch:
                raise
            facts = None
    else:
        facts = None
    if facts is None:
        import orjson

        record = api_client(api_url, rate=DEFAULT_RATE).study(wanted)
        raw = orjson.dumps(record).decode()
        rows = study_rows(record)
        facts = facts_from_rows(rows, record)
        facts["results"] = results_of_rows(rows)
    if fmt is StudyFormat.json:
        from ..render.formats import to_json

        sys.stdout.write((to_json(facts["results"]) if results else raw) + "\n")
        return
    if near is not None:
        facts["locations"] = sites_by_distance(facts["locations"], resolve_place(conn, near))
    emit(render_study(facts, resolve_format(fmt), sites_limit=sites_limit, all_results=results))


def _sites_limit(text: str) -> int | None:
    """``--sites``: a number of sites (at least 0), or ``all`` (None: no limit)."""
    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit():
        raise UsageError(f"--sites takes a number or 'all', not {text!r}")
    return int(text)


class ExportFormat(str, Enum):
    """Formats of ``export``."""

    csv = "csv"
    json = "json"
    nl = "nl"


def export(
    topic: TopicArgument = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="csv, json or nl (JSON lines).")] = ExportFormat.csv,
    raw: Annotated[bool, typer.Option("--raw", help="The raw records as a ctg-studies.json array, which "
                                      "`trialsync import` reads back.")] = False,
    results: Annotated[bool, typer.Option("--results", help="The results tables instead: with csv, one file per "
                                          "table in the folder -o names; with json, one document; with nl, one "
                                          "row a line.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file (with --results "
                                                   "--format csv: this folder); - or nothing means standard output.",
                                                   show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
    db: DbOption = None,
) -> None:
    """Write a topic's studies as CSV, JSON or JSON lines, or their raw records. Example: trialsync export -o spine.csv"""
    from ..reports.studies import export_raw, export_rows
    from ..render.export import check_export_target, write_export, write_export_file
    from ..store.db import database_files
    from .streams import output_file

    not_both(raw=raw, results=results)
    output = output_file(output)
    if results:
        _export_results(topic, fmt.value, output, force, db)
        return
    if output is not None:
        check_export_target(output, force, database_files(db_path(db)))
    conn = read_db(db)
    name = topic_name(conn, topic)
    items, kind = (export_raw(conn, name), "raw") if raw else (export_rows(conn, name), fmt.value)
    if output is None:
        write_export(items, kind, sys.stdout)
        return
    count = write_export_file(output, items, kind)
    err(f"wrote {plural(count, 'study', 'studies')} of {name} to {output}")



def _export_results(topic: str | None, kind: str, output: Path | None, force: bool, db: Path | None) -> None:
    """``export --results``: the topic's results tables, as CSV files in a folder or one JSON document."""
    from ..reports.results import export_results
    from ..render.export import check_export_target, write_results_export, write_results_folder, write_whole
    from ..transform import RESULT_COLUMNS
    from ..store.db import database_files

    protected = database_files(db_path(db))
    if kind == "csv":
        if output is None:
            raise UsageError("export --results --format csv writes one CSV file per table: name a folder with -o "
                             "(or use --format json)")
        conn = read_db(db)
        name = topic_name(conn, topic)
        count = write_results_folder(output, export_results(conn, name), list(RESULT_COLUMNS), force, protected)
        err(f"wrote {plural(count, 'row')} of the results of {name} to {output} (one CSV file per table)")
        return
    if output is not None:
        check_export_target(output, force, protected)
    conn = read_db(db)
    name = topic_name(conn, topic)
    if output is None:
        write_results_export(export_results(conn, name), kind, sys.stdout)
        return
    count = write_whole(output, lambda out: write_results_export(export_results(conn, name), kind, out))
    err(f"wrote {plural(count, 'row')} of the results of {name} to {output}")
