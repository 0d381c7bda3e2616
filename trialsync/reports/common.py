"""What every read-only query shares: rows as dicts, a topic's own pulls, its members, moments in time."""

from __future__ import annotations

import re
import sqlite3

from ..dates import iso_day
from ..defaults import COMPLETE_OUTCOMES
from ..errors import UsageError



def dicts(cursor) -> list[dict]:
    """The cursor's rows as dicts keyed by column name."""
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def topic_epoch(conn: sqlite3.Connection, topic: str) -> int:
    """The pulls with a larger id belong to ``topic`` as it stands (0 when it is not stored)."""
    row = conn.execute("SELECT epoch FROM topics WHERE name = ?", [topic]).fetchone()
    return row[0] if row else 0


def last_pull(conn: sqlite3.Connection, topic: str, outcomes: tuple[str, ...] = COMPLETE_OUTCOMES, before: int | None = None,
              finished_by: str | None = None) -> dict | None:
    """The topic's newest pull or import with one of ``outcomes``, before pull ``before`` or finished at or
    before the moment ``finished_by``, as a dict; None when there is none."""
    marks = ", ".join("?" for _ in outcomes)
    sql = f"SELECT * FROM pulls WHERE topic = ? AND id > ? AND outcome IN ({marks})"
    params: list = [topic, topic_epoch(conn, topic), *outcomes]
    if before is not None:
        sql += " AND id < ?"
        params.append(before)
    if finished_by is not None:
        sql += " AND finished_at <= ?"
        params.append(finished_by)
    rows = dicts(conn.execute(sql + " ORDER BY id DESC LIMIT 1", params))
    return rows[0] if rows else None


def write_mark(conn: sqlite3.Connection) -> str:
    """A mark that differs once a pull or import has written since it was read (its row counts each page it
    saves and each study that left, in the same transaction, and holds its outcome once it ends) or a topic
    was added or removed, and that stays the same while nothing is written: whether two reads saw the same
    stored studies and topics."""
    pull = conn.execute("SELECT id, outcome, received, left_topic FROM pulls ORDER BY id DESC LIMIT 1").fetchone()
    topics = conn.execute("SELECT count(*), max(created_at) FROM topics").fetchone()
    return "/".join(str(value) for value in (*(pull or (0,)), *topics))


_MOMENT = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?Z?)?")


def read_moment(text: str, option: str = "--as-of") -> str:
    """A date (the end of that day) or a date and time, in UTC, as ``YYYY-MM-DDTHH:MM:SSZ``; else UsageError."""
    match = _MOMENT.fullmatch((text or "").strip())
    if not match or not iso_day(match.group(1)):
        raise UsageError(f"{option} takes a date (YYYY-MM-DD) or a date and time in UTC (YYYY-MM-DDTHH:MM[:SS]), "
                         f"not {text!r}")
    day, hour, minute, second = match.groups()
    if hour is None:
        return f"{day}T23:59:59Z"
    if int(hour) > 23 or int(minute) > 59 or int(second or 0) > 59:
        raise UsageError(f"{option}: {text!r} is not a time of day")
    return f"{day}T{hour}:{minute}:{second or '00'}Z"


def read_date(text: str, option: str) -> str:
    """A date given as YYYY-MM-DD (a real day), as given; else UsageError naming ``option``."""
    if iso_day(text) is None:
        raise UsageError(f"{option} takes a date as YYYY-MM-DD, not {text!r}")
    return text


def read_day(text: str, option: str) -> str:
    """A date given as YYYY, YYYY-MM or YYYY-MM-DD, as the first day it covers (``YYYY-MM-DD``)."""
    from ..dates import sortable_date

    day = sortable_date((text or "").strip())
    if day is None:
        raise UsageError(f"{option} takes a date as YYYY, YYYY-MM or YYYY-MM-DD, not {text!r}")
    return day
