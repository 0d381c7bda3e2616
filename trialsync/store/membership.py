"""Which studies the API returned for which topic (``topic_studies``): joining, leaving, coming back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .. import dates
from .db import transaction
from .history import INSERT_CHANGE, MEMBERSHIP


def present_ids(conn: sqlite3.Connection, topic: str) -> set[str]:
    """The NCT ids the topic holds now (members not marked as left)."""
    return {row[0] for row in conn.execute("SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1", [topic])}


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
            conn.execute(INSERT_CHANGE, [pull_id, topic, nct_id, MEMBERSHIP, "present", "left", now, reason, None])
            left += 1
        conn.execute("UPDATE pulls SET left_topic = left_topic + ? WHERE id = ?", [left, pull_id])
    return left
