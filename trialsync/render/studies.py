"""Studies for a person: one study in full (``show``), and lists of studies (``list``)."""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from collections.abc import Sequence

from ..ids import study_url
from ..places import in_units
from ..statuses import status_label
from ..vocab import DATE_TYPE_LABELS, PHASE_LABELS, SEX_LABELS, SPONSOR_CLASS_LABELS, STUDY_TYPE_LABELS, label, phases_label
from .tables import Column, rows_as, sentence, terminal_width
from .visible import visible, visible_lines
from .results import obligation_line, render_results
from .words import describe_change

LIST_JSON_KEYS = ("nct_id", "brief_title", "overall_status", "last_known_status", "phases", "study_type", "start_date",
                  "last_update_posted", "enrollment_count", "lead_sponsor", "lead_sponsor_class", "has_results", "url")


# What list --results-due adds to each study: its due date, days overdue and the registry's FDAAA 801 flag.
DUE_KEYS = ("results_due_date", "days_overdue", "fdaaa801_violation")

_PHASE_WORDS = {"EARLY_PHASE1": "Early 1", "PHASE1": "1", "PHASE2": "2", "PHASE3": "3", "PHASE4": "4", "NA": "N/A"}


def _short_phase(phases: Sequence[str]) -> str:
    return "/".join(_PHASE_WORDS.get(p, p) for p in phases) if phases else ""


def _site_place(site: dict | None) -> str:
    """"Paducah, KY": a site's city with its state (a US state as its code), or its country when it has none."""
    if not site:
        return ""
    from ..places import us_state_code

    region = site.get("state")
    if region and site.get("country") == "United States":
        region = us_state_code(region) or region
    return ", ".join(p for p in (site.get("city"), region or site.get("country")) if p)


def _nearest_site_cell(site: dict | None) -> str:
    """"Recruiting · Paducah, KY": the nearest counting site's status first, so that shortening keeps it."""
    if not site:
        return ""
    status = status_label(site["status"]) if site.get("status") else "Status not given"
    return f"{status} · {_site_place(site) or site.get('facility') or 'unnamed site'}"


_SITE_CSV_KEYS = ("facility", "city", "state", "country", "status")


def study_list_data(rows: Sequence[dict], units: str = "km") -> list[dict]:
    """Studies as ``list --format json`` gives them: ``LIST_JSON_KEYS`` (the API's own values and each study's
    URL), with ``DUE_KEYS`` for rows of results that are due, and ``distance_km`` and ``nearest_site`` (and the
    distance in ``units`` too, when they are not km) for rows measured from a place."""
    near = bool(rows) and "nearest_site" in rows[0]
    due = bool(rows) and "days_overdue" in rows[0]
    keys = LIST_JSON_KEYS + (DUE_KEYS if due else ()) + (("distance_km", "nearest_site") if near else ())
    data = [{k: row.get(k) for k in keys} for row in rows]
    if near and units != "km":
        for item in data:
            item[f"distance_{units}"] = _rounded(in_units(item["distance_km"], units))
    return data


