"""``trialsync mcp``: the local database served to an AI assistant over the Model Context Protocol, on stdio.

Each tool answers what the command of the same question prints with ``--format json`` (the same ``reports``
queries, shaped by the same ``render`` functions), adds how fresh the mirror is, and links each study to its
page on ClinicalTrials.gov. The database is opened for each call without writing a byte (``open_unchanged``):
the server never pulls, never writes and never asks the live registry. A failure the user can act on (an
unknown topic, a malformed id, no database) is a tool error of one line, never a crash of the server.

Imports the MCP SDK (``pip install 'trialsync[mcp]'``); only ``trialsync mcp`` imports this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ToolAnnotations
from pydantic import Field, ValidationError

from . import __version__, jsontext, reports, store
from .errors import InvalidValue, NotFound, TrialsyncError, UsageError
from .ids import read_nct_id, study_url
from .render.changes import changes_data
from .render.formats import to_json
from .render.status import history_data, status_report_data
from .render.studies import study_list_data
from .render.visible import visible
from .reports.breakdowns import DIMENSIONS, breakdown
from .reports.changes import count_changes
from .reports.results import study_results as study_results_report
from .reports.common import read_date, read_moment, write_mark
from .reports.status import freshness
from .reports.studies import (
    RECORD_SECTIONS, StudyQuery, count_studies, list_studies, record_parts, resolve_place, study_summary,
    study_topics,
)
from .statuses import sites_that_count
from .topics import website_search_url
from .vocab import read_phase, read_status, read_values

INSTRUCTIONS = (
    "trialsync keeps a local SQLite mirror of the ClinicalTrials.gov studies of the topics its user follows "
    "(a topic is a saved registry search, or a list of NCT ids). These tools read that mirror only: they never "
    "pull from the registry, never write, and never search the live ClinicalTrials.gov; a study outside the "
    "topics is not here. Every answer carries `freshness`: when each topic's last complete pull (or import) "
    "finished and the registry's dataTimestamp it saw; say how old the data is when it matters. Start with "
    "list_topics. Link studies by their `url` (https://clinicaltrials.gov/study/NCT...)."
)
# The parameter that carries each kind of value the lower layers may refuse (errors.InvalidValue).
PARAMETER_FOR = {"place": "near", "search": "text"}
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Dimension = Literal[tuple(DIMENSIONS)]  # status_report's ``by``: phase, study-type, sponsor-class, ...
RecordPart = Literal[tuple([*RECORD_SECTIONS, *(m for modules in RECORD_SECTIONS.values() for m in modules)])]

TopicName = Annotated[str, Field(description="A topic's name, as list_topics gives it.")]
AsOf = Annotated[str | None, Field(description="Report the topic as it stood after its last complete pull at or "
                                               "before this date (YYYY-MM-DD) or UTC time (YYYY-MM-DDTHH:MM).")]
Cursor = Annotated[str | None, Field(description="The next_cursor of the previous page; leave it out for the "
                                                 "first page.")]


def _search_note(topic: str, text: str | None) -> str:
    """What a search covered, in words an assistant can pass on."""
    matched = (", and matched against trialsync's own full-text index of their titles, acronym, summary, "
               "conditions, interventions and keywords" if text else "")
    return (f"A search of the local mirror only: the studies topic {topic!r} held at its last complete pull, "
            f"filtered here{matched}. It is not ClinicalTrials.gov's search: it finds no study outside the topic, "
            "and the website may answer the same question differently.")


class MirrorServer(MCPServer):
    """The SDK's high-level server, with the failures a user can act on (trialsync's own, SQLite's, arguments
    that do not fit the schema) told in one line: as a tool error, a resource error (not found, for a topic or
    study that is not there) or a prompt's error. Anything else stays the SDK's: a crash, logged on stderr."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        """Call a tool; a failure the user can act on is a tool error of one line."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            reason = _reason(exc)
            if reason is None:
                raise
            raise ToolError(reason) from None

    async def read_resource(self, uri, context=None):
        """Read a resource; a failure the user can act on is a resource error of one line."""
        try:
            return await super().read_resource(uri, context)
        except ResourceError as exc:
            reason = _reason(exc)
            if reason is None:
                raise
            raise (ResourceNotFoundError if _cause(exc, NotFound) else ResourceError)(reason) from None

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None, context=None):
        """Fill in a prompt; a failure the user can act on is an error of one line (invalid arguments)."""
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:
            reason = _reason(exc)
            if reason is None:
                raise
            raise MCPError(INVALID_PARAMS, reason) from None


