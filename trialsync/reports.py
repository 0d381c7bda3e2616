"""Read-only queries returning plain data (dicts and lists) for the command line to render."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .errors import NotFound
from .statuses import NO_STATUS, status_label, status_phrase, status_sort_key
from .store.history import MEMBERSHIP, TOPIC_CHANGES
from .store.pulls import COUNT_BY_STATUS
from .transform import CHILD_COLUMNS

_CHANGE_COLUMNS = ("c.id, c.nct_id, c.field, c.old, c.new, c.observed_at, c.topic, c.pull_id, c.reason, "
                   "s.brief_title")


def _dicts(cursor) -> list[dict]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _status_entries(counts: dict[str, int]) -> list[dict]:
    return [
        {"status": status, "label": status_label(status), "count": counts[status]}
        for status in sorted(counts, key=status_sort_key)
        if counts[status]
    ]


def _epoch(db: sqlite3.Connection, topic: str) -> int:
    row = db.execute("SELECT epoch FROM topics WHERE name = ?", [topic]).fetchone()
    return row[0] if row else 0


def _last_pull(db: sqlite3.Connection, topic: str, outcomes: tuple[str, ...], before: int | None = None) -> dict | None:
    marks = ", ".join("?" for _ in outcomes)
    sql = f"SELECT * FROM pulls WHERE topic = ? AND id > ? AND outcome IN ({marks})"
    params: list = [topic, _epoch(db, topic), *outcomes]
    if before is not None:
        sql += " AND id < ?"
        params.append(before)
    rows = _dicts(db.execute(sql + " ORDER BY id DESC LIMIT 1", params))
    return rows[0] if rows else None


def status_report(db: sqlite3.Connection, topic: str) -> dict:
    """Count the topic's present studies by overall status, with the previous complete pull's counts.

    Returns ``{"topic", "total", "as_of", "data_timestamp", "statuses", "unknown_by_last_known",
    "left_since_previous", "previous"}``; ``statuses`` lists, in report order, each status with a study.
    The counts come from the last complete pull's snapshot when nothing has been written since.
    """
    latest = _last_pull(db, topic, ("complete", "unchanged"))
    if latest and not _written_since(db, latest["id"]):
        rows = db.execute("SELECT overall_status, last_known_status, count FROM pull_status_counts WHERE pull_id = ?",
                          [latest["id"]]).fetchall()
    else:
        rows = db.execute(f"SELECT {COUNT_BY_STATUS}", [topic]).fetchall()
    counts: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for status, last_known, count in rows:
        counts[status] = counts.get(status, 0) + count
        if status == "UNKNOWN":
            key = last_known or NO_STATUS
            unknown[key] = unknown.get(key, 0) + count
    newest_complete = _last_pull(db, topic, ("complete",))
    previous = _last_pull(db, topic, ("complete",), before=newest_complete["id"]) if newest_complete else None
    previous_report = None
    left = 0
    if previous:
        snapshot = dict(db.execute(
            "SELECT overall_status, sum(count) FROM pull_status_counts WHERE pull_id = ? GROUP BY 1",
            [previous["id"]]).fetchall())
        previous_report = {"as_of": previous["finished_at"], "statuses": _status_entries(snapshot)}
        left = db.execute(
            "SELECT count(*) FROM changes WHERE topic = ? AND field = ? AND new = 'left' AND pull_id > ?",
            [topic, MEMBERSHIP, previous["id"]]).fetchone()[0]
    return {
        "topic": topic,
        "total": sum(counts.values()),
        "as_of": latest["finished_at"] if latest else None,
        "data_timestamp": latest["data_timestamp"] if latest else None,
        "statuses": _status_entries(counts),
        "unknown_by_last_known": {k: unknown[k] for k in sorted(unknown, key=status_sort_key)},
        "left_since_previous": left,
        "previous": previous_report,
    }


def _written_since(db: sqlite3.Connection, pull_id: int) -> bool:
    """Whether any pull or import after ``pull_id`` (of any topic) may have written studies."""
    found = db.execute("SELECT 1 FROM pulls WHERE id > ? AND outcome != 'unchanged' LIMIT 1", [pull_id]).fetchone()
    return found is not None


def status_summary(report: dict) -> str:
    """The report in words, the way people write it: '15 studies: 4 recruiting, 2 completed, ...'."""
    total = report["total"]
    head = f"{total} {'study' if total == 1 else 'studies'}"
    parts = [f"{entry['count']} {status_phrase(entry['status'])}" for entry in report["statuses"]]
    return f"{head}: {', '.join(parts)}" if parts else head


def list_changes(db: sqlite3.Connection, topic: str | None = None, since: str | None = None,
                 pulls: int | None = None) -> list[dict]:
    """Changes, newest pull first, each pull's in the order seen.

    Each is a dict of ``id, nct_id, field, old, new, observed_at, topic, pull_id, reason, brief_title``.
    With ``topic``: the changes of its member studies, whichever pull observed them, and its own
    membership events. ``since`` keeps changes observed on or after that date; ``pulls`` those of the
    last N pulls and imports.
    """
    where, params = [], {}
    if topic is not None:
        where.append(TOPIC_CHANGES)
        params["topic"] = topic
    if since is not None:
        where.append("c.observed_at >= :since")
        params["since"] = since
    if pulls is not None:
        where.append("c.pull_id IN (SELECT id FROM pulls ORDER BY id DESC LIMIT :pulls)")
        params["pulls"] = pulls
    sql = f"SELECT {_CHANGE_COLUMNS} FROM changes c LEFT JOIN studies s ON s.nct_id = c.nct_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return _dicts(db.execute(sql + " ORDER BY c.pull_id DESC, c.id", params))


@dataclass
class Digest:
    """A topic's changes not yet reported, oldest first; ``through`` is the id to mark reported once shown."""

    topic: str
    changes: list[dict]
    through: int


