"""The change log, the pulls log, a pull's summary line and a topic's digest."""

from __future__ import annotations

from collections.abc import Sequence

from .tables import Column, rows_as, shorten, terminal_width
from .visible import visible
from ..change_kinds import (
    ADDED, JOINING, LEFT, MEMBERSHIP, REFERENCE_ADDED, RESULTS_DUE, RESULTS_POSTED, SEARCH_CHANGED, SITE_STATUS,
    STATUS_FIELDS, WARNING,
)
from .words import describe_change, plural

DIGEST_LINES = 50  # per group in a digest, so that a cron mail stays readable
CHANGE_KEYS = ("nct_id", "field", "old", "new", "item", "observed_at", "topic", "reason", "brief_title")


def changes_data(changes: Sequence[dict]) -> list[dict]:
    """Changes as ``changes --format json`` gives them: each with ``CHANGE_KEYS``, the API's own values."""
    return [{k: c[k] for k in CHANGE_KEYS} for c in changes]


def render_changes(changes: Sequence[dict], fmt: str) -> list:
    """Changes newest first; JSON, JSON lines and CSV keep the API's own values."""
    if fmt in ("json", "csv", "nl"):
        return rows_as(changes_data(changes), [Column(k, k) for k in CHANGE_KEYS], fmt)
    if not changes:
        return ["No changes recorded."]
    rows = [{**c, "change": describe_change(c, name_topic=True)[len(c["nct_id"]) + 1:]} for c in changes]
    columns = [Column("observed_at", "Observed", show=lambda t: (t or "")[:10], drop=2), Column("nct_id", "NCT ID"),
               Column("change", "Change", flex=True, min_width=24),
               Column("brief_title", "Title", flex=True, min_width=16, drop=1)]
    return rows_as(rows, columns, fmt)