def _cause(error: BaseException, kinds) -> BaseException | None:
    """The first exception of ``kinds`` in the chain of causes that ends in ``error`` (the SDK wraps each failure
    of a tool, resource or prompt in its own)."""
    while error is not None and not isinstance(error, kinds):
        error = error.__cause__
    return error


def _reason(error: BaseException) -> str | None:
    """The one line saying why ``error`` happened, if a user can act on it; None for anything else."""
    cause = _cause(error, (ValidationError, TrialsyncError, sqlite3.Error))
    if isinstance(cause, ValidationError):
        return visible("; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in cause.errors(include_url=False)))
    if isinstance(cause, InvalidValue):
        return f"{PARAMETER_FOR.get(cause.what, cause.what)}: {visible(str(cause))}"
    if isinstance(cause, sqlite3.Error):
        return visible(str(store.describe_error(cause)))
    return visible(str(cause)) if cause is not None else None


@contextmanager
def _reading(db: Path) -> Iterator[sqlite3.Connection]:
    """The database at ``db``, read in one transaction (each answer from one state of it), changing nothing."""
    conn = store.open_unchanged(db)
    try:
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


def _page_cursor(offset: int, question: dict, mark: str) -> str:
    """The opaque cursor of the page starting at ``offset`` of the answer to ``question``."""
    token = orjson.dumps({"offset": offset, "question": _digest(question), "mark": mark})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _page_start(cursor: str | None, question: dict, mark: str) -> int:
    """Where the page ``cursor`` names starts (0 without one); UsageError for a cursor of another question, or
    one given before the mirror changed (an offset into the new state would repeat or miss studies)."""
    if cursor is None:
        return 0
    try:
        token = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, asked, mark_then = token["offset"], token["question"], token["mark"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise UsageError("cursor: not a cursor this server gave; leave it out to start from the first page") from None
    if not isinstance(offset, int) or offset < 0 or asked != _digest(question):
        raise UsageError("cursor: it belongs to another question; ask with the same arguments as the page that gave "
                         "it, or leave it out to start from the first page")
    if mark_then != mark:
        raise UsageError("cursor: the mirror changed since the first page (a pull or import wrote to it); leave the "
                         "cursor out to start again from the first page")
    return offset


def _digest(question: dict) -> str:
    return hashlib.sha256(orjson.dumps(question, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _next_cursor(offset: int, shown: int, total: int, question: dict, mark: str) -> str | None:
    return _page_cursor(offset + shown, question, mark) if offset + shown < total else None


def _freshness(conn: sqlite3.Connection, topics: list[str]) -> list[dict]:
    return [freshness(conn, name) for name in topics]


def build_server(db: Path) -> MirrorServer:
    """The MCP server answering from the trialsync database at ``db`` (which need not exist yet: each call opens
    it, and says in one line when it is missing)."""
    server = MirrorServer("trialsync", title="trialsync: a local mirror of ClinicalTrials.gov studies",
                          instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    @server.tool(annotations=READ_ONLY)
    def list_topics() -> dict[str, Any]:
        """List the topics this mirror follows: each topic's `name`, how many `studies` it holds, its `last_pull`
        (the last complete pull or import) and the ClinicalTrials.gov `search` that defines it, as `trialsync topics
        list --format json` gives them. Call this first: the other tools take one of these names as `topic`.
        `default_topic` is the topic search_studies uses when none is named (null when several are stored)."""
        with _reading(db) as conn:
            rows = reports.topic_rows(conn)
            try:
                default = store.default_topic_name(conn)
            except UsageError:
                default = None
            return {"topics": rows, "default_topic": default, "freshness": _freshness(conn, [r["name"] for r in rows])}

    @server.tool(annotations=READ_ONLY)
    def status_report(topic: TopicName, by: Annotated[Dimension | None, Field(
            description="Count by status and this too: phase, study-type, sponsor-class, sponsor (the lead "
                        "sponsor), start-year, country, condition, or results (posted, under review, delayed by "
                        "certification, due, not yet due, not applicable).")] = None,
            as_of: AsOf = None) -> dict[str, Any]:
        """Count a topic's studies by overall status (Recruiting, Completed, ...), as `trialsync status-report
        --format json` does: `total`, each status's `count` with its website `label`, the counts at the previous
        complete pull and how many studies left the topic since. With `by`: the studies counted by status and one
        more dimension instead, a row per value (`value` is the registry's own: PHASE2, INDUSTRY, 2019, United
        States; a study with several phases, countries or conditions counts in each). With `as_of`: the topic as
        it stood then. The counts are of the local mirror; `freshness` says how recent it is."""
        moment = read_moment(as_of, "as_of") if as_of is not None else None
        with _reading(db) as conn:
            name = store.get_topic(conn, topic).name
            if by is not None:
                answer = breakdown(conn, name, by, as_of=moment)
            else:
                answer = status_report_data(reports.status_report(conn, name, as_of=moment))
            return {**answer, "freshness": _freshness(conn, [name])}

    @server.tool(annotations=READ_ONLY)
    def search_studies(
        topic: Annotated[str | None, Field(description="The topic to search in; default: list_topics' "
                                                       "default_topic.")] = None,
        status: Annotated[list[str] | None, Field(
            description="Keep studies with one of these overall statuses, written as the registry "
                        "(ACTIVE_NOT_RECRUITING) or its website (Active, not recruiting) does, any case.")] = None,
        phase: Annotated[list[str] | None, Field(
            description="Keep studies in one of these phases: 1, 2, 'phase 3', 'early 1', NA.")] = None,
        near: Annotated[str | None, Field(
            description="Measure each study's distance to its nearest site from this place: a city as people write "
                        "it ('Chicago, IL', 'Paris, France'), a US ZIP code or 'LAT,LON'. Sorts by distance.")] = None,
        within_km: Annotated[float | None, Field(gt=0, allow_inf_nan=False, description=(
            "With near: keep studies with a site within this many km."))] = None,
        age: Annotated[float | None, Field(ge=0, le=150, allow_inf_nan=False, description=(
            "Keep studies that take participants of this age, in years."))] = None,
        text: Annotated[str | None, Field(
            description="Words that must appear in the title, acronym, summary, conditions, interventions or "
                        "keywords (\"a phrase\", prefix*, OR, NOT). Sorts by relevance.")] = None,
        results_due: Annotated[bool, Field(
            description="Keep only studies that owe results now overdue, by trialsync's reading of US law (FDAAA "
                        "801; not a legal determination), most overdue first, each with results_due_date, "
                        "days_overdue and the registry's own fdaaa801_violation flag.")] = False,
        limit: Annotated[int, Field(ge=1, le=100, description="Studies on this page.")] = 20,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        """Find a topic's studies in the local mirror: filtered by overall status, phase, distance from a place,
        a participant's age and words, newest update first (by distance with `near`, by relevance with `text`).
        Each study is as `trialsync list --format json` gives it, with its ClinicalTrials.gov page (`url`); with
        `near`, `distance_km` and its `nearest_site` that counts (an open one, when every status asked for is
        open). One page of at most `limit`; `total` counts every match. For the next page, call again with the
        same arguments and `cursor` set to `next_cursor`, until it is null. This searches only what the topic
        held at its last complete pull, in trialsync's own index: it is not the ClinicalTrials.gov search (see
        `note`)."""
        if within_km is not None and near is None:
            raise UsageError("within_km needs near: the place to measure from")
        if text is not None and not text.strip():
            raise UsageError("text needs words to look for")
        statuses = read_values(status, read_status, "status")
        query = StudyQuery(statuses=statuses, phases=read_values(phase, read_phase, "phase"), within_km=within_km,
                           age=age, search=text, results_due=results_due, limit=limit,
                           site_statuses=sites_that_count(statuses))
        with _reading(db) as conn:
            name = store.get_topic(conn, topic).name if topic is not None else store.default_topic_name(conn)
            if near is not None:
                query.near = resolve_place(conn, near)
            question = {"tool": "search_studies", "topic": name, "statuses": statuses, "phases": query.phases,
                        "near": near, "within_km": within_km, "age": age, "text": text, "results_due": results_due}
            mark = write_mark(conn)
            query.offset = _page_start(cursor, question, mark)
            total = count_studies(conn, name, query)
            rows = study_list_data(list_studies(conn, name, query))
            return {"topic": name, "note": _search_note(name, text), "total": total, "studies": rows,
                    "next_cursor": _next_cursor(query.offset, len(rows), total, question, mark),
                    "freshness": _freshness(conn, [name])}

    @server.tool(annotations=READ_ONLY)
    def get_study(
        nct_id: Annotated[str, Field(description="The study's NCT id, e.g. NCT04042844.")],
        sections: Annotated[list[RecordPart] | None, Field(
            description="Only these parts of the record: sections (protocolSection, resultsSection, ...) or "
                        "modules (statusModule, eligibilityModule, contactsLocationsModule, ...); default: all.")]
        = None,
    ) -> dict[str, Any]:
        """One stored study by NCT id: `record`, exactly as ClinicalTrials.gov sent it (`trialsync show --format
        json`), whole or only the `sections` asked for (those the record lacks are listed in `absent_sections`);
        `summary`, the record's facts flattened as `trialsync export --format json` gives each study (status,
        phases, dates, enrollment, eligibility, sponsors, conditions, interventions, countries, `url`); the
        `topics` that hold it (or held it, with when it left) and how fresh each is. Only studies a topic pulled
        or an import stored are here."""
        wanted = read_nct_id(nct_id)
        with _reading(db) as conn:
            return _study_answer(conn, wanted, sections)

    @server.tool(annotations=READ_ONLY)
    def study_results(
        nct_id: Annotated[str, Field(description="The study's NCT id, e.g. NCT04042844.")],
    ) -> dict[str, Any]:
        """What a stored study's posted results say, as `trialsync show NCT_ID --results --format json` gives them
        (AACT's tables, arranged): `groups`; `participant_flow` (milestones per period and group: STARTED,
        COMPLETED, NOT COMPLETED; `drop_withdrawals` with the reasons); `baseline` (counts and measures per
        group); `outcomes` (each outcome measure: type, title, time frame, units, its `groups`, `counts` analysed,
        `measurements` per group and category, `analyses` with p-values and methods); `adverse_events` (`totals`
        per group: serious, other, deaths; `events` per term and group); `limitations_and_caveats`;
        `point_of_contact`. `posted` is false when the study has no results; `results_category` says whether it
        owes them (posted, under review, delayed by certification, due, not yet due, not applicable, by
        trialsync's reading of FDAAA 801, not a legal determination) with `results_due_date` and
        `days_overdue`."""
        wanted = read_nct_id(nct_id)
        with _reading(db) as conn:
            answer = study_results_report(conn, wanted)
            topics = [t["topic"] for t in study_topics(conn, wanted) if t["present"]]
            return {**answer, "freshness": _freshness(conn, topics)}

    @server.tool(annotations=READ_ONLY)
    def changes(
        topic: Annotated[str | None, Field(description="Only this topic's studies and membership; default: every "
                                                       "topic.")] = None,
        since: Annotated[str | None, Field(description="Only changes observed on or after this date "
                                                       "(YYYY-MM-DD).")] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="Changes on this page.")] = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        """What changed in the mirror's studies, newest pull first, as `trialsync changes --format json` lists it:
        a `field` of a study (overall_status, dates, why_stopped, ...) from `old` to `new` (the registry's own
        values), a site added, removed or changing status, a publication added, a study joining or leaving a topic
        (`field` membership), each with when a pull observed it (`observed_at`) and the study's title. Each study's
        ClinicalTrials.gov page is in `study_urls`. One page of at most `limit`; `total` counts them all. For the
        next page, call again with the same arguments and `cursor` set to `next_cursor`, until it is null."""
        if since is not None:
            read_date(since, "since")
        with _reading(db) as conn:
            name = store.get_topic(conn, topic).name if topic is not None else None
            question = {"tool": "changes", "topic": name, "since": since}
            mark = write_mark(conn)
            offset = _page_start(cursor, question, mark)
            total = count_changes(conn, name, since=since)
            page = changes_data(reports.list_changes(conn, name, since=since, limit=limit, offset=offset))
            named = [name] if name is not None else [t.name for t in store.list_topics(conn)]
            return {"topic": name, "total": total, "changes": page,
                    "study_urls": {c["nct_id"]: study_url(c["nct_id"]) for c in page if c["nct_id"]},
                    "next_cursor": _next_cursor(offset, len(page), total, question, mark),
                    "freshness": _freshness(conn, named)}

    @server.tool(annotations=READ_ONLY)
    def history(topic: TopicName) -> dict[str, Any]:
        """A topic's counts by overall status at each of its complete pulls and imports, oldest first, as
        `trialsync history --format json` gives them (`pulls`: when each finished, pull or import, the total and
        the count of each status): how the topic moved over time."""
        with _reading(db) as conn:
            name = store.get_topic(conn, topic).name
            return {**history_data(name, reports.history(conn, name)), "freshness": _freshness(conn, [name])}

    @server.resource("trialsync://study/{nct_id}", mime_type="application/json")
    def study_resource(nct_id: str) -> str:
        """One stored study: its record as ClinicalTrials.gov sent it, its summary, its topics and their freshness
        (what get_study answers)."""
        wanted = read_nct_id(nct_id)
        with _reading(db) as conn:
            return to_json(_study_answer(conn, wanted, None))

    @server.resource("trialsync://topic/{name}", mime_type="application/json")
    def topic_resource(name: str) -> str:
        """One topic: its registry search (and the same search on the ClinicalTrials.gov website), its counts by
        status (what status_report answers) and its freshness."""
        with _reading(db) as conn:
            found = store.get_topic(conn, name)
            report = status_report_data(reports.status_report(conn, found.name))
            search = found.search_params()
            return to_json({**report, "search": search, "website_search": website_search_url(found) if search else None,
                            "freshness": _freshness(conn, [found.name])})

    @server.prompt(title="What changed in a topic since a date")
    def changes_since(topic: str, since: str) -> str:
        """Summarise what changed in a topic's studies since a date (YYYY-MM-DD), from the local mirror."""
        read_date(since, "since")
        with _reading(db) as conn:
            name = store.get_topic(conn, topic).name
        return (
            f"Summarise what changed in the ClinicalTrials.gov studies of the trialsync topic {name!r} since {since}.\n"
            f"1. Call the tool `changes` with topic={name!r} and since={since!r}; while its answer has a next_cursor, "
            "call it again with the same arguments and that cursor, until you have every change.\n"
            f"2. Call `status_report` with topic={name!r} for the counts by status now.\n"
            "Then write a short summary for a person: the studies whose overall status changed (old -> new, with "
            "why_stopped when there is one), those that joined or left the topic, and other notable changes (dates "
            "turning actual, sites opening or closing, publications). Name each study by its NCT id, its title and "
            "its page (https://clinicaltrials.gov/study/NCT...). Say how fresh the data is (the `freshness` of the "
            "answers: the last complete pull and the registry's dataTimestamp) and that it comes from trialsync's "
            "local mirror, which may lag ClinicalTrials.gov. If nothing changed, say so plainly."
        )

    return server


def _study_answer(conn: sqlite3.Connection, nct_id: str, sections: list[str] | None) -> dict:
    """get_study's answer for a well-formed NCT id; NotFound when it is not stored."""
    record = jsontext.loads(reports.study_raw(conn, nct_id))
    parts, absent = record_parts(record, sections) if sections else (record, [])
    topics = study_topics(conn, nct_id)
    return {"nct_id": nct_id, "url": study_url(nct_id), "record": parts, "absent_sections": absent,
            "summary": study_summary(conn, nct_id), "topics": topics,
            "freshness": _freshness(conn, [t["topic"] for t in topics if t["present"]])}


def serve(db: Path) -> None:
    """Serve the database at ``db`` over stdio until the client closes standard input."""
    build_server(db).run("stdio")
