"""The change log: facts about studies (a field's old and new value) and each topic's membership events.

A change to a study is not filed under a topic: a topic's changes are those of its member studies plus its
own membership events, whichever pull or import observed them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

MEMBERSHIP = "membership"  # field of a study joining ('added'), leaving ('left') or rejoining ('present') a topic
WARNING = "warning"  # field of a note about a record, such as a date that cannot move the watermark
SITE_ADDED, SITE_REMOVED, SITE_STATUS = "site_added", "site_removed", "site_status"  # item: the site
REFERENCE_ADDED = "reference_added"  # item: the PubMed id (or the citation's start)
SEARCH_CHANGED = "search"  # reason of the membership events a changed search caused

INSERT_CHANGE = ("INSERT INTO changes (pull_id, topic, nct_id, field, old, new, observed_at, reason, item) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_VERSION = ("INSERT INTO versions (nct_id, pull_id, replaced_at, last_update_posted, raw_zlib) "
                  "VALUES (?, ?, ?, ?, ?)")

# A study change belongs to a topic if the study was a member when it was observed: it had joined (at its
# first pull, or later) and its last membership event before that pull was not leaving. Whether a change
# belongs is thus settled when it is written (later events are of later pulls), so the topic's history and
# its digests always agree. Nothing before the topic was (last) added belongs to it.
TOPIC_CHANGES = """c.pull_id > (SELECT coalesce(max(epoch), 0) FROM topics WHERE name = :topic)
    AND (c.topic = :topic OR (c.topic IS NULL AND EXISTS (
        SELECT 1 FROM topic_studies m WHERE m.topic = :topic AND m.nct_id = c.nct_id
        AND c.pull_id >= coalesce(m.first_pull, 0))
    AND coalesce((
        SELECT e.new FROM changes e INDEXED BY changes_membership
        WHERE e.topic = :topic AND e.nct_id = c.nct_id AND e.pull_id < c.pull_id
        ORDER BY e.pull_id DESC, e.id DESC LIMIT 1), 'added') != 'left'))"""


def insert_changes(conn: sqlite3.Connection, rows: Iterable[tuple]) -> None:
    """Append change rows: ``(pull_id, topic, nct_id, field, old, new, observed_at, reason, item)``."""
    conn.executemany(INSERT_CHANGE, rows)


def last_change_id(conn: sqlite3.Connection) -> int:
    """The id of the newest change row (0 when there is none)."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM changes").fetchone()[0]


def warn_missing_ids(conn: sqlite3.Connection, topic: str, pull_id: int, nct_ids: Iterable[str]) -> int:
    """Log, once per topic and id, that the API has no study with an id the topic's watchlist names."""
    from .. import dates
    from .db import transaction

    warned = 0
    with transaction(conn):
        for nct_id in nct_ids:
            text = f"{nct_id} is not on ClinicalTrials.gov (the API has no study with this id)"
            seen = conn.execute("SELECT 1 FROM changes WHERE topic = ? AND nct_id = ? AND field = ? AND new = ?",
                                [topic, nct_id, WARNING, text]).fetchone()
            if seen is None:
                conn.execute(INSERT_CHANGE, [pull_id, topic, nct_id, WARNING, None, text, dates.utc_now(), None, None])
                warned += 1
    return warned