def render_study_list(rows: Sequence[dict], fmt: str, title: str | None = None, units: str = "km") -> list:
    """Studies one a line: NCT id, status, phase, start, title, lead sponsor; with ``--near`` also the distance
    (in ``units``) to each study's nearest counting site and where that site is and its status. JSON and JSON
    lines carry the API's own values, each study's URL, ``distance_km`` and ``nearest_site`` (with its
    contact); CSV flattens the site into ``nearest_site_*`` columns."""
    near = bool(rows) and "nearest_site" in rows[0]
    due = bool(rows) and "days_overdue" in rows[0]
    due_keys = DUE_KEYS if due else ()
    if fmt in ("json", "nl"):
        return rows_as(study_list_data(rows, units), [], fmt)
    if fmt == "csv":
        keys = LIST_JSON_KEYS + due_keys + ((f"distance_{units}",) + tuple(f"nearest_site_{k}" for k in _SITE_CSV_KEYS)
                                            if near else ())
        data = []
        for row in rows:
            item = {k: row.get(k) for k in LIST_JSON_KEYS + due_keys}
            if near:
                site = row.get("nearest_site") or {}
                item[f"distance_{units}"] = _rounded(in_units(row.get("distance_km"), units))
                item.update({f"nearest_site_{k}": site.get(k) for k in _SITE_CSV_KEYS})
            data.append(item)
        return rows_as(data, [Column(k, k) for k in keys], fmt, data=data)
    columns = [Column("nct_id", "NCT ID"),
               Column("overall_status", "Status", show=status_label, drop=3),
               Column("phases", "Phase", show=_short_phase, drop=4),
               Column("start_date", "Start", show=lambda d: (d or "")[:7], drop=5)]
    title_column = Column("brief_title", "Title", flex=True, min_width=20)
    if near:
        # The site comes after the title, so that the title is shortened first and the site keeps its words.
        columns += [Column("distance", units.capitalize(), numeric=True,
                           show=lambda km: "" if km is None else f"{in_units(km, units):.0f}"),
                    title_column,
                    # wide enough for "Recruiting · Chicago, IL" where the terminal allows: phase and start
                    # give way first
                    Column("nearest_site", "Nearest site", show=_nearest_site_cell, flex=True,
                           min_width=24 if terminal_width() >= 80 else 16),
                    Column("lead_sponsor", "Lead sponsor", flex=True, min_width=16, drop=9)]
    elif due:
        # how long overdue first, so that narrowing the table drops the phase and the start before it
        columns[1:1] = [Column("days_overdue", "Overdue", numeric=True, show=lambda d: f"{d} d"),
                        Column("results_due_date", "Due", drop=6)]
        # narrower titles, so that 40 columns still hold the id, the days overdue and a title
        columns += [replace(title_column, min_width=16), Column("fdaaa801_violation", "Flag", show=lambda v: "FDAAA" if v else "", drop=7),
                    Column("lead_sponsor", "Lead sponsor", flex=True, min_width=16, drop=9)]
    else:
        columns += [title_column, Column("lead_sponsor", "Lead sponsor", flex=True, min_width=16, drop=9)]
    if not rows:
        return [sentence(title or "No studies match.")]
    if near:
        rows = [{**row, "distance": row.get("distance_km")} for row in rows]
    return rows_as(rows, columns, fmt, title=title)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _age_range(facts: dict) -> str:
    low, high = facts.get("min_age"), facts.get("max_age")
    if low and high:
        return f"{low} to {high}"
    if low:
        return f"{low} and older"
    if high:
        return f"up to {high}"
    return "any age"


def _date(facts: dict, key: str) -> str | None:
    value = facts.get(key)
    if not value:
        return None
    kind = label(DATE_TYPE_LABELS, facts.get(f"{key}_type"))
    return f"{value} ({kind.lower()})" if kind else value


def _site_line(site: dict) -> str:
    place = ", ".join(p for p in (site.get("city"), site.get("state"), site.get("country")) if p)
    status = f" [{status_label(site['status'])}]" if site.get("status") else ""
    distance = f" ({site['distance_km']:.0f} km)" if site.get("distance_km") is not None else ""
    return f"{site.get('facility') or 'Unnamed site'}, {place}{status}{distance}"


def _contact_line(contact: dict) -> str:
    return " · ".join(p for p in (contact.get("name"), contact.get("phone"), contact.get("email")) if p)


