"""Pure functions: one raw study record -> the rows of each table. No I/O, and the record is never modified.

A value whose type is not the one the API's spec gives (a string where a list belongs) raises RecordError
naming the study and the field, instead of being stored wrong or failing somewhere later.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import orjson

from ..dates import sortable_date
from ..errors import RecordError
from ..ids import is_nct_id, nct_id_of
from ..jsontext import NumberAsSent, exact
from ..results_rule import US, newest_submission, results_state, submission_under_review
from .results import results_rows

STUDY_COLUMNS: tuple[str, ...] = (
    "nct_id", "brief_title", "acronym",
    "overall_status", "last_known_status", "why_stopped",
    "study_type", "phases", "enrollment_count", "enrollment_type",
    "start_date", "start_date_sort",
    "primary_completion_date", "primary_completion_date_sort",
    "completion_date", "completion_date_sort",
    "first_posted", "last_update_posted", "status_verified_date", "results_first_posted",
    "lead_sponsor", "lead_sponsor_class", "has_results", "location_count",
    "version_holder",
    # added by migration 3, derived from raw for databases made before it
    "min_age", "min_age_years", "max_age", "max_age_years", "sex", "healthy_volunteers",
    "start_date_type", "primary_completion_date_type", "completion_date_type",
    "org_study_id", "allocation", "masking", "primary_purpose",
    # added by migration 7: whether the study owes results (results_rule), and the registry's own flag
    "results_state", "results_due_date", "fdaaa801_violation",
    "raw",
)
_COLUMN_INDEX = {name: index for index, name in enumerate(STUDY_COLUMNS)}
# Columns SQLite holds as 0/1 that mean yes/no, and the one holding a comma-separated list.
BOOLEAN_COLUMNS = ("has_results", "healthy_volunteers", "fdaaa801_violation")
LIST_COLUMNS = ("phases",)


def as_values(row: dict) -> dict:
    """``row`` (columns of ``studies``) with its flags as True/False and its phases as a list, as every JSON
    output gives them; other values as they are. Changes ``row`` in place and returns it."""
    for column in BOOLEAN_COLUMNS:
        if column in row and row[column] is not None:
            row[column] = bool(row[column])
    for column in LIST_COLUMNS:
        if column in row and not isinstance(row[column], list):
            row[column] = [part.strip() for part in row[column].split(",")] if row[column] else []
    return row

# Child tables: name -> columns after (nct_id, seq). ``seq`` keeps the API's order.
CHILD_COLUMNS: dict[str, tuple[str, ...]] = {
    "conditions": ("condition",),
    "interventions": ("type", "name"),
    "sponsors": ("role", "name", "class"),
    "locations": ("facility", "city", "state", "country", "status", "zip", "latitude", "longitude"),
    "keywords": ("keyword",),
    "secondary_ids": ("secondary_id", "type", "domain"),
    "mesh_terms": ("kind", "mesh_id", "term"),
    "primary_outcomes": ("measure",),
    "central_contacts": ("name", "role", "phone", "email"),
    "location_contacts": ("location_seq", "name", "role", "phone", "email"),
    "study_references": ("pmid", "type"),
    "study_countries": ("country",),
}
# Columns the database reads from raw when asked (SQLite generated columns), so that the longest texts of a
# record are not stored twice. The transform still gives their values, to index them for search.
VIRTUAL_COLUMNS = {
    "official_title": "$.protocolSection.identificationModule.officialTitle",
    "brief_summary": "$.protocolSection.descriptionModule.briefSummary",
    "eligibility_criteria": "$.protocolSection.eligibilityModule.eligibilityCriteria",
    "limitations_and_caveats": "$.resultsSection.moreInfoModule.limitationsAndCaveats.description",
}


def virtual_value(record: dict, column: str):
    """A generated column's value (``VIRTUAL_COLUMNS``) read from a record as SQLite reads it from ``raw``:
    the text at its path, None where the path is missing (or a value on the way is not an object)."""
    value = record
    for key in VIRTUAL_COLUMNS[column].split(".")[1:]:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def cell_of(latitude: float, longitude: float) -> int:
    """The 1-degree cell of a point, numbered from the south-west (the ``site_points`` table's key)."""
    return (math.floor(latitude) + 90) * 360 + (math.floor(longitude) + 180)

# Fields whose change a reader wants to hear about, as column names of ``studies``.
TRACKED_FIELDS: tuple[str, ...] = (
    "overall_status", "last_known_status", "why_stopped", "enrollment_count",
    "start_date", "primary_completion_date", "completion_date", "phases",
    "results_first_posted", "start_date_type", "primary_completion_date_type", "completion_date_type",
)

# Age units as the API writes them ("18 Years", "6 Months"), as a fraction of a year. Migration 3 holds
# the same table as SQL: a change here needs a migration that recomputes ``*_age_years``.
AGE_UNITS: dict[str, tuple[int, float]] = {  # unit -> (multiplier, divisor): years = n * multiplier / divisor
    "year": (1, 1.0), "years": (1, 1.0),
    "month": (1, 12.0), "months": (1, 12.0),
    "week": (7, 365.25), "weeks": (7, 365.25),
    "day": (1, 365.25), "days": (1, 365.25),
    "hour": (1, 8766.0), "hours": (1, 8766.0),
    "minute": (1, 525960.0), "minutes": (1, 525960.0),
}


# What a column can hold: SQLite's 64-bit integers; latitudes and longitudes on the globe (``cell_of`` and
# the distances need them there).
INTEGER_RANGE = (-2**63, 2**63 - 1)
LATITUDE_RANGE = (-90.0, 90.0)
LONGITUDE_RANGE = (-180.0, 180.0)


class NotAStudyRecord(RecordError):
    """The value is not a ClinicalTrials.gov study record at all."""


@dataclass
class StudyRows:
    """Everything stored for one study: the ``studies`` row and the rows of each child table."""

    nct_id: str
    study: tuple
    children: dict[str, list[tuple]]
    site_points: list[tuple[int, int]] = field(default_factory=list)  # (cell, seq) of each site at a new point
    texts: dict[str, str | None] = field(default_factory=dict)  # the values of VIRTUAL_COLUMNS
    results: dict[str, list[tuple]] = field(default_factory=dict)  # the rows of each results table (RESULT_COLUMNS)
    # One line per field whose number is out of range for its column: kept in raw, left empty in the rows.
    warnings: list[str] = field(default_factory=list)

    def value(self, column: str):
        """The ``studies`` column ``column`` of this study (stored or virtual)."""
        index = _COLUMN_INDEX.get(column)
        return self.study[index] if index is not None else self.texts[column]


def serialize(record: dict) -> bytes:
    """The record as compact JSON bytes; parsing them gives back exactly ``record``."""
    try:
        return orjson.dumps(record)
    except TypeError:  # an integer past 64 bits, which only the standard library reads and writes
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


_AGE = re.compile(r"([0-9]{1,6}) ([A-Za-z]+)")


def age_in_years(text) -> float | None:
    """An age as the API writes it ("18 Years", "6 Months") in years; None when it is not one."""
    match = _AGE.fullmatch(text) if isinstance(text, str) else None
    if not match or match.group(2).lower() not in AGE_UNITS:
        return None
    multiplier, divisor = AGE_UNITS[match.group(2).lower()]
    return int(match.group(1)) * multiplier / divisor


def check_study_record(record) -> str:
    """Return the record's NCT id, or raise NotAStudyRecord if it is not a study record."""
    if not isinstance(record, dict) or not isinstance(record.get("protocolSection"), dict):
        raise NotAStudyRecord("not a study record (no protocolSection)")
    nct_id = nct_id_of(record)
    if not is_nct_id(nct_id):
        raise NotAStudyRecord(f"study record without a valid NCT id ({nct_id!r})")
    return nct_id


_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", bool: "a boolean",
               float: "a number"}


