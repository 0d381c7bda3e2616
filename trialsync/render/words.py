"""Changes and counts in words, for a person."""

from __future__ import annotations

from ..statuses import status_label
from .visible import visible
from ..vocab import DATE_TYPE_LABELS, PHASE_LABELS, label, plural  # noqa: F401 (plural: used by render)

FIELD_NAMES = {
    "overall_status": "status",
    "last_known_status": "last known status",
    "why_stopped": "why stopped",
    "enrollment_count": "enrollment",
    "start_date": "start date",
    "primary_completion_date": "primary completion date",
    "completion_date": "completion date",
    "start_date_type": "start date",
    "primary_completion_date_type": "primary completion date",
    "completion_date_type": "completion date",
    "phases": "phases",
    "results_first_posted": "results first posted",
    "location_count": "sites",
    "membership": "topic membership",
    "site_added": "site added",
    "site_removed": "site removed",
    "site_status": "site status",
    "reference_added": "publication added",
}
STATUS_FIELDS = {"overall_status", "last_known_status", "site_status"}
DATE_TYPE_FIELDS = {"start_date_type", "primary_completion_date_type", "completion_date_type"}
_MEMBERSHIP_WORDS = {"added": "new in {where}", "left": "left {where}", "present": "back in {where}"}


def show_value(field: str, value) -> str:
    """A change's value for a person: status labels, 'none' for no value."""
    if value is None:
        return "none"
    if field in STATUS_FIELDS:
        return status_label(value)
    if field in DATE_TYPE_FIELDS:
        return label(DATE_TYPE_LABELS, value).lower()
    if field == "phases":
        return "/".join(label(PHASE_LABELS, p.strip()) for p in str(value).split(","))
    return str(value)


def describe_change(change: dict, name_topic: bool = False) -> str:
    """One change in words, on one line: 'NCT04042844 status: Recruiting -> Completed'. A membership event
    says 'the topic', or names it with ``name_topic``. Record text in it is made ``visible``."""
    return visible(_describe_change(change, name_topic))


def _describe_change(change: dict, name_topic: bool) -> str:
    field, nct_id = change["field"], change["nct_id"]
    if field == "membership":
        where = f"topic {change['topic']}" if name_topic and change.get("topic") else "the topic"
        return f"{nct_id} " + _MEMBERSHIP_WORDS.get(change["new"], "{where}: " + str(change["new"])).format(where=where)
    if field == "warning":
        return f"{nct_id} warning: {change['new']}"
    item = change.get("item")
    if field == "site_added":
        return f"{nct_id} site added: {item} ({show_value('site_status', change['new'])})" if change["new"] \
            else f"{nct_id} site added: {item}"
    if field == "site_removed":
        return f"{nct_id} site removed: {item}"
    if field == "reference_added":
        what = f"PMID {item}" if item and item.isdigit() else item
        return f"{nct_id} publication added: {what}" + (f" ({str(change['new']).lower()})" if change["new"] else "")
    name = FIELD_NAMES.get(field, field)
    if field in DATE_TYPE_FIELDS:
        return f"{nct_id} {name}: {show_value(field, change['old'])} -> {show_value(field, change['new'])}"
    where = f" at {item}" if item else ""
    return f"{nct_id} {name}{where}: {show_value(field, change['old'])} -> {show_value(field, change['new'])}"
