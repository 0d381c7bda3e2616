"""A record's ``resultsSection`` as rows of AACT's results tables (ctti-clinicaltrials/aact names them and maps
them; its users find their way here). Pure: reads the record through the checks of ``rows._Typed``, which
raise RecordError naming the field of a value of the wrong type.

Each table's rows keep the record's order (``seq`` after ``nct_id``). Groups are named by the record's own
codes (``ctgov_group_code``: FG000, BG000, OG000, EG000); an outcome's rows name it by ``outcome_seq``.
Numbers the API sends as text (a measurement's value, a count of participants) are kept as sent, and also
as a number where the text is a plain decimal (``NUMBER``) or a count (``COUNT``); migration 7 derives the
same rows in SQL, and a test holds the two equal on every recorded record with results.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rows import _Typed

# Results tables: name -> columns after (nct_id, seq).
RESULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "result_groups": ("result_type", "outcome_seq", "ctgov_group_code", "title", "description"),
    "milestones": ("period", "title", "ctgov_group_code", "count", "description", "milestone_description",
                   "count_units"),
    "drop_withdrawals": ("period", "reason", "ctgov_group_code", "count", "reason_comment",
                         "drop_withdraw_comment", "count_units"),
    "baseline_counts": ("ctgov_group_code", "units", "scope", "count"),
    "baseline_measurements": ("measure_seq", "ctgov_group_code", "classification", "category", "title",
                              "description", "units", "param_type", "param_value", "param_value_num",
                              "dispersion_type", "dispersion_value", "dispersion_value_num", "dispersion_lower_limit",
                              "dispersion_upper_limit", "explanation_of_na", "population_description"),
    "outcomes": ("outcome_type", "title", "description", "time_frame", "population", "anticipated_posting_date",
                 "units", "units_analyzed", "dispersion_type", "param_type", "reporting_status"),
    "outcome_counts": ("outcome_seq", "ctgov_group_code", "scope", "units", "count"),
    "outcome_measurements": ("outcome_seq", "ctgov_group_code", "classification", "category", "param_value",
                             "param_value_num", "dispersion_value", "dispersion_value_num", "dispersion_lower_limit",
                             "dispersion_upper_limit", "explanation_of_na"),
    "outcome_analyses": ("outcome_seq", "groups", "non_inferiority_type", "non_inferiority_description",
                         "param_type", "param_value", "dispersion_type", "dispersion_value", "p_value_modifier",
                         "p_value", "p_value_raw", "p_value_description", "ci_n_sides", "ci_percent",
                         "ci_lower_limit", "ci_upper_limit", "ci_upper_limit_na_comment", "method",
                         "method_description", "estimate_description", "groups_description",
                         "other_analysis_description"),
    "reported_events": ("event_type", "ctgov_group_code", "organ_system", "adverse_event_term", "vocab", "assessment",
                        "event_count", "subjects_affected", "subjects_at_risk"),
    "reported_event_totals": ("ctgov_group_code", "event_type", "classification", "subjects_affected",
                              "subjects_at_risk"),
    "result_contacts": ("organization", "name", "phone", "extension", "email"),
}

# The result types of ``result_groups``, as AACT words them, in the order a record gives its modules.
FLOW, BASELINE, OUTCOME, EVENT = "Participant Flow", "Baseline", "Outcome", "Reported Event"
# reported_event_totals: each event group's totals, as (event_type, classification, field prefix).
EVENT_TOTALS = (("serious", "Total, serious adverse events", "serious"),
                ("other", "Total, other adverse events", "other"),
                ("deaths", "Total, all-cause mortality", "deaths"))

# A number sent as text, taken as a number only when it is a plain decimal ("12", "-.5", "30."); anything else
# ("NA", "26,300", "<0.001") stays text only. Migration 7 tests the same in SQL (GLOB), so the two agree.
NUMBER = re.compile(r"-?[0-9]*\.?[0-9]*")
COUNT = re.compile(r"[0-9]{1,18}")


def as_number(text) -> float | None:
    """``text`` as a float when it is a plain finite decimal (``NUMBER``), else None."""
    if not isinstance(text, str) or not NUMBER.fullmatch(text) or not any(ch.isdigit() for ch in text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def as_count(text) -> int | None:
    """``text`` as an int when it is a count of at most 18 digits (``COUNT``), else None."""
    return int(text) if isinstance(text, str) and COUNT.fullmatch(text) else None


def p_value_parts(text: str | None) -> tuple[str | None, float | None]:
    """A p-value as sent ("<0.001", "= 0.04", "0.3") split as AACT splits it: the modifier (what is left
    without digits, points and minus signs) and the number (what is left without ``<``, ``>``, ``=`` and
    spaces)."""
    if text is None:
        return None, None
    modifier = re.sub(r"[0-9.-]", "", text).strip(" ") or None
    return modifier, as_number(re.sub(r"[<> =]", "", text))


def results_rows(t: "_Typed", record: dict) -> dict[str, list[tuple]]:
    """The rows of each results table (``RESULT_COLUMNS``) for one record: empty lists when it has no results."""
    tables: dict[str, list[tuple]] = {name: [] for name in RESULT_COLUMNS}
    results = t.obj(record, "resultsSection", "")
    if not results:
        return tables
    r = "resultsSection"
    flow = t.obj(results, "participantFlowModule", r)
    baseline = t.obj(results, "baselineCharacteristicsModule", r)
    outcomes = t.obj(results, "outcomeMeasuresModule", r)
    events = t.obj(results, "adverseEventsModule", r)
    more = t.obj(results, "moreInfoModule", r)
    groups = tables["result_groups"]

    where = f"{r}.participantFlowModule"
    groups += [_group(t, FLOW, None, g, f"{where}.groups") for g in t.objects(flow, "groups", where)]
    for period in t.objects(flow, "periods", where):
        title = t.text(period, "title", f"{where}.periods")
        for milestone in t.objects(period, "milestones", f"{where}.periods"):
            at = f"{where}.periods.milestones"
            for stats in t.objects(milestone, "achievements", at):
                tables["milestones"].append((
                    title, t.text(milestone, "type", at), t.text(stats, "groupId", f"{at}.achievements"),
                    as_count(t.text(stats, "numSubjects", f"{at}.achievements")),
                    t.text(stats, "comment", f"{at}.achievements"), t.text(milestone, "comment", at),
                    t.text(stats, "numUnits", f"{at}.achievements")))
        for drop in t.objects(period, "dropWithdraws", f"{where}.periods"):
            at = f"{where}.periods.dropWithdraws"
            for stats in t.objects(drop, "reasons", at):
                tables["drop_withdrawals"].append((
                    title, t.text(drop, "type", at), t.text(stats, "groupId", f"{at}.reasons"),
                    as_count(t.text(stats, "numSubjects", f"{at}.reasons")), t.text(stats, "comment", f"{at}.reasons"),
                    t.text(drop, "comment", at), t.text(stats, "numUnits", f"{at}.reasons")))

    where = f"{r}.baselineCharacteristicsModule"
    groups += [_group(t, BASELINE, None, g, f"{where}.groups") for g in t.objects(baseline, "groups", where)]
    for denom in t.objects(baseline, "denoms", where):
        units = t.text(denom, "units", f"{where}.denoms")
        tables["baseline_counts"] += [
            (t.text(c, "groupId", f"{where}.denoms.counts"), units, "overall",
             as_count(t.text(c, "value", f"{where}.denoms.counts")))
            for c in t.objects(denom, "counts", f"{where}.denoms")]
    for measure_seq, measure in enumerate(t.objects(baseline, "measures", where)):
        at = f"{where}.measures"
        about = (t.text(measure, "title", at), t.text(measure, "description", at), t.text(measure, "unitOfMeasure", at),
                 t.text(measure, "paramType", at))
        dispersion = t.text(measure, "dispersionType", at)
        population = t.text(measure, "populationDescription", at)
        for classification, category, m, m_at in _measurements(t, measure, at):
            value, spread = t.text(m, "value", m_at), t.text(m, "spread", m_at)
            tables["baseline_measurements"].append((
                measure_seq, t.text(m, "groupId", m_at), classification, category, *about, value, as_number(value),
                dispersion, spread, as_number(spread), as_number(t.text(m, "lowerLimit", m_at)),
                as_number(t.text(m, "upperLimit", m_at)), t.text(m, "comment", m_at), population))

    where = f"{r}.outcomeMeasuresModule.outcomeMeasures"
    for outcome_seq, outcome in enumerate(t.objects(outcomes, "outcomeMeasures", f"{r}.outcomeMeasuresModule")):
        tables["outcomes"].append((
            t.text(outcome, "type", where), t.text(outcome, "title", where), t.text(outcome, "description", where),
            t.text(outcome, "timeFrame", where), t.text(outcome, "populationDescription", where),
            t.text(outcome, "anticipatedPostingDate", where), t.text(outcome, "unitOfMeasure", where),
            t.text(outcome, "typeUnitsAnalyzed", where), t.text(outcome, "dispersionType", where),
            t.text(outcome, "paramType", where), t.text(outcome, "reportingStatus", where)))
        groups += [_group(t, OUTCOME, outcome_seq, g, f"{where}.groups") for g in t.objects(outcome, "groups", where)]
        for denom in t.objects(outcome, "denoms", where):
            units = t.text(denom, "units", f"{where}.denoms")
            tables["outcome_counts"] += [
                (outcome_seq, t.text(c, "groupId", f"{where}.denoms.counts"), "Measure", units,
                 as_count(t.text(c, "value", f"{where}.denoms.counts")))
                for c in t.objects(denom, "counts", f"{where}.denoms")]
        for classification, category, m, m_at in _measurements(t, outcome, where):
            value, spread = t.text(m, "value", m_at), t.text(m, "spread", m_at)
            tables["outcome_measurements"].append((
                outcome_seq, t.text(m, "groupId", m_at), classification, category, value, as_number(value), spread,
                as_number(spread), as_number(t.text(m, "lowerLimit", m_at)), as_number(t.text(m, "upperLimit", m_at)),
                t.text(m, "comment", m_at)))
        for analysis in t.objects(outcome, "analyses", where):
            at = f"{where}.analyses"
            group_ids = t.texts(analysis, "groupIds", at)
            p_value = t.text(analysis, "pValue", at)
            tables["outcome_analyses"].append((
                outcome_seq, ",".join(group_ids) if group_ids else None,
                t.text(analysis, "nonInferiorityType", at), t.text(analysis, "nonInferiorityComment", at),
                t.text(analysis, "paramType", at), t.text(analysis, "paramValue", at),
                t.text(analysis, "dispersionType", at), t.text(analysis, "dispersionValue", at),
                *p_value_parts(p_value), p_value, t.text(analysis, "pValueComment", at),
                t.text(analysis, "ciNumSides", at), as_number(t.text(analysis, "ciPctValue", at)),
                as_number(t.text(analysis, "ciLowerLimit", at)), as_number(t.text(analysis, "ciUpperLimit", at)),
                t.text(analysis, "ciUpperLimitComment", at), t.text(analysis, "statisticalMethod", at),
                t.text(analysis, "statisticalComment", at), t.text(analysis, "estimateComment", at),
                t.text(analysis, "groupDescription", at), t.text(analysis, "otherAnalysisDescription", at)))

    where = f"{r}.adverseEventsModule"
    event_groups = t.objects(events, "eventGroups", where)
    groups += [_group(t, EVENT, None, g, f"{where}.eventGroups") for g in event_groups]
    for event_type, key in (("serious", "seriousEvents"), ("other", "otherEvents")):
        at = f"{where}.{key}"
        for event in t.objects(events, key, where):
            about = (t.text(event, "organSystem", at), t.text(event, "term", at), t.text(event, "sourceVocabulary", at),
                     t.text(event, "assessmentType", at))
            tables["reported_events"] += [
                (event_type, t.text(s, "groupId", f"{at}.stats"), *about,
                 t.integer(s, "numEvents", f"{at}.stats"), t.integer(s, "numAffected", f"{at}.stats"),
                 t.integer(s, "numAtRisk", f"{at}.stats"))
                for s in t.objects(event, "stats", at)]
    for group in event_groups:
        at = f"{where}.eventGroups"
        for event_type, classification, prefix in EVENT_TOTALS:
            affected = t.integer(group, f"{prefix}NumAffected", at)
            at_risk = t.integer(group, f"{prefix}NumAtRisk", at)
            if affected is not None or at_risk is not None:
                tables["reported_event_totals"].append(
                    (t.text(group, "id", at), event_type, classification, affected, at_risk))

    where = f"{r}.moreInfoModule"
    if more.get("pointOfContact") is not None:
        contact = t.obj(more, "pointOfContact", where)
        at = f"{where}.pointOfContact"
        tables["result_contacts"].append((t.text(contact, "organization", at), t.text(contact, "title", at),
                                          t.text(contact, "phone", at), t.text(contact, "phoneExt", at),
                                          t.text(contact, "email", at)))
    return tables


def _group(t: "_Typed", result_type: str, outcome_seq: int | None, group: dict, where: str) -> tuple:
    return (result_type, outcome_seq, t.text(group, "id", where), t.text(group, "title", where),
            t.text(group, "description", where))


def _measurements(t: "_Typed", measure: dict, where: str):
    """Each measurement of a baseline or outcome measure, with its class's and category's titles, in order."""
    for measure_class in t.objects(measure, "classes", where):
        classification = t.text(measure_class, "title", f"{where}.classes")
        for category in t.objects(measure_class, "categories", f"{where}.classes"):
            title = t.text(category, "title", f"{where}.classes.categories")
            m_at = f"{where}.classes.categories.measurements"
            for measurement in t.objects(category, "measurements", f"{where}.classes.categories"):
                yield classification, title, measurement, m_at
