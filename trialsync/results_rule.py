"""Whether a study owes results: an approximation of US law (FDAAA 801, 42 CFR 11.44) as the FDAAA TrialsTracker
makes one. The API does not publish IND/IDE status, so no tool can be exact; this is not a legal determination.
No I/O: every function here reads plain values.

A study's *results state* depends on its record alone and is stored with it; whether a state of ``APPLICABLE``
is *due* depends on the day as well (``category``).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

# Results states, stored in ``studies.results_state`` (the order of precedence: the first that holds wins).
POSTED = "posted"  # results are on the registry
UNDER_REVIEW = "under review"  # submitted, waiting for the registry's quality-control review
NOT_APPLICABLE = "not applicable"  # does not look like an applicable clinical trial under the Final Rule
CERTIFIED = "delayed by certification"  # a certification or extension request delays the results
APPLICABLE = "applicable"  # owes results one year after its primary completion: due or not yet due

# The categories of ``status-report --by results``, in the order it prints them.
DUE, NOT_YET_DUE = "due", "not yet due"
CATEGORIES = (POSTED, UNDER_REVIEW, CERTIFIED, DUE, NOT_YET_DUE, NOT_APPLICABLE)

CATEGORY_LABELS = {POSTED: "Posted", UNDER_REVIEW: "Under review", CERTIFIED: "Delayed (certification)", DUE: "Due",
                   NOT_YET_DUE: "Not yet due", NOT_APPLICABLE: "Not applicable"}

FINAL_RULE = "2017-01-18"  # primary completions on or after this day fall under the Final Rule
YEAR_DAYS = 365  # results are due one year after the primary completion date...
GRACE_DAYS = 30  # ...and counted due once 30 more days (the registry's review and posting) have passed
ONLY_EARLY_PHASES = frozenset({"PHASE1", "EARLY_PHASE1"})
US = "United States"

_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def period_end(text) -> date | None:
    """The last day a date as the API writes it can stand for: the day itself, or a month's last day
    ("2019-03" -> 2019-03-31). None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        if _DAY.fullmatch(text):
            return date.fromisoformat(text)
        month = _MONTH.fullmatch(text)
        if month:
            first = date(int(month.group(1)), int(month.group(2)), 1)
            return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    except ValueError:
        return None
    return None


def results_state(*, posted: bool, under_review: bool, interventional: bool, phases: list[str],
                  fda_regulated: bool, us_site: bool, us_export: bool, primary_completion: str | None,
                  primary_completion_type: str | None, certified: bool) -> tuple[str, str | None]:
    """A study's results state and, for ``APPLICABLE`` with an actual primary completion, the day its results
    are due (``YYYY-MM-DD``: one year after the primary completion, a month-only date taken as its last day).

    Posted first; then submitted and under review; then whether it looks like an applicable clinical trial
    (interventional; not phase 1 only; an FDA-regulated drug or device; a US site or export; its primary
    completion, if known, on or after the Final Rule); then delayed by a certification; else applicable."""
    if posted:
        return POSTED, None
    if under_review:
        return UNDER_REVIEW, None
    completion = period_end(primary_completion)
    early_only = bool(phases) and set(phases) <= ONLY_EARLY_PHASES
    if (not interventional or early_only or not fda_regulated or not (us_site or us_export)
            or (completion is not None and completion.isoformat() < FINAL_RULE)):
        return NOT_APPLICABLE, None
    if certified:
        return CERTIFIED, None
    if completion is None or primary_completion_type != "ACTUAL":
        return APPLICABLE, None
    return APPLICABLE, (completion + timedelta(days=YEAR_DAYS)).isoformat()


def is_due(state: str | None, due_date: str | None, today: str) -> bool:
    """Whether results in ``state``, due on ``due_date``, are due on ``today`` (all ``YYYY-MM-DD``): the grace
    after the due date has run out, i.e. the primary completion is more than 395 days before ``today``."""
    return state == APPLICABLE and due_date is not None and grace_end(due_date) < today


def grace_end(due_date: str) -> str:
    """The last day of the grace after ``due_date``: results are counted due from the day after it."""
    return (date.fromisoformat(due_date) + timedelta(days=GRACE_DAYS)).isoformat()


def category(state: str | None, due_date: str | None, today: str) -> str:
    """The ``--by results`` category of a study (one of CATEGORIES) on ``today``."""
    if state == APPLICABLE:
        return DUE if is_due(state, due_date, today) else NOT_YET_DUE
    return state if state in CATEGORIES else NOT_APPLICABLE


def due_cutoff(today: str) -> str:
    """The earliest due date whose results are not yet due on ``today``: due dates before it are past their
    grace (``is_due``)."""
    return (date.fromisoformat(today) - timedelta(days=GRACE_DAYS)).isoformat()


def days_overdue(due_date: str, today: str) -> int:
    """Days from ``due_date`` (one year after the primary completion) to ``today``."""
    return (date.fromisoformat(today) - date.fromisoformat(due_date)).days


def newest_submission(submissions: list[dict]) -> dict | None:
    """The results submission (of ``submissionTracking.submissionInfos``) released last: the greatest
    ``releaseDate`` (one without a date counts as the earliest), the later in the list among equals."""
    if not submissions:
        return None
    return max(enumerate(submissions), key=lambda item: (item[1].get("releaseDate") or "", item[0]))[1]


def submission_under_review(submissions: list[dict]) -> bool:
    """Whether the newest results submission (``newest_submission``) waits for the registry's review: it was
    released to the registry and neither returned with comments (reset) nor withdrawn by the sponsor
    (unreleased)."""
    newest = newest_submission(submissions)
    if newest is None:
        return False
    return (newest.get("releaseDate") is not None and newest.get("resetDate") is None
            and newest.get("unreleaseDate") is None and not newest.get("unreleaseDateUnknown"))
