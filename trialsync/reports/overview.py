"""Everything a topic's HTML report shows, gathered into one plain dict: its counts by status, those counts at
each complete pull, its recent changes, its breakdowns and its studies."""

from __future__ import annotations

import sqlite3

from .breakdowns import DIMENSIONS, breakdown
from .changes import list_changes
from .status import history, status_report, status_summary
from .studies import StudyQuery, list_studies

RECENT_PULLS = 10  # the changes of the topic's last this many pulls and imports ...
RECENT_CHANGES = 100  # ... and at most this many of them, newest first


def topic_overview(conn: sqlite3.Connection, topic: str) -> dict:
    """The topic as its report shows it: ``{"topic", "status", "summary", "history", "changes",
    "changes_total", "breakdowns", "studies"}``.

    ``status`` is ``status_report`` (what ``status-report --format json`` prints) and ``summary`` its
    sentence; ``history`` is ``history``; ``changes`` the newest RECENT_CHANGES changes of the last
    RECENT_PULLS pulls and imports (``changes_total`` counts them all); ``breakdowns`` maps each dimension of
    ``status-report --by`` to its ``breakdown``; ``studies`` lists the present studies by NCT id, as
    ``list_studies`` gives them (each with its ``url``).
    """
    report = status_report(conn, topic)
    changes = list_changes(conn, topic, pulls=RECENT_PULLS)
    return {
        "topic": topic,
        "status": report,
        "summary": status_summary(report),
        "history": history(conn, topic),
        "changes": changes[:RECENT_CHANGES],
        "changes_total": len(changes),
        "breakdowns": {by: breakdown(conn, topic, by) for by in DIMENSIONS},
        "studies": list_studies(conn, topic, StudyQuery(sort="nct")),
    }
