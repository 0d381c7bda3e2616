"""The ``pulls`` log: one row per pull or import, from start to outcome, with each complete pull's counts."""

from __future__ import annotations

import os
import sqlite3

from .. import dates
from ..defaults import COMPLETE_OUTCOMES
from ..statuses import NO_STATUS
from .db import transaction

# The studies a topic holds now, counted by status and last known status (reads only studies_by_status).
# Without statistics the planner would take the primary key and sort; the index is already in group order.
COUNT_BY_STATUS = f"""coalesce(overall_status, '{NO_STATUS}'), coalesce(last_known_status, ''), count(*)
    FROM studies INDEXED BY studies_by_status
    WHERE nct_id IN (SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1)
    GROUP BY overall_status, last_known_status"""


def start_pull(conn: sqlite3.Connection, topic: str, kind: str = "pull", mode: str | None = None,
               source: str | None = None) -> int:
    """Record the start of a pull (or import) and return its id."""
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO pulls (topic, kind, mode, started_at, outcome, pid, source) VALUES (?, ?, ?, ?, 'running', ?, ?)",
            [topic, kind, mode, dates.utc_now(), os.getpid(), source])
    return cursor.lastrowid


def update_pull(conn: sqlite3.Connection, pull_id: int, **values) -> None:
    """Set columns of a pull row (``mode``, ``data_timestamp``, ``total_count``...)."""
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        with transaction(conn):
            conn.execute(f"UPDATE pulls SET {assignments} WHERE id = ?", [*values.values(), pull_id])


def finish_pull(conn: sqlite3.Connection, pull_id: int, outcome: str, error: str | None = None, **values) -> None:
    """Record how a pull ended. A complete pull also snapshots its topic's status counts."""
    with transaction(conn):
        update_pull(conn, pull_id, outcome=outcome, error=error, finished_at=dates.utc_now(), **values)
        if outcome in COMPLETE_OUTCOMES:
            topic = conn.execute("SELECT topic FROM pulls WHERE id = ?", [pull_id]).fetchone()[0]
            conn.execute(f"INSERT INTO pull_status_counts (pull_id, overall_status, last_known_status, count) "
                         f"SELECT ?, {COUNT_BY_STATUS}", [pull_id, topic])


def record_failure(conn: sqlite3.Connection, pull_id: int, outcome: str, error: str, **values) -> bool:
    """Best effort: mark the pull ``failed`` or ``interrupted`` with its error. Returns whether that was written
    (a full disk can refuse even this; the row then stays ``running`` and the next start calls it ``killed``)."""
    try:
        finish_pull(conn, pull_id, outcome, error=error, **values)
    except sqlite3.Error:
        return False
    return True


def mark_abandoned_pulls(conn: sqlite3.Connection) -> int:
    """Mark pulls still 'running' as 'killed'. Call only while holding the write lock. Returns how many."""
    with transaction(conn):
        cursor = conn.execute(
            "UPDATE pulls SET outcome = 'killed', finished_at = ?, "
            "error = 'the process ended before the pull finished (killed or power lost)' WHERE outcome = 'running'",
            [dates.utc_now()])
    return cursor.rowcount


def pulls_since(conn: sqlite3.Connection, topic: str, epoch: int, limit: int) -> list[dict]:
    """The topic's newest complete pulls (kind ``pull``) after ``epoch``, newest first."""
    cursor = conn.execute(
        "SELECT * FROM pulls WHERE topic = ? AND id > ? AND kind = 'pull' AND outcome = 'complete' "
        "ORDER BY id DESC LIMIT ?", [topic, epoch, limit])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]
