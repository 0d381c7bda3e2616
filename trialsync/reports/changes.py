"""What changed: the change log of a topic or of every topic, a topic's unreported changes (its digest),
its newest changes by study and pull (its feed), the pulls log."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..defaults import FEED_ENTRIES
from ..errors import NotFound
from ..store.history import BROUGHT_IN_BY_A_JOIN, IN_BACKLOG, REPORTABLE_AFTER_CURSOR, TOPIC_CHANGES
from .common import dicts

_CHANGE_COLUMNS = ("c.id, c.nct_id, c.field, c.old, c.new, c.observed_at, c.topic, c.pull_id, c.reason, c.item, "
                   "s.brief_title")


def list_changes(conn: sqlite3.Connection, topic: str | None = None, since: str | None = None,
                 pulls: int | None = None, nct_id: str | None = None, limit: int | None = None,
                 offset: int = 0) -> list[dict]:
    """Changes, newest pull first, each pull's in the order seen.

    Each is a dict of ``id, nct_id, field, old, new, observed_at, topic, pull_id, reason, item, brief_title``.
    With ``topic``: the changes of its member studies, whichever pull observed them, and its own
    membership events. ``since`` keeps changes observed on or after that date; ``pulls`` those of the
    last N pulls and imports (of the topic's own, with ``topic``: the changes observed since the one before
    them, which its digests covered); ``nct_id`` those of one study. ``offset`` skips that many of them and
    ``limit`` keeps at most that many of the rest (a page).
    """
    sql, params = _changes_sql(topic, since, pulls, nct_id)
    sql += " ORDER BY c.pull_id DESC, c.id LIMIT :limit OFFSET :offset"
    params.update({"limit": -1 if limit is None else limit, "offset": offset})
    return dicts(conn.execute(sql, params))


def count_changes(conn: sqlite3.Connection, topic: str | None = None, since: str | None = None) -> int:
    """How many changes ``list_changes(conn, topic, since=since)`` gives in all."""
    sql, params = _changes_sql(topic, since, None, None)
    return conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]


def _changes_sql(topic: str | None, since: str | None, pulls: int | None, nct_id: str | None) -> tuple[str, dict]:
    where, params = [], {}
    if topic is not None:
        where.append(TOPIC_CHANGES)
        params["topic"] = topic
    if since is not None:
        where.append("c.observed_at >= :since")
        params["since"] = since
    if pulls is not None and topic is not None:
        # after the topic's pull (or import) before its last N: whichever topic's pull observed them
        where.append("c.pull_id > coalesce((SELECT id FROM pulls WHERE topic = :topic AND id > "
                     "(SELECT coalesce(max(epoch), 0) FROM topics WHERE name = :topic) "
                     "ORDER BY id DESC LIMIT 1 OFFSET :pulls), 0)")
        params["pulls"] = pulls
    elif pulls is not None:
        where.append("c.pull_id IN (SELECT id FROM pulls ORDER BY id DESC LIMIT :pulls)")
        params["pulls"] = pulls
    if nct_id is not None:
        where.append("c.nct_id = :nct_id")
        params["nct_id"] = nct_id
    sql = f"SELECT {_CHANGE_COLUMNS} FROM changes c LEFT JOIN studies s ON s.nct_id = c.nct_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


@dataclass
class Digest:
    """A topic's changes not yet reported, oldest first; ``through`` is the id to mark reported once shown."""

    topic: str
    changes: list[dict]
    through: int


def unreported_changes(conn: sqlite3.Connection, topic: str) -> Digest:
    """Everything not yet reported for ``topic``: its studies' changes and its membership events after
    the topic's digest cursor, whichever pull or import observed them (failed and killed ones too); the
    changes a join after the cursor brings in (those that made the study join or rejoin it, seen first by
    another topic's pull); and what an upgraded database's earlier release left unreported."""
    row = conn.execute("SELECT reported_through FROM topics WHERE name = ?", [topic]).fetchone()
    if row is None:
        return Digest(topic, [], 0)
    params = {"cursor": row[0], "topic": topic}
    select = f"SELECT {_CHANGE_COLUMNS} FROM changes c"
    # NOT INDEXED: read forward from the cursor (a range of ids); the topic index would scan every study change.
    changes = dicts(conn.execute(f"{select} NOT INDEXED LEFT JOIN studies s ON s.nct_id = c.nct_id "
                                 f"WHERE c.id > :cursor AND {REPORTABLE_AFTER_CURSOR}", params))
    changes += dicts(conn.execute(f"{select} LEFT JOIN studies s ON s.nct_id = c.nct_id "
                                  f"WHERE c.id <= :cursor AND {BROUGHT_IN_BY_A_JOIN}", params))
    changes += dicts(conn.execute(f"{select} LEFT JOIN studies s ON s.nct_id = c.nct_id "
                                  f"WHERE c.id <= :cursor AND {IN_BACKLOG}", params))
    changes = sorted({c["id"]: c for c in changes}.values(), key=lambda c: c["id"])
    return Digest(topic, changes, max([row[0]] + [c["id"] for c in changes]))


