"""The change log: facts about studies (a field's old and new value) and each topic's membership events.

A change to a study is not filed under a topic: a topic's changes are those of its member studies plus its
own membership events, whichever pull or import observed them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ..change_kinds import (  # noqa: F401 (the store's users read these words here too)
    ADDED, JOINING, LEFT, MEMBERSHIP, PRESENT, REFERENCE_ADDED, RESULTS_DUE, SEARCH_CHANGED, SITE_ADDED,
    SITE_REMOVED, SITE_STATUS, WARNING,
)
from ..results_rule import APPLICABLE, due_cutoff

INSERT_CHANGE = ("INSERT INTO changes (pull_id, topic, nct_id, field, old, new, observed_at, reason, item) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_VERSION = ("INSERT INTO versions (nct_id, pull_id, replaced_at, last_update_posted, raw_zlib) "
                  "VALUES (?, ?, ?, ?, ?)")

# A study change belongs to a topic if the study was in the topic on either side of it:
#
# - it was a member when the change was observed (it had joined, at its first pull or later, and its last
#   membership event before that pull was not leaving): the change that makes it leave is the topic's too,
#   since a pull fetches by id the studies its listing lost before calling them left;
# - or it joins or rejoins the topic at that pull or at its next membership event, and the change was observed
#   after the topic's last listing before that (which did not hold the study): the change that brings a study
#   into a topic is the topic's news whichever topic's pull saw it first.
#
# Whether a change belongs is thus settled either when it is written (the first case) or when the topic's join
# event is written (the second): a digest reports the first kind after its cursor, the second with its join
# event (JOINED_AFTER names that event's id). Nothing before the topic was (last) added belongs to it.
EPOCH = "c.pull_id > (SELECT coalesce(max(epoch), 0) FROM topics WHERE name = :topic)"
_MEMBER = "EXISTS (SELECT 1 FROM topic_studies m WHERE m.topic = :topic AND m.nct_id = c.nct_id)"
# the study was a member of the topic when the change was observed
MEMBER_WHEN_OBSERVED = """(EXISTS (
        SELECT 1 FROM topic_studies m WHERE m.topic = :topic AND m.nct_id = c.nct_id
        AND c.pull_id >= coalesce(m.first_pull, 0))
    AND coalesce((
        SELECT e.new FROM changes e INDEXED BY changes_membership
        WHERE e.topic = :topic AND e.nct_id = c.nct_id AND e.pull_id < c.pull_id
        ORDER BY e.pull_id DESC, e.id DESC LIMIT 1), 'added') != 'left')"""
# the id of the event by which the study joins or rejoins the topic right after the change (NULL when none)
JOINED_AFTER = """(SELECT j.id FROM (
        SELECT e.id, e.new, e.pull_id FROM changes e INDEXED BY changes_membership
        WHERE e.topic = :topic AND e.nct_id = c.nct_id AND e.pull_id >= c.pull_id
        ORDER BY e.pull_id, e.id LIMIT 1) j
    WHERE j.new IN ('added', 'present')
    AND c.pull_id > (SELECT coalesce(max(p.id), 0) FROM pulls p WHERE p.topic = :topic AND p.kind = 'pull'
                     AND p.outcome = 'complete' AND p.membership_checked = 1 AND p.id < j.pull_id))"""
STUDY_CHANGE_OF_TOPIC = f"({_MEMBER} AND ({MEMBER_WHEN_OBSERVED} OR {JOINED_AFTER} IS NOT NULL))"
TOPIC_CHANGES = f"{EPOCH} AND (c.topic = :topic OR (c.topic IS NULL AND {STUDY_CHANGE_OF_TOPIC}))"
# Of the topic's study changes after the digest cursor, those a digest reports now (the others may belong
# later, once the study joins the topic).
REPORTABLE_AFTER_CURSOR = f"""{EPOCH} AND (c.topic = :topic OR (c.topic IS NULL AND {_MEMBER}
    AND ({MEMBER_WHEN_OBSERVED} OR {JOINED_AFTER} > :cursor)))"""
# Study changes at or before the cursor that a join event after it brings into the topic.
BROUGHT_IN_BY_A_JOIN = f"""c.topic IS NULL AND c.nct_id IN (
        SELECT j.nct_id FROM changes j WHERE j.topic = :topic AND j.id > :cursor AND j.new IN ('added', 'present'))
    AND {EPOCH} AND {_MEMBER} AND NOT {MEMBER_WHEN_OBSERVED} AND {JOINED_AFTER} > :cursor"""
# Changes a release that kept no cursor left unreported (``digest_backlog``, filled on upgrade).
IN_BACKLOG = f"""c.id IN (SELECT b.change_id FROM digest_backlog b WHERE b.topic = :topic) AND {TOPIC_CHANGES}"""


def insert_changes(conn: sqlite3.Connection, rows: Iterable[tuple]) -> None:
    """Append change rows: ``(pull_id, topic, nct_id, field, old, new, observed_at, reason, item)``."""
    conn.executemany(INSERT_CHANGE, rows)


def insert_versions(conn: sqlite3.Connection, rows: Iterable[tuple]) -> None:
    """Keep replaced records: ``(nct_id, pull_id, replaced_at, last_update_posted, raw_zlib)``."""
    conn.executemany(INSERT_VERSION, rows)


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


def note_results_due(conn: sqlite3.Connection, pull_id: int, today: str) -> int:
    """Log, as changes observed by pull ``pull_id``, the stored studies whose results are due on ``today``
    (``results_rule``) and that the change log has not called due yet: each study once, whichever pull sees it
    first (a later due date, its primary completion moved, is not news again). Returns how many."""
    from .. import dates

    due = conn.execute(
        "SELECT s.nct_id, s.results_due_date FROM studies s INDEXED BY studies_results "
        "WHERE s.results_state = ? AND s.results_due_date < ? AND NOT EXISTS (SELECT 1 FROM results_due_noted n "
        "WHERE n.nct_id = s.nct_id) ORDER BY s.nct_id",
        [APPLICABLE, due_cutoff(today)]).fetchall()
    now = dates.utc_now()
    insert_changes(conn, [(pull_id, None, nct_id, RESULTS_DUE, None, due_date, now, None, None)
                          for nct_id, due_date in due])
    note_due_quietly(conn, due)
    return len(due)


def note_due_quietly(conn: sqlite3.Connection, due: Iterable[tuple[str, str]]) -> None:
    """Note ``(nct_id, due date)`` of studies whose results are due without logging a change: a study new to
    the store is news as a new study, not as results that became due."""
    conn.executemany("INSERT OR REPLACE INTO results_due_noted (nct_id, due_date) VALUES (?, ?)", list(due))