class _Typed:
    """Reads values out of one record, checking each against the type the spec gives it."""

    def __init__(self, nct_id: str):
        self.nct_id = nct_id
        # (field as warned, path from the record's root, value) of each number out of range for its column
        self.out_of_range: list[tuple[str, tuple, object]] = []

    def _wrong(self, where: str, key: str, value, expected: type) -> RecordError:
        got = "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)
        field_path = f"{where}.{key}" if where else key  # a field at the record's root has no parent to name
        return RecordError(f"{self.nct_id}: {field_path} is {got}, where the API's spec has "
                           f"{_TYPE_NAMES[expected]}; the record was not stored")

    def obj(self, parent: dict, key: str, where: str) -> dict:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._wrong(where, key, value, dict)
        return value

    def text(self, parent: dict, key: str, where: str) -> str | None:
        value = parent.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._wrong(where, key, value, str)

    def integer(self, parent: dict, key: str, where: str, path: tuple = ()) -> int | None:
        """An integer; None, noted in ``out_of_range``, for one past SQLite's 64-bit integers (orjson reads an
        integer past 64 bits as a float, ``json`` one past a double's range as an int or infinity)."""
        value = parent.get(key)
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            if value is not None and not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
                return self._out_of_range(where, key, path, value)
            return value
        if isinstance(value, float) and not -2.0**63 < value < 2.0**63:  # infinity too; -2**63 as a float was past it
            return self._out_of_range(where, key, path, value)
        raise self._wrong(where, key, value, int)

    def number(self, parent: dict, key: str, where: str, path: tuple = (),
               bounds: tuple[float, float] = (-1.7976931348623157e308, 1.7976931348623157e308)) -> float | int | None:
        """A number; None, noted in ``out_of_range``, for one outside ``bounds``."""
        value = parent.get(key)
        if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
            if value is not None and not bounds[0] <= value <= bounds[1]:
                return self._out_of_range(where, key, path, value)
            return value
        raise self._wrong(where, key, value, float)

    def _out_of_range(self, where: str, key: str, path: tuple, value) -> None:
        self.out_of_range.append((_short_field(f"{where}.{key}"), path + (key,), value))
        return None

    def warnings(self, raw: bytes) -> list[str]:
        """One line per field with a number out of range, naming the study, the field and the value as sent."""
        if not self.out_of_range:
            return []
        try:
            record = exact(raw)
        except (ValueError, RecursionError):
            record = None
        found: dict[str, list] = {}
        for name, path, value in self.out_of_range:
            found.setdefault(name, [])
            found[name].append(_value_at(record, path, value))
        lines = []
        for name, values in found.items():
            sites = f" (and {len(values) - 1} more)" if len(values) > 1 else ""
            lines.append(f"{self.nct_id}: {name} {values[0]}{sites} is out of range; left empty")
        return lines

    def boolean(self, parent: dict, key: str, where: str) -> bool | None:
        value = parent.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self._wrong(where, key, value, bool)

    def objects(self, parent: dict, key: str, where: str) -> list[dict]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(where, key, value, list)
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self._wrong(where, f"{key}[{index}]", item, dict)
        return value

    def texts(self, parent: dict, key: str, where: str) -> list[str]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(where, key, value, list)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self._wrong(where, f"{key}[{index}]", item, str)
        return value

    def date(self, parent: dict, key: str, where: str) -> str | None:
        return self.text(self.obj(parent, key, where), "date", f"{where}.{key}")

    def date_type(self, parent: dict, key: str, where: str) -> str | None:
        return self.text(self.obj(parent, key, where), "type", f"{where}.{key}")


