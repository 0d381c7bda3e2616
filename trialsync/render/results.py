"""A study's results for a person (``show``): who took part and who dropped out, what each outcome measured in
each group, what harmed them, the limitations; and whether results are owed."""

from __future__ import annotations

import textwrap

from ..dates import day_after
from ..results_rule import CATEGORY_LABELS, DUE, GRACE_DAYS, NOT_APPLICABLE, NOT_YET_DUE, POSTED, grace_end
from ..vocab import plural
from .visible import visible

SHORT_LINES = 12  # measurements of one outcome shown without --results
_DISPERSIONS = {"STANDARD_DEVIATION": "SD", "STANDARD_ERROR": "SE", "INTER_QUARTILE_RANGE": "IQR",
                "FULL_RANGE": "range", "GEOMETRIC_COEFFICIENT_OF_VARIATION": "CV"}


def obligation_line(results: dict) -> str | None:
    """Whether the study owes results, in words ("due since 2024-05-01 (217 days overdue) ..."), with the
    registry's own FDAAA 801 flag; None when there is nothing to say (posted, or not owed and not flagged)."""
    category = results.get("results_category")
    flag = "; the registry flags an FDAAA 801 violation" if results.get("fdaaa801_violation") else ""
    if category == DUE:
        return (f"due since {results['results_due_date']} ({results['days_overdue']} days overdue) by trialsync's "
                f"reading of FDAAA 801, not a legal determination{flag}")
    if category in (None, POSTED, NOT_APPLICABLE) and not flag:
        return None
    due = ""
    if results.get("results_due_date"):
        due_date = results["results_due_date"]
        due = f", due {due_date}"
        if category == NOT_YET_DUE:  # a due date past may still be within the grace
            due += f" (counted overdue from {day_after(grace_end(due_date))}, after {GRACE_DAYS} days of grace)"
    return f"{CATEGORY_LABELS.get(category, category or '').lower()}{due}{flag}"


def render_results(results: dict, width: int, everything: bool = False) -> str:
    """The results section of ``show``: participants started and completed per group, each primary outcome
    (every outcome with ``everything``) with its values per group and unit, serious adverse events per group
    (every event with ``everything``), the limitations; '' when the study has none posted."""
    if not results.get("posted"):
        return ""
    posted = f" (first posted {results['results_first_posted']})" if results.get("results_first_posted") else ""
    lines = [f"Results{posted}: {results['url']}"]
    flow = _participants(results)
    if flow:
        lines += ["  Participants:"] + [f"    {line}" for line in flow]
    outcomes = [o for o in results["outcomes"] if everything or o.get("outcome_type") == "PRIMARY"]
    for outcome in outcomes:
        lines += _outcome(outcome, everything)
    hidden = len(results["outcomes"]) - len(outcomes)
    if hidden:
        lines.append(f"  ... and {plural(hidden, 'more outcome measure')}: `trialsync show {results['nct_id']} --results`")
    lines += _adverse_events(results, everything)
    if results.get("limitations_and_caveats"):
        lines += ["  Limitations and caveats:", f"    {results['limitations_and_caveats']}"]
    contact = results.get("point_of_contact")
    if everything and contact:
        lines.append("  Point of contact: " + " · ".join(
            str(contact[key]) for key in ("name", "organization", "phone", "email") if contact.get(key)))
    return "\n".join(_wrap(line, width) for line in lines)


def _wrap(line: str, width: int) -> str:
    text = visible(line)
    indent = " " * (len(text) - len(text.lstrip()) + 2)
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False)) or text


def _group_titles(results: dict, result_type: str) -> dict[str, str]:
    return {g["ctgov_group_code"]: g["title"] or g["ctgov_group_code"] for g in results["groups"]
            if g["result_type"] == result_type}


def _participants(results: dict) -> list[str]:
    """Per flow group: how many started (the first period) and completed (the last period), and why the others
    left (every period's reasons, summed)."""
    milestones = results["participant_flow"]["milestones"]
    if not milestones:
        return []
    periods = list(dict.fromkeys(m["period"] for m in milestones))
    titles = _group_titles(results, "Participant Flow")
    started = {m["ctgov_group_code"]: m["count"] for m in milestones
               if m["period"] == periods[0] and (m["title"] or "").upper() == "STARTED"}
    completed = {m["ctgov_group_code"]: m["count"] for m in milestones
                 if m["period"] == periods[-1] and (m["title"] or "").upper() == "COMPLETED"}
    reasons: dict[str, dict[str, int]] = {}
    for drop in results["participant_flow"]["drop_withdrawals"]:
        if drop["count"]:
            by_reason = reasons.setdefault(drop["ctgov_group_code"], {})
            by_reason[drop["reason"] or "not given"] = by_reason.get(drop["reason"] or "not given", 0) + drop["count"]
    lines = []
    for code in dict.fromkeys([*started, *completed]):
        parts = [f"{_count(started.get(code))} started", f"{_count(completed.get(code))} completed"]
        left = reasons.get(code)
        why = f"; left: {', '.join(f'{reason} {count}' for reason, count in left.items())}" if left else ""
        lines.append(f"{titles.get(code, code)}: {', '.join(parts)}{why}")
    return lines


