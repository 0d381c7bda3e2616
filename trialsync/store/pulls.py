"""The ``pulls`` log: one row per pull or import, from start to outcome, with each complete pull's counts."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .. import dates
from ..defaults import COMPLETE_OUTCOMES
from ..errors import Interrupted, TrialsyncError
from ..statuses import NO_STATUS
from .db import database_path, describe_error, transaction

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


PULL_COUNTS = ("received", "new", "updated", "unchanged", "rejoined", "left_topic")


def add_counts(conn: sqlite3.Connection, pull_id: int, **counts: int) -> None:
    """Add to a pull's counts (``PULL_COUNTS``: received, new, updated, unchanged, rejoined, left_topic)."""
    counts = {column: value for column, value in counts.items() if value}
    if not counts:
        return
    unknown = set(counts) - set(PULL_COUNTS)
    if unknown:
        raise ValueError(f"not a pull count: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = {column} + ?" for column in counts)
    with transaction(conn):
        conn.execute(f"UPDATE pulls SET {assignments} WHERE id = ?", [*counts.values(), pull_id])


def finish_pull(conn: sqlite3.Connection, pull_id: int, outcome: str, error: str | None = None, **values) -> None:
    """Record how a pull ended. A complete pull also snapshots its topic's status counts: an unchanged one copies
    the snapshot of the topic's previous complete pull when nothing since can have written studies (the whole
    registry's counts take a second to count again), else they are counted."""
    with transaction(conn):
        update_pull(conn, pull_id, outcome=outcome, error=error, finished_at=dates.utc_now(), **values)
        if outcome in COMPLETE_OUTCOMES:
            topic = conn.execute("SELECT topic FROM pulls WHERE id = ?", [pull_id]).fetchone()[0]
            still = _snapshot_still_true(conn, topic, pull_id) if outcome == "unchanged" else None
            if still is not None:
                conn.execute("INSERT INTO pull_status_counts (pull_id, overall_status, last_known_status, count) "
                             "SELECT ?, overall_status, last_known_status, count FROM pull_status_counts "
                             "WHERE pull_id = ?", [pull_id, still])
            else:
                conn.execute(f"INSERT INTO pull_status_counts (pull_id, overall_status, last_known_status, count) "
                             f"SELECT ?, {COUNT_BY_STATUS}", [pull_id, topic])


def written_since(conn: sqlite3.Connection, pull_id: int, before: int | None = None) -> bool:
    """Whether any pull or import after ``pull_id`` (and before pull ``before``, if given), of any topic, may have
    written studies or membership: if not, the counts snapshotted when ``pull_id`` finished
    (``pull_status_counts``) are still the counts. An unchanged pull writes no study."""
    sql, params = "SELECT 1 FROM pulls WHERE id > ? AND outcome != 'unchanged'", [pull_id]
    if before is not None:
        sql, params = sql + " AND id < ?", [*params, before]
    return conn.execute(sql + " LIMIT 1", params).fetchone() is not None


def _snapshot_still_true(conn: sqlite3.Connection, topic: str, pull_id: int) -> int | None:
    """The topic's previous complete pull, if it left a snapshot that nothing written since (``written_since``)
    can have changed; else None."""
    marks = ", ".join("?" for _ in COMPLETE_OUTCOMES)
    row = conn.execute(f"SELECT id FROM pulls WHERE topic = ? AND id < ? AND outcome IN ({marks}) "
                       "ORDER BY id DESC LIMIT 1", [topic, pull_id, *COMPLETE_OUTCOMES]).fetchone()
    if row is None or conn.execute("SELECT 1 FROM pull_status_counts WHERE pull_id = ?", [row[0]]).fetchone() is None:
        return None
    return None if written_since(conn, row[0], before=pull_id) else row[0]


def record_failure(conn: sqlite3.Connection, pull_id: int, outcome: str, error: str, **values) -> bool:
    """Best effort: mark the pull ``failed`` or ``interrupted`` with its error. Returns whether that was written
    (a full disk can refuse even this; the row then stays ``running`` and the next start calls it ``killed``)."""
    try:
        finish_pull(conn, pull_id, outcome, error=error, **values)
    except sqlite3.Error:
        return False
    return True


@contextmanager
def recorded_pull(conn: sqlite3.Connection, topic: str, kind: str = "pull", mode: str | None = None,
                  source: str | None = None, extra: Callable[[], dict] = dict) -> Iterator[int]:
    """Start a pull (or import) row and give its id; however the block ends but by returning, the row ends
    ``interrupted`` (Interrupted, Ctrl-C) or ``failed`` with the error, never ``running``, and the error goes
    on (an SQLite error as the StoreError that describes it). ``extra()`` gives more columns to record with
    a failure (the requests made). The block records its own success with ``finish_pull``."""
    pull_id = start_pull(conn, topic, kind, mode, source)
    try:
        yield pull_id
    except (Interrupted, KeyboardInterrupt) as exc:
        record_failure(conn, pull_id, "interrupted", str(exc) or "stopped at once by a second Ctrl-C", **extra())
        raise
    except TrialsyncError as exc:
        record_failure(conn, pull_id, "failed", str(exc), **extra())
        raise
    except sqlite3.Error as exc:
        error = describe_error(exc, database_path(conn))
        record_failure(conn, pull_id, "failed", str(error), **extra())
        raise error from None
    except Exception as exc:  # a bug: the row still ends failed, and the traceback goes on
        record_failure(conn, pull_id, "failed", f"unexpected error: {type(exc).__name__}: {exc}", **extra())
        raise


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
    return _rows(cursor)


def _rows(cursor: sqlite3.Cursor) -> list[dict]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def unfinished_pulls(conn: sqlite3.Connection) -> list[dict]:
    """Pulls and imports still marked ``running`` (under way, or their process died), and each stored topic's
    newest pull or import when it ended ``killed``; oldest first."""
    return _rows(conn.execute(
        "SELECT p.* FROM pulls p WHERE p.outcome = 'running' OR (p.outcome = 'killed' AND p.id = ("
        "SELECT max(q.id) FROM pulls q JOIN topics t ON t.name = q.topic WHERE q.topic = p.topic AND q.id > t.epoch)) "
        "ORDER BY p.id"))


def last_complete_pulls(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    """Each stored topic with its parameters (JSON text) and when its newest complete pull or import finished
    (None: never), by topic name."""
    return conn.execute(
        f"SELECT t.name, t.params, (SELECT max(p.finished_at) FROM pulls p WHERE p.topic = t.name AND p.id > t.epoch "
        f"AND p.outcome IN {COMPLETE_OUTCOMES!r}) FROM topics t ORDER BY t.name").fetchall()


def recent_pulls(conn: sqlite3.Connection, limit: int) -> list[dict]:
    """The newest ``limit`` rows of kind ``pull`` that ended (any outcome but ``running``), newest first."""
    return _rows(conn.execute(
        "SELECT * FROM pulls WHERE kind = 'pull' AND outcome != 'running' ORDER BY id DESC LIMIT ?", [limit]))