# The topic's changes (as ``changes TOPIC`` lists them) of its newest (pull, study) pairs, each pair once.
_FEED_CHANGES = f"""
    WITH topic_changes AS (SELECT c.id, c.pull_id, c.nct_id FROM changes c WHERE {TOPIC_CHANGES}),
    entries AS (SELECT pull_id, nct_id, min(id) AS first FROM topic_changes GROUP BY pull_id, nct_id
                ORDER BY pull_id DESC, first LIMIT :entries)
    SELECT {_CHANGE_COLUMNS}, coalesce(p.finished_at, p.started_at) AS updated
    FROM entries e JOIN topic_changes t ON t.pull_id = e.pull_id AND t.nct_id = e.nct_id
    JOIN changes c ON c.id = t.id LEFT JOIN studies s ON s.nct_id = c.nct_id LEFT JOIN pulls p ON p.id = c.pull_id
    ORDER BY e.pull_id DESC, e.first, c.id"""

# An empty feed's time: when its topic was (last) added, else a fixed moment, never the clock's.
NO_CHANGES_YET = "1970-01-01T00:00:00Z"


def feed_entries(conn: sqlite3.Connection, topic: str, entries: int = FEED_ENTRIES) -> dict:
    """``topic``'s newest ``entries`` entries of a feed, newest pull first: one per study and pull that
    observed changes of it (the changes ``list_changes(conn, topic)`` gives), as a dict of ``topic``,
    ``updated`` and ``entries``. Each entry is ``pull_id, nct_id, brief_title, updated, changes``; its
    ``updated`` is when its pull finished (started, for one that never did). The feed's ``updated`` is its
    newest entry's, else when the topic was added: every time comes from the data, so the same data gives
    the same feed."""
    found: dict[tuple[int, str], dict] = {}
    for change in dicts(conn.execute(_FEED_CHANGES, {"topic": topic, "entries": entries})):
        updated = change.pop("updated")
        entry = found.setdefault((change["pull_id"], change["nct_id"]), {
            "pull_id": change["pull_id"], "nct_id": change["nct_id"], "brief_title": change["brief_title"],
            "updated": updated, "changes": []})
        entry["changes"].append(change)
    if found:
        updated = max(entry["updated"] for entry in found.values())
    else:
        row = conn.execute("SELECT created_at FROM topics WHERE name = ?", [topic]).fetchone()
        updated = row[0] if row and row[0] else NO_CHANGES_YET
    return {"topic": topic, "updated": updated, "entries": list(found.values())}


def list_pulls(conn: sqlite3.Connection, topic: str | None = None, limit: int = 20) -> list[dict]:
    """The most recent pulls and imports, newest first, with their counts; NotFound for a topic never seen."""
    sql = ("SELECT id, topic, kind, mode, started_at, finished_at, outcome, requests, received, new, updated, "
           "unchanged, left_topic, rejoined, reconciled, data_timestamp, error FROM pulls")
    params: list = []
    if topic is not None:
        known = conn.execute("SELECT 1 FROM topics WHERE name = ? UNION ALL SELECT 1 FROM pulls WHERE topic = ? LIMIT 1",
                             [topic, topic]).fetchone()
        if known is None:
            raise NotFound(f"unknown topic {topic!r}: no pull or import of it is recorded")
        # a topic removed and added again starts afresh: its pulls are those after it was added
        sql += " WHERE topic = ? AND id > (SELECT coalesce(max(epoch), 0) FROM topics WHERE name = ?)"
        params += [topic, topic]
    return dicts(conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]))
