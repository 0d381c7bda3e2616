"""Which studies the API returned for which topic (``topic_studies``): joining, leaving, coming back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from .. import dates
from .db import select_in, transaction
from ..change_kinds import LEFT, MEMBERSHIP, PRESENT
from .history import insert_changes
from .pulls import add_counts


def present_ids(conn: sqlite3.Connection, topic: str) -> set[str]:
    """The NCT ids the topic holds now (members not marked as left)."""
    return {row[0] for row in conn.execute("SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1", [topic])}


def present_members(conn: sqlite3.Connection, topic: str) -> Iterator[str]:
    """The NCT ids the topic holds now, one at a time in NCT id order (no set of them all in memory)."""
    for (nct_id,) in conn.execute("SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1 ORDER BY nct_id",
                                  [topic]):
        yield nct_id


def count_present(conn: sqlite3.Connection, topic: str) -> int:
    """How many studies the topic holds now."""
    return conn.execute("SELECT count(*) FROM topic_studies WHERE topic = ? AND present = 1", [topic]).fetchone()[0]


def member_states(conn: sqlite3.Connection, topic: str, nct_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Each of ``nct_ids`` the topic lists (present or left): ``nct_id -> (present, api_seen)``."""
    return {row[0]: (row[1], row[2]) for row in select_in(
        conn, "SELECT nct_id, present, api_seen FROM topic_studies WHERE topic = ? AND nct_id IN ({marks})",
        nct_ids, topic)}


def mark_left(conn: sqlite3.Connection, topic: str, nct_ids: Iterable[str], pull_id: int,
              reason: str | None = None) -> int:
    """Take ``nct_ids`` out of ``topic`` after a provably complete listing without them.

    A study the API had returned for the topic is marked as having left (kept, never deleted) and logged;
    one that only an import had put there is dropped silently. Returns how many left.
    """
    nct_ids = sorted(nct_ids)
    if not nct_ids:
        return 0
    now = dates.utc_now()
    left = 0
    with transaction(conn):
        for nct_id in nct_ids:
            row = conn.execute("SELECT api_seen FROM topic_studies WHERE topic = ? AND nct_id = ? AND present = 1",
                               [topic, nct_id]).fetchone()
            if row is None:
                continue
            if not row[0]:
                conn.execute("DELETE FROM topic_studies WHERE topic = ? AND nct_id = ?", [topic, nct_id])
                continue
            conn.execute("UPDATE topic_studies SET present = 0, left_at = ?, left_pull = ? WHERE topic = ? AND nct_id = ?",
                         [now, pull_id, topic, nct_id])
            insert_changes(conn, [(pull_id, topic, nct_id, MEMBERSHIP, PRESENT, LEFT, now, reason, None)])
            left += 1
        add_counts(conn, pull_id, left_topic=left)
    return left


def write_joins(conn: sqlite3.Connection, joined: Iterable[tuple], rejoined: Iterable[tuple],
                seen_by_api: Iterable[tuple]) -> None:
    """Studies that join a topic ``(topic, nct_id, first_pull, api_seen)``, that come back to it
    ``(api_seen, topic, nct_id)``, and that the API (not only an import) has now returned for it
    ``(topic, nct_id)``. Call inside the save's transaction."""
    conn.executemany("INSERT INTO topic_studies (topic, nct_id, present, first_pull, api_seen) VALUES (?, ?, 1, ?, ?)",
                     joined)
    conn.executemany("UPDATE topic_studies SET present = 1, left_at = NULL, left_pull = NULL, "
                     "api_seen = max(api_seen, ?) WHERE topic = ? AND nct_id = ?", rejoined)
    conn.executemany("UPDATE topic_studies SET api_seen = 1 WHERE topic = ? AND nct_id = ?", seen_by_api)


def forget_topic(conn: sqlite3.Connection, topic: str) -> int:
    """Drop a removed topic's membership list; returns how many studies it held."""
    members = conn.execute("SELECT count(*) FROM topic_studies WHERE topic = ? AND present = 1", [topic]).fetchone()[0]
    conn.execute("DELETE FROM topic_studies WHERE topic = ?", [topic])
    return members