def _duration(pull: dict) -> str:
    """How long a pull ran; blank while it runs, and for a killed one: its ``finished_at`` is when the next run
    found it dead (the next night, say), not when it died."""
    from datetime import datetime

    if not pull.get("finished_at") or pull.get("outcome") == "killed":
        return ""
    parse = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    seconds = int((parse(pull["finished_at"]) - parse(pull["started_at"])).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def render_pulls(pulls: Sequence[dict], fmt: str) -> list:
    """Recent pulls with outcome, counts and duration."""
    rows = [{**p, "duration": _duration(p)} for p in pulls]
    if fmt in ("json", "csv", "nl"):
        keys = list(pulls[0]) + ["duration"] if pulls else ["id"]
        return rows_as(rows, [Column(k, k) for k in keys], fmt)
    if not pulls:
        return ["No pulls recorded yet."]
    columns = [Column("id", "#", numeric=True), Column("topic", "Topic"),
               Column("started_at", "Started", show=lambda t: (t or "").replace("T", " ").rstrip("Z")[:16]),
               Column("duration", "Took", numeric=True, drop=4), Column("mode", "Mode", drop=5),
               # how membership was settled: kept on an 80-column terminal (New goes before it)
               Column("reconciled", "Members", show=lambda way: _RECONCILED.get(way, way or ""), drop=7),
               Column("outcome", "Outcome"), Column("requests", "Requests", numeric=True, drop=6),
               Column("received", "Received", numeric=True), Column("new", "New", numeric=True, drop=7),
               Column("updated", "Updated", numeric=True, drop=8), Column("left_topic", "Left", numeric=True, drop=9),
               Column("error", "Error", flex=True, min_width=12, drop=10)]
    return rows_as(rows, columns, fmt)


# How a pull settled its topic's membership (pulls.reconciled), as the pulls table says it.
_RECONCILED = {"full": "full", "listing": "listing", "changed": "changes"}


def pull_summary(result) -> str:
    """One line about a finished pull, for logs and non-terminal output."""
    if result.outcome == "unchanged":
        return (f"{result.topic}: API data unchanged since the last pull ({result.data_timestamp}); "
                f"nothing fetched ({plural(result.requests, 'request')}).")
    counts = result.counts
    mode = f"{result.mode} pull" + (" under the topic's new search" if result.search_changed else "") + (
        " (first pull)" if result.first_fill else "")
    rejoined = f", {counts.rejoined} back" if counts.rejoined else ""
    refetched = f", {result.refetched} fetched by id" if result.refetched else ""
    refetched += f", {result.refreshed} fetched again (not fetched for a while)" if getattr(result, "refreshed", 0) else ""
    missing = getattr(result, "missing_ids", [])
    not_found = f"; {plural(len(missing), 'id')} not found on ClinicalTrials.gov: {', '.join(missing[:5])}" \
        if missing else ""
    return (f"{result.topic}: {mode}, {plural(counts.received, 'study', 'studies')} received "
            f"({counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged{rejoined}{refetched}), "
            f"{result.left} left the topic; {plural(result.requests, 'request')}{not_found}.")


def import_summary(result, source: str) -> str:
    """One line about a finished import."""
    counts = result.counts
    older = (f"; {counts.older} of them {'was' if counts.older == 1 else 'were'} older than the stored record, "
             "which was kept") if counts.older else ""
    return visible(f"{result.topic}: imported {plural(counts.received, 'study', 'studies')} from {source} "
                   f"({counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged{older})")


_GROUPS = ("New studies", "Status changes", "Left the topic", "Back in the topic", "Results", "Dates", "Sites",
           "Publications", "Other changes", "Warnings")


def names_in_words(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def render_digests(digests: Sequence[tuple[str, Sequence[dict]]]) -> str:
    """The digests of several topics in one run (``(topic, changes)`` each, in the run's order), each change
    once: a change to a study that several of them hold is printed once, in a part that names those topics
    (after the first one's own part). '' when there is nothing to say."""
    order = {topic: index for index, (topic, _) in enumerate(digests)}
    owners: dict[int, list[str]] = {}
    first: dict[int, dict] = {}
    for topic, changes in digests:
        for change in changes:
            owners.setdefault(change["id"], []).append(topic)
            first.setdefault(change["id"], change)
    parts: dict[tuple[str, ...], list[dict]] = {}
    for change_id, change in sorted(first.items()):
        parts.setdefault(tuple(sorted(owners[change_id], key=order.get)), []).append(change)
    texts = [render_digest(names[0], changes, names)
             for names, changes in sorted(parts.items(), key=lambda part: [order[name] for name in part[0]])]
    return "\n\n".join(text for text in texts if text)


def render_digest(topic: str, changes: Sequence[dict], topics: Sequence[str] | None = None) -> str:
    """The changes a topic has not reported yet, grouped for a person reading the cron mail; '' when none.
    ``topics``: the topics these changes are news to, when they are several (all hold the studies).

    Membership events caused by a changed search are summed up in one line, not listed.
    """
    if not changes:
        return ""
    topics = list(topics or [topic])
    groups: dict[str, list[str]] = {name: [] for name in _GROUPS}
    search_joined = search_left = 0
    width = terminal_width()
    for change in changes:
        field = change["field"]
        if field == MEMBERSHIP and change.get("reason") == SEARCH_CHANGED:
            search_joined += change["new"] in JOINING
            search_left += change["new"] == LEFT
            continue
        line = "  " + describe_change(change)
        if field == MEMBERSHIP:
            key = {ADDED: "New studies", LEFT: "Left the topic"}.get(change["new"], "Back in the topic")
            if change["new"] == ADDED:
                line = f"  {change['nct_id']}"
        elif field == WARNING:
            key = "Warnings"
        elif field in STATUS_FIELDS - {SITE_STATUS} or field == "why_stopped":
            key = "Status changes"
        elif field in (RESULTS_DUE, RESULTS_POSTED):
            key = "Results"
        elif field.endswith("_date") or field.endswith("_date_type"):
            key = "Dates"
        elif field.startswith("site_"):
            key = "Sites"
        elif field == REFERENCE_ADDED:
            key = "Publications"
        else:
            key = "Other changes"
        if change.get("brief_title"):  # beside the change when it fits the width, else on a line of its own
            title = visible(change["brief_title"])
            beside = f"{line} ({title})"
            line = beside if len(beside) <= width else f"{line}\n    {shorten(title, max(width - 4, 20))}"
        groups[key].append(line)
    count = len(changes)
    lines = [f"trialsync: {plural(count, 'change')} in {names_in_words(topics)}"]
    if search_joined or search_left:
        lines += ["", f"The topic's search changed: {plural(search_joined, 'study', 'studies')} joined it and "
                      f"{search_left} left it."]
    since = min(change["observed_at"] for change in changes)[:10]
    for heading, items in groups.items():
        if items:
            lines += ["", f"{heading}:"] + items[:DIGEST_LINES]
            if len(items) > DIGEST_LINES:
                lines.append(f"  ... and {len(items) - DIGEST_LINES} more: "
                             f"`trialsync changes {topic} --since {since}` lists them all")
    return "\n".join(lines)