def render_study(facts: dict, fmt: str, sites_limit: int | None = 10, all_results: bool = False) -> list:
    """One study for a person: labels instead of codes, eligibility, summary, results (``facts["results"]``,
    in short, or every outcome and event with ``all_results``), sites (nearest first when distances are
    known), contacts, links, and its change history. ``sites_limit`` None prints every site."""
    nct_id = facts["nct_id"]
    status = status_label(facts["overall_status"]) + (
        f" (last known: {status_label(facts['last_known_status'])})" if facts.get("last_known_status") else "")
    sex = label(SEX_LABELS, facts.get("sex"))
    healthy = {1: "accepts healthy volunteers", 0: "no healthy volunteers"}.get(facts.get("healthy_volunteers"), "")
    eligibility = ", ".join(p for p in (_age_range(facts), f"sex: {sex.lower()}" if sex else "", healthy) if p)
    sponsor = facts.get("lead_sponsor")
    if sponsor and facts.get("lead_sponsor_class"):
        sponsor += f" ({label(SPONSOR_CLASS_LABELS, facts['lead_sponsor_class'])})"
    enrollment = None
    if facts.get("enrollment_count") is not None:
        kind = label(DATE_TYPE_LABELS, facts.get("enrollment_type")).lower()
        enrollment = f"{facts['enrollment_count']} participants" + (f" ({kind})" if kind else "")
    sites = list(facts.get("locations") or [])  # in the order given (show --near: open sites nearest first)
    links = [study_url(nct_id)] + ([f"{study_url(nct_id)}?tab=results"] if facts.get("has_results") else [])
    pairs = [
        ("NCT ID", nct_id), ("Title", facts.get("brief_title")), ("Official title", facts.get("official_title")),
        ("Acronym", facts.get("acronym")), ("Status", status), ("Why stopped", facts.get("why_stopped")),
        ("Study type", label(STUDY_TYPE_LABELS, facts.get("study_type"))),
        ("Phase", phases_label(facts.get("phases"))),
        ("Enrollment", enrollment),
        ("Start", _date(facts, "start_date")),
        ("Primary completion", _date(facts, "primary_completion_date")),
        ("Completion", _date(facts, "completion_date")),
        ("First posted", facts.get("first_posted")), ("Last update posted", facts.get("last_update_posted")),
        ("Results first posted", facts.get("results_first_posted")),
        ("Results owed", obligation_line(facts["results"]) if facts.get("results") else None),
        ("Lead sponsor", sponsor),
        ("Collaborators", "; ".join(s["name"] for s in facts.get("sponsors", []) if s["role"] == "collaborator")),
        ("Conditions", "; ".join(c["condition"] for c in facts.get("conditions", []))),
        ("Interventions", "; ".join(f"{(i['type'] or '').replace('_', ' ').title()}: {i['name']}"
                                    for i in facts.get("interventions", []))),
        ("Eligibility", eligibility),
        ("Contacts", "; ".join(_contact_line(c) for c in facts.get("central_contacts", []))),
        ("Topics", ", ".join(t["topic"] + ("" if t["present"] else f" (left {t['left_at']})")
                             for t in facts.get("topics", []))),
        ("Links", "  ".join(links)),
    ]
    if fmt == "json":
        from .formats import to_json

        return [to_json(facts)]
    width = terminal_width()
    rows = [(k, visible(str(v))) for k, v in pairs if v not in (None, "")]
    key_width = max(len(k) for k, _ in rows) + 1
    lines = []
    for key, value in rows:
        wrapped = textwrap.wrap(value, max(width - key_width - 1, 30), break_long_words=False, break_on_hyphens=False)
        lines.append(f"{key + ':':<{key_width}} {wrapped[0] if wrapped else ''}")
        lines += [" " * (key_width + 1) + more for more in wrapped[1:]]
    blocks = ["\n".join(lines)]
    if facts.get("brief_summary"):
        blocks.append("Summary:\n" + _paragraphs(facts["brief_summary"], width))
    if facts.get("results") and facts["results"].get("posted"):
        blocks.append(render_results(facts["results"], width, all_results))
    if sites:
        shown = sites if sites_limit is None else sites[:sites_limit]
        more = f"\n  ... and {len(sites) - len(shown)} more" if len(sites) > len(shown) else ""
        contacts: dict[int, list[dict]] = {}
        for contact in facts.get("location_contacts", []):
            contacts.setdefault(contact["location_seq"], []).append(contact)
        lines = []
        for site in shown:
            lines.append(_wrapped("  " + _site_line(site), width, "    "))
            lines += [_wrapped("    Contact: " + _contact_line(c), width, "      ")
                      for c in contacts.get(site.get("seq"), [])[:2] if _contact_line(c)]
        blocks.append(f"Sites ({len(sites)}):\n" + "\n".join(lines) + more)
    if facts.get("eligibility_criteria"):
        blocks.append("Eligibility criteria:\n" + _paragraphs(facts["eligibility_criteria"], width))
    if facts.get("changes"):
        blocks.append("Changes seen by trialsync:\n" + "\n".join(
            _wrapped(f"  {c['observed_at'][:10]}  " + describe_change({**c, "nct_id": ""}, name_topic=True).strip(),
                     width, "    ")
            for c in facts["changes"]))
    return blocks


def _wrapped(text: str, width: int, indent: str) -> str:
    text = visible(text)
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False)) or text


_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def unescape_markdown(text: str) -> str:
    """The registry's markdown text as a person reads it: ``\\<`` is ``<``, ``\\&`` is ``&`` (a backslash before
    any ASCII punctuation is an escape, as in markdown)."""
    return _MARKDOWN_ESCAPE.sub(r"\1", text)


def _paragraphs(text: str, width: int) -> str:
    """Markdown text wrapped to ``width``, two spaces in; a nested list keeps its depth, and a bullet's lines
    hang under its words."""
    out = []
    for paragraph in visible_lines(unescape_markdown(text)):
        if not paragraph.strip():
            if out and out[-1] != "":
                out.append("")
            continue
        stripped = paragraph.lstrip()
        depth = "  " + " " * (len(paragraph) - len(stripped))
        bullet = re.match(r"([*\-•+]|\d+[.)])\s+", stripped)
        hanging = depth + " " * (bullet.end() if bullet else 0)
        out.append(textwrap.fill(stripped, width, initial_indent=depth, subsequent_indent=hanging,
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out).rstrip()
