"""A topic's studies cross-tabulated: overall status against one other dimension."""

from __future__ import annotations

import sqlite3

from ..statuses import status_sort_key
from ..vocab import PHASE_LABELS

# dimension -> (whether a study can have several values, SQL giving (nct_id, value) for the topic's studies)
_MEMBERS = "SELECT nct_id FROM topic_studies WHERE topic = :topic AND present = 1"
DIMENSIONS: dict[str, tuple[bool, str]] = {
    "phase": (True, f"""
        SELECT s.nct_id, trim(j.value) FROM studies s, json_each('["' || replace(s.phases, ', ', '","') || '"]') j
        WHERE s.phases IS NOT NULL AND s.nct_id IN ({_MEMBERS})
        UNION ALL SELECT s.nct_id, NULL FROM studies s WHERE s.phases IS NULL AND s.nct_id IN ({_MEMBERS})"""),
    "study-type": (False, f"SELECT nct_id, study_type FROM studies WHERE nct_id IN ({_MEMBERS})"),
    "sponsor-class": (False, f"SELECT nct_id, lead_sponsor_class FROM studies WHERE nct_id IN ({_MEMBERS})"),
    "sponsor": (False, f"SELECT nct_id, lead_sponsor FROM studies WHERE nct_id IN ({_MEMBERS})"),
    "start-year": (False, f"SELECT nct_id, substr(start_date_sort, 1, 4) FROM studies WHERE nct_id IN ({_MEMBERS})"),
    "country": (True, f"""
        SELECT c.nct_id, c.country FROM study_countries c WHERE c.nct_id IN ({_MEMBERS})
        UNION ALL SELECT s.nct_id, NULL FROM studies s WHERE s.nct_id IN ({_MEMBERS})
            AND NOT EXISTS (SELECT 1 FROM study_countries c WHERE c.nct_id = s.nct_id)"""),
    "condition": (True, f"""
        SELECT DISTINCT c.nct_id, c.condition FROM conditions c WHERE c.nct_id IN ({_MEMBERS})
        UNION ALL SELECT s.nct_id, NULL FROM studies s WHERE s.nct_id IN ({_MEMBERS})
            AND NOT EXISTS (SELECT 1 FROM conditions c WHERE c.nct_id = s.nct_id)"""),
}
_PHASE_ORDER = list(PHASE_LABELS)


def breakdown_sql(by: str, topic: str = "stem-cell-spine") -> tuple[str, dict]:
    """The SQL and parameters counting the topic's studies by ``by``'s value and overall status."""
    pairs = DIMENSIONS[by][1]
    return (f"WITH v (nct_id, value) AS ({pairs}) SELECT v.value, coalesce(s.overall_status, 'NONE'), "
            f"count(DISTINCT s.nct_id) FROM v JOIN studies s ON s.nct_id = v.nct_id GROUP BY 1, 2", {"topic": topic})


def breakdown(conn: sqlite3.Connection, topic: str, by: str) -> dict:
    """The topic's studies counted by ``by`` (a key of DIMENSIONS) and overall status:
    ``{"topic", "by", "multi", "total", "rows": [{"value", "total", "statuses": {status: n}}]}``.

    ``value`` is the API's own value ("PHASE2", "INDUSTRY", "2019", "United States"; null when a study has
    none). Where a study can have several values (``multi``), it is counted once in each of them; ``total``
    counts each study once. Rows: phases and years in order, the rest most studies first.
    """
    multi = DIMENSIONS[by][0]
    cells = conn.execute(*breakdown_sql(by, topic)).fetchall()
    rows: dict = {}
    for value, status, count in cells:
        row = rows.setdefault(value, {"value": value, "total": 0, "statuses": {}})
        row["statuses"][status] = count
        row["total"] += count
    for row in rows.values():
        row["statuses"] = {s: row["statuses"][s] for s in sorted(row["statuses"], key=status_sort_key)}
    total = conn.execute(f"SELECT count(*) FROM studies WHERE nct_id IN ({_MEMBERS})", {"topic": topic}).fetchone()[0]
    return {"topic": topic, "by": by, "multi": multi, "total": total, "rows": sorted(rows.values(), key=_order(by))}


def _order(by: str):
    if by == "phase":
        return lambda row: (row["value"] is None, _PHASE_ORDER.index(row["value"]) if row["value"] in _PHASE_ORDER
                            else len(_PHASE_ORDER), row["value"] or "")
    if by == "start-year":
        return lambda row: (row["value"] is None, row["value"] or "")
    return lambda row: (row["value"] is None, -row["total"], (row["value"] or "").lower())