def _short_field(where: str) -> str:
    """A field as a warning names it: without ``protocolSection`` and its module ("enrollmentInfo.count")."""
    parts = where.split(".")
    if parts[0] == "protocolSection" and len(parts) > 2:
        parts = parts[2:]
    return ".".join(parts)


def _value_at(record, path: tuple, fallback):
    """The value at ``path`` in ``record`` as JSON text, or ``fallback``'s when it cannot be found there."""
    value = record
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            value = fallback
            break
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        value = fallback
    if isinstance(value, NumberAsSent):
        return value.text
    return repr(value) if isinstance(value, float) else str(value)


def study_rows(record: dict, raw: bytes | None = None) -> StudyRows:
    """Flatten one full study record into rows. ``raw`` is the JSON bytes it was parsed from, if known.

    Raises NotAStudyRecord for something that is not a study, RecordError for a field of the wrong type.
    """
    nct_id = check_study_record(record)
    if raw is None:
        raw = serialize(record)
    t = _Typed(nct_id)
    p = "protocolSection"
    protocol = record[p]
    ident = t.obj(protocol, "identificationModule", p)
    status = t.obj(protocol, "statusModule", p)
    design = t.obj(protocol, "designModule", p)
    sponsors = t.obj(protocol, "sponsorCollaboratorsModule", p)
    conditions = t.obj(protocol, "conditionsModule", p)
    arms = t.obj(protocol, "armsInterventionsModule", p)
    contacts = t.obj(protocol, "contactsLocationsModule", p)
    description = t.obj(protocol, "descriptionModule", p)
    eligibility = t.obj(protocol, "eligibilityModule", p)
    outcomes = t.obj(protocol, "outcomesModule", p)
    references = t.obj(protocol, "referencesModule", p)
    derived = t.obj(record, "derivedSection", "")
    where_status, where_design = f"{p}.statusModule", f"{p}.designModule"
    where_sponsors = f"{p}.sponsorCollaboratorsModule"
    locations = t.objects(contacts, "locations", f"{p}.contactsLocationsModule")
    lead = t.obj(sponsors, "leadSponsor", where_sponsors)
    phases = t.texts(design, "phases", where_design)
    enrollment = t.obj(design, "enrollmentInfo", where_design)
    start = t.date(status, "startDateStruct", where_status)
    primary_completion = t.date(status, "primaryCompletionDateStruct", where_status)
    completion = t.date(status, "completionDateStruct", where_status)
    where_eligibility = f"{p}.eligibilityModule"
    min_age = t.text(eligibility, "minimumAge", where_eligibility)
    max_age = t.text(eligibility, "maximumAge", where_eligibility)
    healthy = t.boolean(eligibility, "healthyVolunteers", where_eligibility)
    design_info = t.obj(design, "designInfo", where_design)
    has_results = t.boolean(record, "hasResults", "")
    misc = t.obj(derived, "miscInfoModule", "derivedSection")
    oversight = t.obj(protocol, "oversightModule", p)
    where_oversight = f"{p}.oversightModule"
    results_posted = t.date(status, "resultsFirstPostDateStruct", where_status)
    study_type = t.text(design, "studyType", where_design)
    where_tracking = "derivedSection.miscInfoModule.submissionTracking"
    submissions = t.objects(t.obj(misc, "submissionTracking", "derivedSection.miscInfoModule"), "submissionInfos",
                            where_tracking)
    for submission in submissions:  # the newest one decides (by its release date): the fields read have types
        t.text(submission, "releaseDate", f"{where_tracking}.submissionInfos")
    if submissions:
        newest = newest_submission(submissions)
        for key in ("resetDate", "unreleaseDate"):
            t.text(newest, key, f"{where_tracking}.submissionInfos")
        t.boolean(newest, "unreleaseDateUnknown", f"{where_tracking}.submissionInfos")
    state, due_date = results_state(
        posted=bool(has_results) or results_posted is not None,
        under_review=submission_under_review(submissions),
        interventional=study_type == "INTERVENTIONAL", phases=phases,
        fda_regulated=bool(t.boolean(oversight, "isFdaRegulatedDrug", where_oversight))
        or bool(t.boolean(oversight, "isFdaRegulatedDevice", where_oversight)),
        us_site=any(t.text(loc, "country", f"{p}.contactsLocationsModule.locations") == US for loc in locations),
        us_export=bool(t.boolean(oversight, "isUsExport", where_oversight)),
        primary_completion=primary_completion,
        primary_completion_type=t.date_type(status, "primaryCompletionDateStruct", where_status),
        certified=t.text(status, "dispFirstSubmitDate", where_status) is not None)
    violation = t.boolean(oversight, "fdaaa801Violation", where_oversight)
    more_info = t.obj(t.obj(record, "resultsSection", ""), "moreInfoModule", "resultsSection")

    texts = {
        "official_title": t.text(ident, "officialTitle", f"{p}.identificationModule"),
        "brief_summary": t.text(description, "briefSummary", f"{p}.descriptionModule"),
        "eligibility_criteria": t.text(eligibility, "eligibilityCriteria", f"{p}.eligibilityModule"),
        "limitations_and_caveats": t.text(
            t.obj(more_info, "limitationsAndCaveats", "resultsSection.moreInfoModule"), "description",
            "resultsSection.moreInfoModule.limitationsAndCaveats"),
    }
    study = (
        nct_id,
        t.text(ident, "briefTitle", f"{p}.identificationModule"),
        t.text(ident, "acronym", f"{p}.identificationModule"),
        t.text(status, "overallStatus", where_status),
        t.text(status, "lastKnownStatus", where_status),
        t.text(status, "whyStopped", where_status),
        study_type,
        ", ".join(phases) if phases else None,
        t.integer(enrollment, "count", f"{where_design}.enrollmentInfo", (p, "designModule", "enrollmentInfo")),
        t.text(enrollment, "type", f"{where_design}.enrollmentInfo"),
        start, sortable_date(start),
        primary_completion, sortable_date(primary_completion),
        completion, sortable_date(completion),
        t.date(status, "studyFirstPostDateStruct", where_status),
        t.date(status, "lastUpdatePostDateStruct", where_status),
        t.text(status, "statusVerifiedDate", where_status),
        results_posted,
        t.text(lead, "name", f"{where_sponsors}.leadSponsor"),
        t.text(lead, "class", f"{where_sponsors}.leadSponsor"),
        None if has_results is None else int(has_results),
        len(locations),
        t.text(misc, "versionHolder", "derivedSection.miscInfoModule"),
        min_age, age_in_years(min_age), max_age, age_in_years(max_age),
        t.text(eligibility, "sex", where_eligibility),
        None if healthy is None else int(healthy),
        t.date_type(status, "startDateStruct", where_status),
        t.date_type(status, "primaryCompletionDateStruct", where_status),
        t.date_type(status, "completionDateStruct", where_status),
        t.text(t.obj(ident, "orgStudyIdInfo", f"{p}.identificationModule"), "id",
               f"{p}.identificationModule.orgStudyIdInfo"),
        t.text(design_info, "allocation", f"{where_design}.designInfo"),
        t.text(t.obj(design_info, "maskingInfo", f"{where_design}.designInfo"), "masking",
               f"{where_design}.designInfo.maskingInfo"),
        t.text(design_info, "primaryPurpose", f"{where_design}.designInfo"),
        state, due_date, None if violation is None else int(violation),
        raw,
    )

    where_locations = f"{p}.contactsLocationsModule.locations"
    sponsor_rows = [("lead", study[_COLUMN_INDEX["lead_sponsor"]], study[_COLUMN_INDEX["lead_sponsor_class"]])] \
        if lead else []
    sponsor_rows += [("collaborator", t.text(c, "name", f"{where_sponsors}.collaborators"),
                      t.text(c, "class", f"{where_sponsors}.collaborators"))
                     for c in t.objects(sponsors, "collaborators", where_sponsors)]
    mesh_rows = []
    for kind, module in (("condition", "conditionBrowseModule"), ("intervention", "interventionBrowseModule")):
        where = f"derivedSection.{module}"
        mesh_rows += [(kind, t.text(m, "id", f"{where}.meshes"), t.text(m, "term", f"{where}.meshes"))
                      for m in t.objects(t.obj(derived, module, "derivedSection"), "meshes", where)]
    where_ident = f"{p}.identificationModule.secondaryIdInfos"
    where_arms = f"{p}.armsInterventionsModule.interventions"
    where_outcomes = f"{p}.outcomesModule.primaryOutcomes"
    where_references = f"{p}.referencesModule.references"

    children = {
        "conditions": [(c,) for c in t.texts(conditions, "conditions", f"{p}.conditionsModule")],
        "interventions": [(t.text(i, "type", where_arms), t.text(i, "name", where_arms))
                          for i in t.objects(arms, "interventions", f"{p}.armsInterventionsModule")],
        "sponsors": sponsor_rows,
        "locations": [(t.text(loc, "facility", where_locations), t.text(loc, "city", where_locations),
                       t.text(loc, "state", where_locations), t.text(loc, "country", where_locations),
                       t.text(loc, "status", where_locations), t.text(loc, "zip", where_locations),
                       t.number(t.obj(loc, "geoPoint", where_locations), "lat", f"{where_locations}.geoPoint",
                                (p, "contactsLocationsModule", "locations", seq, "geoPoint"), LATITUDE_RANGE),
                       t.number(t.obj(loc, "geoPoint", where_locations), "lon", f"{where_locations}.geoPoint",
                                (p, "contactsLocationsModule", "locations", seq, "geoPoint"), LONGITUDE_RANGE))
                      for seq, loc in enumerate(locations)],
        "keywords": [(k,) for k in t.texts(conditions, "keywords", f"{p}.conditionsModule")],
        "secondary_ids": [(t.text(s, "id", where_ident), t.text(s, "type", where_ident),
                           t.text(s, "domain", where_ident))
                          for s in t.objects(ident, "secondaryIdInfos", f"{p}.identificationModule")],
        "mesh_terms": mesh_rows,
        "primary_outcomes": [(t.text(o, "measure", where_outcomes),)
                             for o in t.objects(outcomes, "primaryOutcomes", f"{p}.outcomesModule")],
        "central_contacts": [_contact(t, c, f"{p}.contactsLocationsModule.centralContacts")
                             for c in t.objects(contacts, "centralContacts", f"{p}.contactsLocationsModule")],
        "location_contacts": [(seq, *_contact(t, c, f"{where_locations}.contacts"))
                              for seq, loc in enumerate(locations)
                              for c in t.objects(loc, "contacts", where_locations)],
        "study_references": [(t.text(r, "pmid", where_references), t.text(r, "type", where_references))
                             for r in t.objects(references, "references", f"{p}.referencesModule")],
    }
    site_rows = children["locations"]
    children["study_countries"] = [(country,) for country in dict.fromkeys(row[3] for row in site_rows if row[3])]
    results = results_rows(t, record)
    return StudyRows(nct_id, study, children, site_points(site_rows), texts, results=results,
                     warnings=t.warnings(raw))


def site_points(site_rows: list[tuple]) -> list[tuple[int, int]]:
    """``(cell, seq)`` of the first site at each distinct point of a study's sites (``locations`` rows, in
    order), by cell: what ``site_points`` holds for it, so that a search by distance reads only the sites
    in the cells around a place (many sites share a point: the API gives a city's centre)."""
    first: dict[tuple, int] = {}
    for seq, row in enumerate(site_rows):
        if row[6] is not None and row[7] is not None:
            first.setdefault((row[6], row[7]), seq)
    return sorted((cell_of(lat, lon), seq) for (lat, lon), seq in first.items())


def _contact(t: _Typed, contact: dict, where: str) -> tuple:
    return (t.text(contact, "name", where), t.text(contact, "role", where), t.text(contact, "phone", where),
            t.text(contact, "email", where))
