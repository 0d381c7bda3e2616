"""What finished studies found (their results tables), and which studies owe results (``results_rule``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ..dates import utc_today
from ..errors import NotFound
from ..ids import study_url
from ..results_rule import APPLICABLE, DUE, NOT_APPLICABLE, NOT_YET_DUE, category, days_overdue, due_cutoff
from ..transform import RESULT_COLUMNS, StudyRows
from .common import dicts


__all__ = ["category_sql", "due_cutoff", "export_results", "results_of_rows", "results_of_tables", "study_results"]


def category_sql(alias: str = "s") -> str:
    """SQL: the ``--by results`` category of the study row ``alias`` on the day ``:due_cutoff`` stands for."""
    return (f"CASE WHEN {alias}.results_state = '{APPLICABLE}' THEN CASE WHEN {alias}.results_due_date < :due_cutoff "
            f"THEN '{DUE}' ELSE '{NOT_YET_DUE}' END ELSE coalesce({alias}.results_state, '{NOT_APPLICABLE}') END")


def results_of_tables(nct_id: str, tables: dict[str, list[dict]], limitations: str | None = None) -> dict:
    """One study's results from its rows of each results table (dicts of ``RESULT_COLUMNS`` and ``seq``),
    arranged as a reader goes through them: the groups, the participant flow, the baseline, each outcome
    measure with its groups, counts, measurements and analyses, the adverse events and their totals, the
    limitations and the point of contact. ``posted`` is False when the record carries no results."""
    outcomes = [{**row, "groups": [], "counts": [], "measurements": [], "analyses": []}
                for row in tables["outcomes"]]
    for table, key in (("outcome_counts", "counts"), ("outcome_measurements", "measurements"),
                       ("outcome_analyses", "analyses")):
        for row in tables[table]:
            outcomes[row["outcome_seq"]][key].append(row)
    for row in tables["result_groups"]:
        if row["outcome_seq"] is not None:
            outcomes[row["outcome_seq"]]["groups"].append(row)
    contacts = tables["result_contacts"]
    return {
        "nct_id": nct_id,
        "url": f"{study_url(nct_id)}?tab=results",
        "posted": any(tables[table] for table in RESULT_COLUMNS),
        "groups": [row for row in tables["result_groups"] if row["outcome_seq"] is None],
        "participant_flow": {"milestones": tables["milestones"], "drop_withdrawals": tables["drop_withdrawals"]},
        "baseline": {"counts": tables["baseline_counts"], "measurements": tables["baseline_measurements"]},
        "outcomes": outcomes,
        "adverse_events": {"totals": tables["reported_event_totals"], "events": tables["reported_events"]},
        "limitations_and_caveats": limitations,
        "point_of_contact": contacts[0] if contacts else None,
    }


def study_results(conn: sqlite3.Connection, nct_id: str) -> dict:
    """The results of one stored study (``results_of_tables``), with its results state; NotFound if the study
    is not stored."""
    row = conn.execute("SELECT limitations_and_caveats, results_first_posted, results_state, results_due_date, "
                       "fdaaa801_violation FROM studies WHERE nct_id = ?", [nct_id]).fetchone()
    if row is None:
        raise NotFound(f"{nct_id} is not in the database (pull a topic that holds it, or `trialsync import` it)")
    tables = {table: dicts(conn.execute(f"SELECT seq, {', '.join(columns)} FROM {table} WHERE nct_id = ? ORDER BY seq",
                                        [nct_id]))
              for table, columns in RESULT_COLUMNS.items()}
    return {**results_of_tables(nct_id, tables, row[0]), **_obligation(*row[1:])}


def results_of_rows(rows: StudyRows) -> dict:
    """The results of a study that is not stored (``show --fetch``), from its flattened rows."""
    tables = {table: [{"seq": seq, **dict(zip(columns, values))} for seq, values in enumerate(rows.results[table])]
              for table, columns in RESULT_COLUMNS.items()}
    return {**results_of_tables(rows.nct_id, tables, rows.value("limitations_and_caveats")),
            **_obligation(rows.value("results_first_posted"), rows.value("results_state"),
                          rows.value("results_due_date"), rows.value("fdaaa801_violation"))}


def _obligation(first_posted, state, due_date, violation, today: str | None = None) -> dict:
    today = today or utc_today()
    found = category(state, due_date, today)
    return {"results_first_posted": first_posted, "results_category": found, "results_due_date": due_date,
            "days_overdue": days_overdue(due_date, today) if found == DUE else None,
            "fdaaa801_violation": None if violation is None else bool(violation)}


def export_results(conn: sqlite3.Connection, topic: str) -> Iterator[tuple[str, list[str], Iterator[tuple]]]:
    """Each results table's rows of the topic's present studies, by NCT id and ``seq``: (table, its columns
    with ``nct_id`` and ``seq`` first, its rows)."""
    for table, columns in RESULT_COLUMNS.items():
        names = ["nct_id", "seq", *columns]
        cursor = conn.execute(
            f"SELECT {', '.join('r.' + name for name in names)} FROM {table} r WHERE r.nct_id IN "
            "(SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1) ORDER BY r.nct_id, r.seq", [topic])
        yield table, names, cursor

