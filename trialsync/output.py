"""Render plain data for its reader: a rich table on a terminal, plain text, JSON, CSV or markdown.

Every function returns a list of "blocks": strings, or rich renderables (format ``table`` only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from .statuses import status_label, status_sort_key

FORMATS = ("table", "text", "json", "csv", "markdown")
DIGEST_LINES = 50  # per group in a pull's digest, so that a cron mail stays readable

FIELD_NAMES = {
    "overall_status": "status",
    "last_known_status": "last known status",
    "why_stopped": "why stopped",
    "enrollment_count": "enrollment",
    "start_date": "start date",
    "primary_completion_date": "primary completion date",
    "completion_date": "completion date",
    "phases": "phases",
    "results_first_posted": "results first posted",
    "location_count": "sites",
    "membership": "topic membership",
}
_STATUS_FIELDS = {"overall_status", "last_known_status"}
_MEMBERSHIP_WORDS = {"added": "new in topic", "left": "left the topic", "present": "back in the topic"}


@dataclass(frozen=True)
class Column:
    """One column of tabular output: the row key, its header, and alignment."""

    key: str
    header: str
    numeric: bool = False
    show: Callable[[object], str] | None = None

    def cell(self, row: dict) -> str:
        """The column's value in ``row`` as display text."""
        value = row.get(self.key)
        if self.show is not None:
            return self.show(value)
        return "" if value is None else str(value)


def to_json(data) -> str:
    """``data`` as indented JSON text."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def rows_as(rows: Sequence[dict], columns: Sequence[Column], fmt: str, title: str | None = None) -> list:
    """Render ``rows`` in ``fmt`` (table, text, csv, markdown; json gives the rows themselves)."""
    if fmt == "json":
        return [to_json(list(rows))]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.key for c in columns])
        writer.writerows([[row.get(c.key) for c in columns] for row in rows])
        return [buffer.getvalue().rstrip("\n")]
    cells = [[c.cell(row) for c in columns] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(c.header for c in columns) + " |",
                 "| " + " | ".join("---:" if c.numeric else "---" for c in columns) + " |"]
        lines += ["| " + " | ".join(v.replace("|", "\\|") for v in line) + " |" for line in cells]
        return [(f"**{title}**\n\n" if title else "") + "\n".join(lines)]
    if fmt == "table":
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for c in columns:
            table.add_column(c.header, justify="right" if c.numeric else "left", overflow="fold")
        for line in cells:
            table.add_row(*line)
        return [table]
    table_text = plain_table([c.header for c in columns], cells, [c.numeric for c in columns])
    return [f"{title}\n{table_text}" if title else table_text]


def plain_table(headers: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    """Columns aligned with spaces, numbers to the right; no colour, no box drawing."""
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(headers)]

    def fmt_line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([fmt_line(headers)] + [fmt_line(line) for line in cells])


# -- status report ----------------------------------------------------------------------------------


def _percent(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%" if total else "0.0%"


def _signed(delta: int | None) -> str:
    if delta is None:
        return ""
    return f"{delta:+d}" if delta else "0"


def status_rows(report: dict) -> list[dict]:
    """One row per status: status, label, count, percent, previous count and change (when known)."""
    previous = report.get("previous")
    before = {e["status"]: e["count"] for e in previous["statuses"]} if previous else {}
    statuses = [e["status"] for e in report["statuses"]]
    statuses += [s for s in before if s not in statuses]  # a status that emptied still shows its -N

    counts = {e["status"]: e["count"] for e in report["statuses"]}
    rows = []
    for status in sorted(statuses, key=status_sort_key):
        count = counts.get(status, 0)
        rows.append({
            "status": status, "label": status_label(status), "count": count,
            "percent": _percent(count, report["total"]),
            "previous_count": before.get(status, 0) if previous else None,
            "change": _signed(count - before.get(status, 0)) if previous else "",
        })
    return rows


def render_status_report(report: dict, summary: str, fmt: str) -> list:
    """The status report in ``fmt``: summary line, counts with share and change, unknown breakdown."""
    if fmt == "json":
        data = {key: report[key] for key in ("topic", "total", "as_of", "statuses", "unknown_by_last_known")}
        data.update({key: report[key] for key in ("data_timestamp", "left_since_previous", "previous")})
        return [to_json(data)]
    rows = status_rows(report)
    has_previous = report.get("previous") is not None
    columns = [Column("label", "Status"), Column("count", "Studies", numeric=True),
               Column("percent", "Share", numeric=True)]
    if has_previous:
        columns.append(Column("change", "Change", numeric=True))
    if fmt == "csv":
        csv_columns = [Column("status", ""), Column("label", ""), Column("count", ""), Column("percent", ""),
                       Column("previous_count", "")]
        return rows_as(rows, csv_columns, "csv")
    total_row = {"label": "Total", "count": report["total"], "percent": _percent(report["total"], report["total"])
                 if report["total"] else "", "change": ""}
    if has_previous:
        before_total = sum(e["count"] for e in report["previous"]["statuses"])
        total_row["change"] = _signed(report["total"] - before_total)
    title = f"{report['topic']}: {summary}"
    blocks = rows_as(rows + [total_row], columns, fmt, title=title)
    blocks.append(_as_of_line(report))
    if report["unknown_by_last_known"]:
        unknown_rows = [{"label": status_label(s), "count": n} for s, n in report["unknown_by_last_known"].items()]
        blocks += rows_as(unknown_rows, [Column("label", "Last known status"), Column("count", "Studies", numeric=True)],
                          fmt, title="Unknown status, by last known status")
    if has_previous:
        left = report["left_since_previous"]
        blocks.append(f"{left} {'study' if left == 1 else 'studies'} left the topic since the previous pull "
                      f"({report['previous']['as_of']}).")
    return blocks


def _as_of_line(report: dict) -> str:
    if not report["as_of"]:
        return "Not pulled yet: run `trialsync pull` (or `trialsync import FILE`)."
    api = f"; API data of {report['data_timestamp']}" if report["data_timestamp"] else ""
    return f"Data as of {report['as_of']} (last successful pull or import{api})."


# -- changes, pulls, digest -------------------------------------------------------------------------


def show_value(field: str, value) -> str:
    """A change's value for a person: status labels, 'none' for no value."""
    if value is None:
        return "none"
    if field in _STATUS_FIELDS:
        return status_label(value)
    return str(value)