def unreported_changes(db: sqlite3.Connection, topic: str) -> Digest:
    """Everything not yet reported for ``topic``: its studies' changes and its membership events after
    the topic's digest cursor, whichever pull or import observed them (failed and killed ones too)."""
    row = db.execute("SELECT reported_through FROM topics WHERE name = ?", [topic]).fetchone()
    if row is None:
        return Digest(topic, [], 0)
    # NOT INDEXED: read forward from the cursor (a range of ids); the topic index would scan every study change.
    changes = _dicts(db.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM changes c NOT INDEXED LEFT JOIN studies s ON s.nct_id = c.nct_id "
        f"WHERE c.id > :cursor AND {TOPIC_CHANGES} ORDER BY c.id", {"cursor": row[0], "topic": topic}))
    return Digest(topic, changes, max((c["id"] for c in changes), default=row[0]))


def list_pulls(db: sqlite3.Connection, topic: str | None = None, limit: int = 20) -> list[dict]:
    """The most recent pulls and imports, newest first, with their counts; NotFound for a topic never seen."""
    sql = ("SELECT id, topic, kind, mode, started_at, finished_at, outcome, requests, received, new, updated, "
           "unchanged, left_topic, rejoined, data_timestamp, error FROM pulls")
    params: list = []
    if topic is not None:
        known = db.execute("SELECT 1 FROM topics WHERE name = ? UNION ALL SELECT 1 FROM pulls WHERE topic = ? LIMIT 1",
                           [topic, topic]).fetchone()
        if known is None:
            raise NotFound(f"unknown topic {topic!r}: no pull or import of it is recorded")
        sql += " WHERE topic = ?"
        params.append(topic)
    return _dicts(db.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]))


def topic_rows(db: sqlite3.Connection) -> list[dict]:
    """Each stored topic with how many studies it holds, its last complete pull or import, and its search."""
    import orjson

    rows = []
    for name, params, epoch in db.execute("SELECT name, params, epoch FROM topics ORDER BY name").fetchall():
        studies = db.execute("SELECT count(*) FROM topic_studies WHERE topic = ? AND present = 1", [name]).fetchone()[0]
        last = db.execute("SELECT max(finished_at) FROM pulls WHERE topic = ? AND id > ? AND outcome IN "
                          "('complete', 'unchanged')", [name, epoch]).fetchone()[0]
        search = orjson.loads(params)
        rows.append({"name": name, "studies": studies, "last_pull": last,
                     "search": " ".join(f"{k}={v}" for k, v in search.items() if v)})
    return rows


def study_facts(db: sqlite3.Connection, nct_id: str) -> dict:
    """The key facts of one stored study, with its child rows and topics; NotFound if it is not stored."""
    rows = _dicts(db.execute(
        "SELECT nct_id, brief_title, official_title, acronym, overall_status, last_known_status, why_stopped, "
        "study_type, phases, enrollment_count, enrollment_type, start_date, primary_completion_date, "
        "completion_date, first_posted, last_update_posted, status_verified_date, results_first_posted, "
        "lead_sponsor, lead_sponsor_class, has_results, location_count FROM studies WHERE nct_id = ?", [nct_id]))
    if not rows:
        raise _not_stored(nct_id)
    facts = rows[0]
    for table, columns in CHILD_COLUMNS.items():
        facts[table] = _dicts(db.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE nct_id = ? ORDER BY seq", [nct_id]))
    facts["topics"] = _dicts(db.execute(
        "SELECT topic, present, left_at FROM topic_studies WHERE nct_id = ? ORDER BY topic", [nct_id]))
    return facts


def study_raw(db: sqlite3.Connection, nct_id: str) -> str:
    """The stored raw JSON text of one study, exactly as received; NotFound if it is not stored."""
    row = db.execute("SELECT raw FROM studies WHERE nct_id = ?", [nct_id]).fetchone()
    if row is None:
        raise _not_stored(nct_id)
    return row[0]


def _not_stored(nct_id: str) -> NotFound:
    return NotFound(f"{nct_id} is not in the database (pull a topic that holds it, or `trialsync import` it)")
