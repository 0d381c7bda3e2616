"""Changes and counts in words, for a person."""

from __future__ import annotations

from ..change_kinds import (  # noqa: F401 (FIELD_NAMES, STATUS_FIELDS: render reads them here too)
    ADDED, DATE_TYPE_FIELDS, FIELD_NAMES, LEFT, MEMBERSHIP, PRESENT, REFERENCE_ADDED, RESULTS_DUE, RESULTS_POSTED,
    SITE_ADDED, SITE_REMOVED, STATUS_FIELDS, WARNING,
)
from ..statuses import status_label
from ..vocab import DATE_TYPE_LABELS, PHASE_LABELS, label, plural  # noqa: F401 (plural: used by render)
from .visible import visible

_MEMBERSHIP_WORDS = {ADDED: "new in {where}", LEFT: "left {where}", PRESENT: "back in {where}"}


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
    if field == MEMBERSHIP:
        where = f"topic {change['topic']}" if name_topic and change.get("topic") else "the topic"
        return f"{nct_id} " + _MEMBERSHIP_WORDS.get(change["new"], "{where}: " + str(change["new"])).format(where=where)
    if field == WARNING:
        return f"{nct_id} warning: {change['new']}"
    item = change.get("item")
    if field == SITE_ADDED:
        return f"{nct_id} site added: {item} ({show_value('site_status', change['new'])})" if change["new"] \
            else f"{nct_id} site added: {item}"
    if field == SITE_REMOVED:
        return f"{nct_id} site removed: {item}"
    if field == REFERENCE_ADDED:
        what = f"PMID {item}" if item and item.isdigit() else item
        return f"{nct_id} publication added: {what}" + (f" ({str(change['new']).lower()})" if change["new"] else "")
    if field == RESULTS_DUE:
        return (f"{nct_id} results due since {change['new']}: none posted or submitted a year after the primary "
                "completion (FDAAA 801, as trialsync reads it)")
    if field == RESULTS_POSTED and change["old"] is None and change["new"] is not None:
        return f"{nct_id} results posted on {change['new']}"
    name = FIELD_NAMES.get(field, field)
    if field in DATE_TYPE_FIELDS:
        return f"{nct_id} {name}: {show_value(field, change['old'])} -> {show_value(field, change['new'])}"
    where = f" at {item}" if item else ""
    return f"{nct_id} {name}{where}: {show_value(field, change['old'])} -> {show_value(field, change['new'])}"