def describe_change(change: dict, name_topic: bool = False) -> str:
    """One change in words: 'NCT04042844 status: Recruiting -> Completed'; with ``name_topic``, a membership
    event names its topic ('left topic sci' rather than 'left the topic')."""
    field = change["field"]
    if field == "membership":
        what = _MEMBERSHIP_WORDS.get(change["new"], change["new"])
        if name_topic and change.get("topic"):
            what = what.replace("the topic", f"topic {change['topic']}")
            if change["new"] == "added":
                what = f"new in topic {change['topic']}"
        return f"{change['nct_id']} {what}"
    if field == "warning":
        return f"{change['nct_id']} warning: {change['new']}"
    return (f"{change['nct_id']} {FIELD_NAMES.get(field, field)}: "
            f"{show_value(field, change['old'])} -> {show_value(field, change['new'])}")


CHANGE_KEYS = ("nct_id", "field", "old", "new", "observed_at", "topic", "reason", "brief_title")


def render_changes(changes: Sequence[dict], fmt: str) -> list:
    """Changes newest first; JSON and CSV keep the API's own values."""
    if fmt in ("json", "csv"):
        rows = [{k: c[k] for k in CHANGE_KEYS} for c in changes]
        return rows_as(rows, [Column(k, k) for k in CHANGE_KEYS], fmt)
    if not changes:
        return ["No changes recorded."]
    rows = [{**c, "change": describe_change(c, name_topic=True)[len(c["nct_id"]) + 1:]} for c in changes]
    columns = [Column("observed_at", "Observed"), Column("nct_id", "NCT ID"),
               Column("change", "Change"), Column("brief_title", "Title", show=lambda t: _short(t, 60))]
    return rows_as(rows, columns, fmt)


