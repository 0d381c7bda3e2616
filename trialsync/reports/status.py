"""A topic counted by overall status: now, as it stood at a moment, at each complete pull, or every topic."""

from __future__ import annotations

import sqlite3

from ..errors import NotFound
from ..statuses import NO_STATUS, status_label, status_phrase, status_sort_key
from ..change_kinds import LEFT, MEMBERSHIP
from ..store.pulls import COUNT_BY_STATUS, written_since

FAILED_OUTCOMES = ("failed", "interrupted", "killed")
from .common import last_pull, topic_epoch


def status_entries(counts: dict[str, int]) -> list[dict]:
    """``[{"status", "label", "count"}]`` in report order, for each status with at least one study."""
    return [
        {"status": status, "label": status_label(status), "count": counts[status]}
        for status in sorted(counts, key=status_sort_key)
        if counts[status]
    ]


def _snapshot(conn: sqlite3.Connection, pull_id: int) -> list[tuple]:
    return conn.execute("SELECT overall_status, last_known_status, count FROM pull_status_counts WHERE pull_id = ?",
                        [pull_id]).fetchall()


def status_report(conn: sqlite3.Connection, topic: str, as_of: str | None = None) -> dict:
    """Count the topic's present studies by overall status, with the previous complete pull's counts.

    Returns ``{"topic", "total", "as_of", "data_timestamp", "statuses", "unknown_by_last_known",
    "left_since_previous", "previous", "last_failed_pull"}``; ``statuses`` lists, in report order, each status
    with a study. ``last_failed_pull`` (``{"finished_at", "outcome", "error"}``) is the newest pull that failed,
    was interrupted or killed, for a topic no pull or import ever completed for (else None).
    The counts come from the last complete pull's snapshot when nothing has been written since. With
    ``as_of`` (``YYYY-MM-DDTHH:MM:SSZ``): the topic as it stood after its last complete pull at or before
    that moment (NotFound when there was none).
    """
    latest = last_pull(conn, topic, finished_by=as_of)
    if as_of is not None:
        if latest is None:
            raise NotFound(f"topic {topic!r} had no complete pull or import at or before {as_of}")
        rows = _snapshot(conn, latest["id"])
    elif latest and not written_since(conn, latest["id"]):
        rows = _snapshot(conn, latest["id"])
    else:
        rows = conn.execute(f"SELECT {COUNT_BY_STATUS}", [topic]).fetchall()
    counts: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for status, last_known, count in rows:
        counts[status] = counts.get(status, 0) + count
        if status == "UNKNOWN":
            key = last_known or NO_STATUS
            unknown[key] = unknown.get(key, 0) + count
    newest_complete = last_pull(conn, topic, ("complete",), finished_by=as_of)
    previous = last_pull(conn, topic, ("complete",), before=newest_complete["id"]) if newest_complete else None
    previous_report = None
    left = 0
    if previous:
        snapshot = dict(conn.execute(
            "SELECT overall_status, sum(count) FROM pull_status_counts WHERE pull_id = ? GROUP BY 1",
            [previous["id"]]).fetchall())
        previous_report = {"as_of": previous["finished_at"], "statuses": status_entries(snapshot)}
        left = conn.execute(
            "SELECT count(*) FROM changes WHERE topic = ? AND field = ? AND new = ? AND pull_id > ? AND pull_id <= ?",
            [topic, MEMBERSHIP, LEFT, previous["id"], newest_complete["id"] if as_of else 2 ** 62]).fetchone()[0]
    return {
        "topic": topic,
        "total": sum(counts.values()),
        "as_of": latest["finished_at"] if latest else None,
        "data_timestamp": latest["data_timestamp"] if latest else None,
        "statuses": status_entries(counts),
        "unknown_by_last_known": {k: unknown[k] for k in sorted(unknown, key=status_sort_key)},
        "left_since_previous": left,
        "previous": previous_report,
        "last_failed_pull": _last_failed_pull(conn, topic) if latest is None and as_of is None else None,
    }


def freshness(conn: sqlite3.Connection, topic: str) -> dict:
    """How fresh the stored studies of ``topic`` are: ``{"topic", "last_complete_pull", "kind",
    "data_timestamp"}``, that is when its last complete pull or import finished, which of the two it was
    (``pull`` or ``import``), and the API's ``dataTimestamp`` that pull saw (None for an import); all three None
    when none completed. The same pull ``status_report`` dates its counts by."""
    latest = last_pull(conn, topic)
    return {"topic": topic, "last_complete_pull": latest["finished_at"] if latest else None,
            "kind": latest["kind"] if latest else None, "data_timestamp": latest["data_timestamp"] if latest else None}


def _last_failed_pull(conn: sqlite3.Connection, topic: str) -> dict | None:
    failed = last_pull(conn, topic, FAILED_OUTCOMES)
    return {key: failed[key] for key in ("finished_at", "outcome", "error")} if failed else None


def status_summary(report: dict) -> str:
    """The counts in words, the way people write them: '15 studies: 4 recruiting, 2 completed, ...'."""
    total = report["total"]
    head = f"{total} {'study' if total == 1 else 'studies'}"
    parts = [f"{entry['count']} {status_phrase(entry['status'])}" for entry in report["statuses"]]
    return f"{head}: {', '.join(parts)}" if parts else head


def history(conn: sqlite3.Connection, topic: str, last: int | None = None, finished_by: str | None = None) -> list[dict]:
    """The topic's counts by status at each complete pull or import, oldest first:
    ``[{"pull_id", "finished_at", "kind", "mode", "total", "statuses": {status: count}}]``; with ``last``, only
    the newest ``last`` of them; with ``finished_by``, only those finished at or before that moment."""
    pulls = conn.execute(
        "SELECT id, finished_at, kind, mode FROM pulls WHERE topic = ? AND id > ? AND outcome = 'complete' "
        "AND (? IS NULL OR finished_at <= ?) ORDER BY id DESC LIMIT ?",
        [topic, topic_epoch(conn, topic), finished_by, finished_by, -1 if last is None else last]).fetchall()[::-1]
    rows = []
    for pull_id, finished_at, kind, mode in pulls:
        counts: dict[str, int] = {}
        for status, count in conn.execute(
                "SELECT overall_status, sum(count) FROM pull_status_counts WHERE pull_id = ? GROUP BY 1", [pull_id]):
            counts[status] = count
        rows.append({"pull_id": pull_id, "finished_at": finished_at, "kind": kind, "mode": mode,
                     "total": sum(counts.values()),
                     "statuses": {s: counts[s] for s in sorted(counts, key=status_sort_key)}})
    return rows


def every_topic(conn: sqlite3.Connection) -> list[dict]:
    """Each stored topic's status report, by name."""
    names = [row[0] for row in conn.execute("SELECT name FROM topics ORDER BY name")]
    return [status_report(conn, name) for name in names]