def _count(value) -> str:
    return "?" if value is None else str(value)


def _outcome(outcome: dict, everything: bool) -> list[str]:
    kind = (outcome.get("outcome_type") or "").replace("_", " ").lower()
    when = f" ({outcome['time_frame']})" if outcome.get("time_frame") else ""
    lines = [f"  {kind.capitalize() or 'Outcome'} outcome: {outcome.get('title') or 'untitled'}{when}"]
    titles = {g["ctgov_group_code"]: g["title"] or g["ctgov_group_code"] for g in outcome["groups"]}
    analysed = {c["ctgov_group_code"]: c["count"] for c in outcome["counts"]}
    measurements = outcome["measurements"]
    shown = measurements if everything else measurements[:SHORT_LINES]
    for m in shown:
        label = " / ".join(p for p in (m.get("classification"), m.get("category")) if p)
        group = titles.get(m["ctgov_group_code"], m["ctgov_group_code"])
        number = analysed.get(m["ctgov_group_code"])
        of = f" (n={number})" if number is not None else ""
        lines.append(f"    {group}{of}{': ' + label if label else ''}: {_value(m, outcome)}")
    if len(measurements) > len(shown):
        lines.append(f"    ... and {len(measurements) - len(shown)} more values")
    if not measurements and outcome.get("reporting_status") and outcome["reporting_status"] != "POSTED":
        lines.append("    " + outcome["reporting_status"].replace("_", " ").lower().capitalize()
                     + (f", expected {outcome['anticipated_posting_date']}" if outcome.get("anticipated_posting_date")
                        else ""))
    if everything:
        for analysis in outcome["analyses"]:
            p_value = analysis.get("p_value_raw")
            method = analysis.get("method")
            groups = analysis.get("groups") or ""
            names = ", ".join(titles.get(code, code) for code in groups.split(",") if code)
            text = "; ".join(p for p in (f"p {p_value}" if p_value else "", method or "",
                                         f"{names}" if names else "") if p)
            if text:
                lines.append(f"    Analysis: {text}")
    return lines


def _value(measurement: dict, outcome: dict) -> str:
    value = measurement.get("param_value")
    if value is None:
        return measurement.get("explanation_of_na") or "not given"
    units = f" {outcome['units']}" if outcome.get("units") else ""
    spread = ""
    if measurement.get("dispersion_value") is not None:
        kind = _DISPERSIONS.get(outcome.get("dispersion_type") or "", outcome.get("dispersion_type") or "")
        spread = f" ({kind} {measurement['dispersion_value']})" if kind else f" (± {measurement['dispersion_value']})"
    elif measurement.get("dispersion_lower_limit") is not None or measurement.get("dispersion_upper_limit") is not None:
        low, high = measurement.get("dispersion_lower_limit"), measurement.get("dispersion_upper_limit")
        spread = f" ({_number(low)} to {_number(high)})"
    return f"{value}{units}{spread}"


def _number(value) -> str:
    return "?" if value is None else f"{value:g}"


def _adverse_events(results: dict, everything: bool) -> list[str]:
    titles = _group_titles(results, "Reported Event")
    lines = []
    kinds = ("serious", "other", "deaths") if everything else ("serious",)
    words = {"serious": "Serious adverse events", "other": "Other adverse events", "deaths": "Deaths (all causes)"}
    for kind in kinds:
        totals = [t for t in results["adverse_events"]["totals"] if t["event_type"] == kind]
        if not totals:
            continue
        lines.append(f"  {words[kind]}:")
        for total in totals:
            affected, at_risk = total["subjects_affected"], total["subjects_at_risk"]
            share = f" ({100 * affected / at_risk:.1f}%)" if affected is not None and at_risk else ""
            lines.append(f"    {titles.get(total['ctgov_group_code'], total['ctgov_group_code'])}: "
                         f"{_count(affected)} of {_count(at_risk)}{share}")
        if everything and kind != "deaths":
            events: dict[tuple, list[str]] = {}
            for event in results["adverse_events"]["events"]:
                if event["event_type"] == kind and event["subjects_affected"]:
                    key = (event["organ_system"] or "", event["adverse_event_term"] or "")
                    group = titles.get(event["ctgov_group_code"], event["ctgov_group_code"])
                    events.setdefault(key, []).append(
                        f"{group} {event['subjects_affected']}/{_count(event['subjects_at_risk'])}")
            for (organ, term), counts in events.items():
                lines.append(f"      {term}" + (f" [{organ}]" if organ else "") + f": {', '.join(counts)}")
    return lines
