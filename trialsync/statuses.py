"""Overall status values of the API, the website's labels for them, and the order reports use."""

from __future__ import annotations

# The 14 values of the spec's Status enum, in the order a reader follows a study's life:
# not started, running, stopped or finished, unknown, then the expanded-access values.
STATUS_LABELS: dict[str, str] = {
    "NOT_YET_RECRUITING": "Not yet recruiting",
    "RECRUITING": "Recruiting",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting",
    "SUSPENDED": "Suspended",
    "TERMINATED": "Terminated",
    "COMPLETED": "Completed",
    "WITHDRAWN": "Withdrawn",
    "UNKNOWN": "Unknown status",
    "AVAILABLE": "Available",
    "NO_LONGER_AVAILABLE": "No longer available",
    "TEMPORARILY_NOT_AVAILABLE": "Temporarily not available",
    "APPROVED_FOR_MARKETING": "Approved for marketing",
    "WITHHELD": "Withheld",
}
NO_STATUS = "NONE"  # stands for a record that carries no overallStatus at all


def status_label(status: str | None) -> str:
    """The website's label for ``status``; a value the spec does not list is shown as it is."""
    if status is None or status == NO_STATUS:
        return "No status given"
    return STATUS_LABELS.get(status, status)


def status_sort_key(status: str | None) -> tuple[int, str]:
    """Known statuses in their fixed order, then values the spec does not list, alphabetically."""
    order = list(STATUS_LABELS)
    if status in STATUS_LABELS:
        return (order.index(status), "")
    return (len(order), status or "")


# In a sentence that lists statuses with commas, a label with a comma of its own would read as two.
_PHRASES = {"ACTIVE_NOT_RECRUITING": "active (not recruiting)"}


def status_phrase(status: str | None) -> str:
    """How ``status`` reads inside a sentence listing several: 'recruiting', 'active (not recruiting)';
    values the spec does not list stay as they are."""
    if status in _PHRASES:
        return _PHRASES[status]
    return status_label(status).lower() if status in STATUS_LABELS or status in (None, NO_STATUS) else status


# The statuses under which a study (or one of its sites) takes participants now or soon; every other status
# of a site (withdrawn, completed, terminated, suspended, active but not recruiting...) is closed.
OPEN_STATUSES: tuple[str, ...] = ("RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "AVAILABLE")


def sites_that_count(statuses: list[str], site_statuses: list[str] | None = None) -> list[str] | None:
    """Which site statuses count when measuring how near a study is: ``site_statuses`` when chosen; the
    open ones when every status asked for (``statuses``) is open, so that "recruiting near me" means a site
    that recruits; None (every site) otherwise. A site whose record gives no status counts with the open ones."""
    if site_statuses:
        return list(site_statuses)
    if statuses and all(status in OPEN_STATUSES for status in statuses):
        return list(OPEN_STATUSES)
    return None
