"""A topic's studies cross-tabulated: overall status against one other dimension."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable

from ..dates import utc_today
from ..defaults import DEFAULT_TOPIC_NAME
from ..results_rule import CATEGORIES
from ..statuses import status_sort_key
from ..vocab import PHASE_LABELS
from .asof import topic_as_of
from .results import category_sql, due_cutoff

# The topic's members in NCT id order, with the status and one-valued dimensions from the covering index
# ``studies_facts`` (a study's row is large: it holds the record), never from the rows themselves.
_STUDIES = """st AS (
    SELECT m.nct_id, coalesce(s.overall_status, 'NONE') AS status, s.study_type, s.lead_sponsor_class, s.phases,
           substr(s.start_date_sort, 1, 4) AS start_year, s.lead_sponsor, s.results_state, s.results_due_date
    FROM topic_studies m JOIN studies s INDEXED BY studies_facts ON s.nct_id = m.nct_id
    WHERE m.topic = :topic AND m.present = 1)"""
# dimension -> (whether a study can have several values, SQL giving each (value, status) of the topic's studies
# once per study, with a NULL value for a study that has none). ``breakdown`` counts the pairs itself: SQLite's
# GROUP BY sorts them all in a temporary b-tree first, which took 1.3 to 1.9 times as long at 560,000 studies.
DIMENSIONS: dict[str, tuple[bool, str]] = {
    # phases are stored joined by ', '; as JSON text (json_quote) the joins split it into a valid JSON list
    # whatever the phases hold (a '"' or '\\' would end or escape a string put in quotes as it is)
    "phase": (True, """
        SELECT trim(j.value), st.status FROM st, json_each('[' || replace(json_quote(st.phases), ', ', '","') || ']') j
        WHERE st.phases IS NOT NULL
        UNION ALL SELECT NULL, status FROM st WHERE phases IS NULL"""),
    "study-type": (False, "SELECT study_type, status FROM st"),
    "sponsor-class": (False, "SELECT lead_sponsor_class, status FROM st"),
    "sponsor": (False, "SELECT lead_sponsor, status FROM st"),
    "start-year": (False, "SELECT start_year, status FROM st"),
    "country": (True, "SELECT c.country, st.status FROM st LEFT JOIN study_countries c ON c.nct_id = st.nct_id"),
    # one condition in several spellings ("Low Back Pain", "Low back pain") is one value: its lower case (SQLite's
    # lower(), which folds ASCII letters only). Rows are (nct_id, lower case, spelling, status), each study's
    # together (NCT id order is the join's own: no sort); ``_count_conditions`` counts a study once in each.
    "condition": (True, """
        SELECT st.nct_id, lower(c.condition), c.condition, st.status FROM st
        LEFT JOIN conditions c ON c.nct_id = st.nct_id ORDER BY st.nct_id"""),
    # whether results are posted, under review, delayed, due, not yet due or not owed, on the day of :due_cutoff
    "results": (False, f"SELECT {category_sql('st')}, status FROM st"),
}
_PHASE_ORDER = list(PHASE_LABELS)


def breakdown_sql(by: str, topic: str = DEFAULT_TOPIC_NAME, today: str | None = None) -> tuple[str, dict]:
    """The SQL and parameters giving the rows ``breakdown`` counts for ``by`` (``DIMENSIONS``), with results
    that are due judged on ``today``, by default the current UTC day."""
    return (f"WITH {_STUDIES} {DIMENSIONS[by][1]}",
            {"topic": topic, "due_cutoff": due_cutoff(today or utc_today())})


def breakdown(conn: sqlite3.Connection, topic: str, by: str, as_of: str | None = None, today: str | None = None) -> dict:
    """The topic's studies counted by ``by`` (a key of DIMENSIONS) and overall status:
    ``{"topic", "by", "multi", "total", "rows": [{"value", "total", "statuses": {status: n}}]}``.

    ``value`` is the API's own value ("PHASE2", "INDUSTRY", "2019", "United States"; null when a study has
    none), or for ``results`` one of ``results_rule.CATEGORIES`` on ``today`` (by default the current UTC day).
    Where a study can have several values (``multi``), it is counted once in each of them; ``total`` counts
    each study once. Rows: phases, years and results categories in order, the rest most studies first. With
    ``as_of`` (``YYYY-MM-DDTHH:MM:SSZ``): the topic as it stood after its last complete pull at or before that
    moment, rebuilt from the stored versions (results due as on the day of that pull), with that pull's
    ``as_of`` (its finish time) added; NotFound when there was none.
    """
    if as_of is not None:
        with topic_as_of(conn, topic, as_of) as pull:
            return {**breakdown(conn, topic, by, today=pull["finished_at"][:10]), "as_of": pull["finished_at"]}
    multi = DIMENSIONS[by][0]
    pairs = conn.execute(*breakdown_sql(by, topic, today))
    cells, spellings = _count_conditions(pairs) if by == "condition" else (Counter(pairs), None)
    rows: dict = {}
    for (value, status), count in cells.items():
        row = rows.setdefault(value, {"value": value, "total": 0, "statuses": {}})
        row["statuses"][status] = count
        row["total"] += count
    for row in rows.values():
        row["statuses"] = {s: row["statuses"][s] for s in sorted(row["statuses"], key=status_sort_key)}
    if spellings is not None:
        spelling = _most_frequent_spellings(spellings)
        for row in rows.values():
            row["value"] = spelling.get(row["value"], row["value"])
    if multi:
        total = conn.execute(f"WITH {_STUDIES} SELECT count(*) FROM st", {"topic": topic}).fetchone()[0]
    else:  # a pair per study
        total = sum(cells.values())
    return {"topic": topic, "by": by, "multi": multi, "total": total, "rows": sorted(rows.values(), key=_order(by))}


def _count_conditions(rows: Iterable[tuple]) -> tuple[Counter, Counter]:
    """From (nct_id, lower case, spelling, status) rows, each study's together: in how many studies each
    (lower case, status) stands, and in how many studies each (lower case, spelling) is written."""
    cells: Counter = Counter()
    spellings: Counter = Counter()
    study = None
    for nct_id, key, spelling, status in rows:
        if nct_id != study:
            study, keys_seen, spellings_seen = nct_id, set(), set()
        if key not in keys_seen:
            keys_seen.add(key)
            cells[key, status] += 1
        if spelling is not None and spelling not in spellings_seen:
            spellings_seen.add(spelling)
            spellings[key, spelling] += 1
    return cells, spellings


def _most_frequent_spellings(spellings: Counter) -> dict[str, str]:
    """Each condition's lower case -> the spelling most of the topic's studies use (ties: one not in capitals
    throughout, then the first in alphabetical order)."""
    best: dict[str, tuple] = {}
    for (key, spelling), count in spellings.items():
        rank = (-count, spelling.isupper(), spelling)
        if key not in best or rank < best[key]:
            best[key] = rank
    return {key: rank[2] for key, rank in best.items()}


def _order(by: str):
    if by == "phase":
        return lambda row: (row["value"] is None, _PHASE_ORDER.index(row["value"]) if row["value"] in _PHASE_ORDER
                            else len(_PHASE_ORDER), row["value"] or "")
    if by == "results":
        return lambda row: CATEGORIES.index(row["value"]) if row["value"] in CATEGORIES else len(CATEGORIES)
    if by == "start-year":
        return lambda row: (row["value"] is None, row["value"] or "")
    return lambda row: (row["value"] is None, -row["total"], (row["value"] or "").lower(), row["value"] or "")