def _short(text, width: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(pull: dict) -> str:
    from datetime import datetime

    if not pull.get("finished_at"):
        return ""
    parse = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    seconds = int((parse(pull["finished_at"]) - parse(pull["started_at"])).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def render_pulls(pulls: Sequence[dict], fmt: str) -> list:
    """Recent pulls with outcome, counts and duration."""
    rows = [{**p, "duration": _duration(p)} for p in pulls]
    if fmt in ("json", "csv"):
        keys = list(pulls[0]) + ["duration"] if pulls else ["id"]
        return rows_as(rows, [Column(k, k) for k in keys], fmt)
    if not pulls:
        return ["No pulls recorded yet."]
    columns = [Column("id", "#", numeric=True), Column("topic", "Topic"), Column("started_at", "Started"),
               Column("duration", "Took", numeric=True), Column("kind", "Kind"), Column("mode", "Mode"),
               Column("outcome", "Outcome"), Column("requests", "Requests", numeric=True),
               Column("received", "Received", numeric=True), Column("new", "New", numeric=True),
               Column("updated", "Updated", numeric=True), Column("left_topic", "Left", numeric=True),
               Column("error", "Error", show=lambda e: _short(e, 60))]
    return rows_as(rows, columns, fmt)


def pull_summary(result) -> str:
    """One line about a finished pull, for logs and non-terminal output."""
    if result.outcome == "unchanged":
        return (f"{result.topic}: API data unchanged since the last pull ({result.data_timestamp}); "
                f"nothing fetched ({result.requests} request).")
    counts = result.counts
    mode = f"{result.mode} pull" + (" under the topic's new search" if result.search_changed else "") + (
        " (first pull)" if result.first_fill else "")
    rejoined = f", {counts.rejoined} back" if counts.rejoined else ""
    refetched = f", {result.refetched} fetched by id" if result.refetched else ""
    return (f"{result.topic}: {mode}, {counts.received} studies received "
            f"({counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged{rejoined}{refetched}), "
            f"{result.left} left the topic; {result.requests} requests.")


def import_summary(result, source: str) -> str:
    """One line about a finished import."""
    counts = result.counts
    older = f", {counts.older} older than stored (skipped)" if counts.older else ""
    return (f"{result.topic}: imported {counts.received} studies from {source} "
            f"({counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged{older})")


def render_digest(topic: str, changes: Sequence[dict]) -> str:
    """The changes a topic has not reported yet, grouped for a person reading the cron mail; '' when none.

    Membership events caused by a changed search are summed up in one line, not listed.
    """
    if not changes:
        return ""
    groups: dict[str, list[str]] = {"New studies": [], "Status changes": [], "Left the topic": [],
                                    "Back in the topic": [], "Other changes": [], "Warnings": []}
    search_joined = search_left = 0
    for change in changes:
        title = f" ({_short(change['brief_title'], 70)})" if change.get("brief_title") else ""
        field = change["field"]
        if field == "membership" and change.get("reason") == "search":
            search_joined += change["new"] in ("added", "present")
            search_left += change["new"] == "left"
            continue
        line = "  " + describe_change(change) + title
        if field == "membership":
            key = {"added": "New studies", "left": "Left the topic"}.get(change["new"], "Back in the topic")
            if change["new"] == "added":
                line = f"  {change['nct_id']}{title}"
        elif field == "warning":
            key = "Warnings"
        elif field in _STATUS_FIELDS or field == "why_stopped":
            key = "Status changes"
        else:
            key = "Other changes"
        groups[key].append(line)
    count = len(changes)
    lines = [f"trialsync: {count} change{'s' if count != 1 else ''} in {topic}"]
    if search_joined or search_left:
        lines += ["", f"The topic's search changed: {search_joined} "
                      f"{'study' if search_joined == 1 else 'studies'} joined it and {search_left} left it."]
    since = min(change["observed_at"] for change in changes)[:10]
    for heading, items in groups.items():
        if items:
            lines += ["", f"{heading}:"] + items[:DIGEST_LINES]
            if len(items) > DIGEST_LINES:
                lines.append(f"  ... and {len(items) - DIGEST_LINES} more: "
                             f"`trialsync changes {topic} --since {since}` lists them all")
    return "\n".join(lines)


def render_verification(check, fmt: str) -> list:
    """How a topic in the store compares with the API: counts by status side by side, then each difference."""
    if fmt == "json":
        return [to_json({
            "topic": check.topic, "agrees": check.agrees, "api_total": check.api_total,
            "store_total": check.store_total,
            "statuses": [{"status": s, "label": status_label(s), "api": a, "store": b} for s, a, b in check.by_status],
            "only_in_api": check.only_in_api, "only_in_store": check.only_in_store,
            "status_differs": [{"nct_id": i, "api": a, "store": b} for i, a, b in check.status_differs],
        })]
    rows = [{"label": status_label(s), "api": a, "store": b, "difference": _signed(b - a) if a != b else ""}
            for s, a, b in check.by_status]
    rows.append({"label": "Total", "api": check.api_total, "store": check.store_total,
                 "difference": _signed(check.store_total - check.api_total) if check.api_total != check.store_total else ""})
    verdict = ("the store agrees with the API" if check.agrees else "the store differs from the API")
    blocks = rows_as(rows, [Column("label", "Status"), Column("api", "API", numeric=True),
                            Column("store", "Store", numeric=True), Column("difference", "Difference", numeric=True)],
                     fmt, title=f"{check.topic}: {verdict}")
    lines = [f"{i} is in the API's listing, not in the store" for i in check.only_in_api]
    lines += [f"{i} is in the store, not in the API's listing" for i in check.only_in_store]
    lines += [f"{i}: the API says {status_label(a)}, the store says {status_label(b)}" for i, a, b in check.status_differs]
    if lines:
        blocks.append("\n".join(lines))
    if not check.agrees:
        blocks.append(f"`trialsync pull {check.topic}` brings the store up to date.")
    return blocks


def render_study(facts: dict, fmt: str) -> list:
    """The key facts of one study, for a person."""
    pairs = [
        ("NCT ID", facts["nct_id"]), ("Title", facts["brief_title"]), ("Official title", facts["official_title"]),
        ("Acronym", facts["acronym"]),
        ("Status", status_label(facts["overall_status"]) + (
            f" (last known: {status_label(facts['last_known_status'])})" if facts["last_known_status"] else "")),
        ("Why stopped", facts["why_stopped"]), ("Study type", facts["study_type"]), ("Phases", facts["phases"]),
        ("Enrollment", f"{facts['enrollment_count']} ({facts['enrollment_type'] or 'type not given'})"
         if facts["enrollment_count"] is not None else None),
        ("Start", facts["start_date"]), ("Primary completion", facts["primary_completion_date"]),
        ("Completion", facts["completion_date"]), ("First posted", facts["first_posted"]),
        ("Last update posted", facts["last_update_posted"]), ("Results first posted", facts["results_first_posted"]),
        ("Lead sponsor", f"{facts['lead_sponsor']} ({facts['lead_sponsor_class']})" if facts["lead_sponsor"] else None),
        ("Collaborators", "; ".join(s["name"] for s in facts["sponsors"] if s["role"] == "collaborator")),
        ("Conditions", "; ".join(c["condition"] for c in facts["conditions"])),
        ("Interventions", "; ".join(f"{i['type']}: {i['name']}" for i in facts["interventions"])),
        ("Sites", _sites(facts)),
        ("Topics", ", ".join(t["topic"] + ("" if t["present"] else f" (left {t['left_at']})") for t in facts["topics"])),
        ("Web page", f"https://clinicaltrials.gov/study/{facts['nct_id']}"),
    ]
    rows = [{"field": k, "value": "" if v is None else str(v)} for k, v in pairs if v not in (None, "")]
    if fmt == "table":
        from rich.table import Table

        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for row in rows:
            table.add_row(row["field"], row["value"])
        return [table]
    width = max(len(r["field"]) for r in rows)
    return ["\n".join(f"{r['field'] + ':':<{width + 1}} {r['value']}" for r in rows)]


def _sites(facts: dict) -> str:
    locations = facts["locations"]
    if not locations:
        return ""
    countries = sorted({loc["country"] for loc in locations if loc["country"]})
    shown = ", ".join(countries[:8]) + (f" and {len(countries) - 8} more" if len(countries) > 8 else "")
    return f"{len(locations)} ({shown})" if shown else str(len(locations))
