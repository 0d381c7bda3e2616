"""Pure functions: one raw study record -> the rows of each table. No I/O, and the record is never modified."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from .records import is_nct_id, nct_id_of

STUDY_COLUMNS: tuple[str, ...] = (
    "nct_id", "brief_title", "official_title", "acronym",
    "overall_status", "last_known_status", "why_stopped",
    "study_type", "phases", "enrollment_count", "enrollment_type",
    "start_date", "start_date_sort",
    "primary_completion_date", "primary_completion_date_sort",
    "completion_date", "completion_date_sort",
    "first_posted", "last_update_posted", "status_verified_date", "results_first_posted",
    "lead_sponsor", "lead_sponsor_class", "has_results", "brief_summary", "location_count",
    "version_holder", "raw",
)

# Child tables: name -> columns after (nct_id, seq). ``seq`` keeps the API's order.
CHILD_COLUMNS: dict[str, tuple[str, ...]] = {
    "conditions": ("condition",),
    "interventions": ("type", "name"),
    "sponsors": ("role", "name", "class"),
    "locations": ("facility", "city", "state", "country", "status"),
    "keywords": ("keyword",),
    "secondary_ids": ("secondary_id", "type", "domain"),
    "mesh_terms": ("kind", "mesh_id", "term"),
}

# Fields whose change a reader wants to hear about, as column names of ``studies``.
TRACKED_FIELDS: tuple[str, ...] = (
    "overall_status", "last_known_status", "why_stopped", "enrollment_count",
    "start_date", "primary_completion_date", "completion_date", "phases",
    "results_first_posted", "location_count",
)

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


class NotAStudyRecord(ValueError):
    """The value is not a ClinicalTrials.gov study record."""


@dataclass
class StudyRows:
    """Everything stored for one study: the ``studies`` row and the rows of each child table."""

    nct_id: str
    study: tuple
    children: dict[str, list[tuple]]

    def value(self, column: str):
        """The ``studies`` column ``column`` of this study."""
        return self.study[STUDY_COLUMNS.index(column)]


def sortable_date(text: str | None) -> str | None:
    """``YYYY-MM-DD`` for an API date; partial dates (``2019-03``, ``2019``) take the first day. Else None."""
    match = _PARTIAL_DATE.match(text or "")
    if not match:
        return None
    year, month, day = match.groups()
    return f"{year}-{month or '01'}-{day or '01'}"


def serialize(record: dict) -> bytes:
    """The record as compact JSON bytes; parsing them gives back exactly ``record``."""
    return orjson.dumps(record)


def check_study_record(record) -> str:
    """Return the record's NCT id, or raise NotAStudyRecord if it is not a study record."""
    if not isinstance(record, dict) or not isinstance(record.get("protocolSection"), dict):
        raise NotAStudyRecord("not a study record (no protocolSection)")
    nct_id = nct_id_of(record)
    if not is_nct_id(nct_id):
        raise NotAStudyRecord(f"study record without a valid NCT id ({nct_id!r})")
    return nct_id


def _get(mapping, *keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _list(value) -> list:
    return value if isinstance(value, list) else []


def study_rows(record: dict, raw: bytes | None = None) -> StudyRows:
    """Flatten one full study record into rows. ``raw`` is the JSON bytes it was parsed from, if known."""
    nct_id = check_study_record(record)
    if raw is None:
        raw = serialize(record)
    protocol = record["protocolSection"]
    ident = protocol.get("identificationModule") or {}
    status = protocol.get("statusModule") or {}
    design = protocol.get("designModule") or {}
    sponsors = protocol.get("sponsorCollaboratorsModule") or {}
    conditions = protocol.get("conditionsModule") or {}
    arms = protocol.get("armsInterventionsModule") or {}
    locations = _list(_get(protocol, "contactsLocationsModule", "locations"))
    lead = sponsors.get("leadSponsor") or {}
    phases = _list(design.get("phases"))
    start = _get(status, "startDateStruct", "date")
    primary_completion = _get(status, "primaryCompletionDateStruct", "date")
    completion = _get(status, "completionDateStruct", "date")
    has_results = record.get("hasResults")

    study = (
        nct_id,
        ident.get("briefTitle"),
        ident.get("officialTitle"),
        ident.get("acronym"),
        status.get("overallStatus"),
        status.get("lastKnownStatus"),
        status.get("whyStopped"),
        design.get("studyType"),
        ", ".join(phases) if phases else None,
        _get(design, "enrollmentInfo", "count"),
        _get(design, "enrollmentInfo", "type"),
        start, sortable_date(start),
        primary_completion, sortable_date(primary_completion),
        completion, sortable_date(completion),
        _get(status, "studyFirstPostDateStruct", "date"),
        _get(status, "lastUpdatePostDateStruct", "date"),
        status.get("statusVerifiedDate"),
        _get(status, "resultsFirstPostDateStruct", "date"),
        lead.get("name"),
        lead.get("class"),
        None if has_results is None else int(bool(has_results)),
        _get(protocol, "descriptionModule", "briefSummary"),
        len(locations),
        _get(record, "derivedSection", "miscInfoModule", "versionHolder"),
        raw,
    )

    sponsor_rows = [("lead", lead.get("name"), lead.get("class"))] if lead else []
    sponsor_rows += [("collaborator", c.get("name"), c.get("class")) for c in _list(sponsors.get("collaborators"))]
    secondary = _list(ident.get("secondaryIdInfos"))
    mesh_rows = [("condition", m.get("id"), m.get("term"))
                 for m in _list(_get(record, "derivedSection", "conditionBrowseModule", "meshes"))]
    mesh_rows += [("intervention", m.get("id"), m.get("term"))
                  for m in _list(_get(record, "derivedSection", "interventionBrowseModule", "meshes"))]

    children = {
        "conditions": [(c,) for c in _list(conditions.get("conditions"))],
        "interventions": [(i.get("type"), i.get("name")) for i in _list(arms.get("interventions"))],
        "sponsors": sponsor_rows,
        "locations": [(loc.get("facility"), loc.get("city"), loc.get("state"), loc.get("country"), loc.get("status"))
                      for loc in locations],
        "keywords": [(k,) for k in _list(conditions.get("keywords"))],
        "secondary_ids": [(s.get("id"), s.get("type"), s.get("domain")) for s in secondary],
        "mesh_terms": mesh_rows,
    }
    return StudyRows(nct_id, study, children)


def tracked_values(rows: StudyRows) -> dict:
    """The values of TRACKED_FIELDS for one study, keyed by field name."""
    return {name: rows.value(name) for name in TRACKED_FIELDS}
