"""The record transform: real records in, exact rows out; edge cases by deleting keys from real records."""

from __future__ import annotations

import copy
import json

import orjson
import pytest

from conftest import error_path, fixture_record, record_containers, record_leaves
from trialsync.dates import sortable_date
from trialsync.transform import (
    CHILD_COLUMNS, STUDY_COLUMNS, NotAStudyRecord, serialize, study_rows,
)


def row_dict(rows) -> dict:
    return dict(zip(STUDY_COLUMNS, rows.study))


def test_a_full_record_flattens_to_exact_columns_and_child_rows():
    record = fixture_record("NCT05489822")
    rows = study_rows(record)
    row = row_dict(rows)
    assert {k: v for k, v in row.items() if k not in ("raw", "brief_summary", "official_title", "eligibility_criteria")} == {
        "nct_id": "NCT05489822",
        "brief_title": "PMCF Study to Evaluate the VERTICALE® Cervical System in Spine Surgery According to Its Intended Use.",
        "acronym": None,
        "overall_status": "RECRUITING", "last_known_status": None, "why_stopped": None,
        "study_type": "OBSERVATIONAL", "phases": None, "enrollment_count": 20, "enrollment_type": "ESTIMATED",
        "start_date": "2023-01-13", "start_date_sort": "2023-01-13",
        "primary_completion_date": "2026-01", "primary_completion_date_sort": "2026-01-01",
        "completion_date": "2026-04", "completion_date_sort": "2026-04-01",
        "first_posted": "2022-08-05", "last_update_posted": "2024-04-18", "status_verified_date": "2024-04",
        "results_first_posted": None, "lead_sponsor": "Silony Medical GmbH", "lead_sponsor_class": "INDUSTRY",
        "has_results": 0, "location_count": 1, "version_holder": "2024-11-08",
        "min_age": "18 Years", "min_age_years": 18.0, "max_age": None, "max_age_years": None, "sex": "ALL",
        "healthy_volunteers": 0, "start_date_type": "ACTUAL", "primary_completion_date_type": "ESTIMATED",
        "completion_date_type": "ESTIMATED", "org_study_id": "TDII_2014-003_2.1_103", "allocation": None,
        "masking": None, "primary_purpose": None,
        "results_state": "not applicable", "results_due_date": None, "fdaaa801_violation": None,
    }
    assert "eligibility_criteria" not in row  # read from raw by the database, not stored twice
    assert orjson.loads(row["raw"]) == record
    assert rows.children["conditions"] == [("Degenerative Disc Disease (DDD)",), ("Instabilities",), ("Trauma",), ("Deformity",)]
    assert rows.children["interventions"] == [("DEVICE", "VERTICALE® Cervical System")]
    assert rows.children["sponsors"] == [("lead", "Silony Medical GmbH", "INDUSTRY")]
    assert rows.children["keywords"] == [("NDI",)]
    assert rows.children["mesh_terms"] == [("condition", "D055959", "Intervertebral Disc Degeneration")]
    assert rows.children["locations"] == [
        ("University of Illinois Hospital and Health Sciences System - UI Health", "Chicago", "Illinois", "United States",
         "RECRUITING", "60612", 41.85003, -87.65005)]
    assert rows.children["primary_outcomes"] == [
        ("Change of Neck Disability Index (NDI) preoperative (pre-op) compared to 3 month (± 1 month) and 12 months "
         "follow-up (± 1 month)",)]
    assert rows.children["study_countries"] == [("United States",)]
    assert rows.site_points == [((41 + 90) * 360 + (-88 + 180), 0)]
    assert rows.children["central_contacts"] == [("Ankit I. Mehta, MD", "CONTACT", "(847) 826-6280", "ankitm@uic.edu"),
                                                 ("Ralf Klabunde", "CONTACT", "+49 711 7825 0", "rklabunde@silony-medical.com")]
    assert rows.children["location_contacts"] == [(0, "Ankit I Mehta, MD", "CONTACT", None, "ankitm@uic.edu"),
                                                  (0, "Christine L Maley", "CONTACT", "(312) 996-2949", "cmaley@uic.edu")]
    assert rows.children["study_references"] == [("18803999", "BACKGROUND"), ("25837285", "BACKGROUND")]
    assert set(rows.children) == set(CHILD_COLUMNS)


@pytest.mark.parametrize("text, years", [
    ("18 Years", 18.0), ("1 Year", 1.0), ("6 Months", 0.5), ("2 Weeks", 14 / 365.25), ("30 Days", 30 / 365.25),
    ("1 Day", 1 / 365.25), ("12 Hours", 12 / 8766.0), ("90 Minutes", 90 / 525960.0), ("N/A", None), ("", None),
    ("Eighteen Years", None), ("18 Decades", None), ("18  Years", None), (None, None), (18, None),
])
def test_ages_are_read_in_years(text, years):
    from trialsync.transform.rows import age_in_years

    assert age_in_years(text) == years


def test_unknown_status_keeps_last_known_status_and_two_phases_are_both_kept():
    row = row_dict(study_rows(fixture_record("NCT02385136")))
    assert (row["overall_status"], row["last_known_status"]) == ("UNKNOWN", "NOT_YET_RECRUITING")
    assert row["phases"] == "PHASE1, PHASE2"
    assert (row["start_date"], row["start_date_sort"]) == ("2015-04", "2015-04-01")


def test_collaborators_intervention_mesh_terms_and_secondary_ids_are_rows():
    rows = study_rows(fixture_record("NCT02385136"))
    assert rows.children["sponsors"][1] == ("collaborator", "Hangzhou Cancer Hospital", "OTHER")
    assert ("intervention", "D000077204", "Temozolomide") in rows.children["mesh_terms"]
    secondary = study_rows(fixture_record("NCT01230762")).children["secondary_ids"]
    assert secondary == [("C-2002-014", None, None)]


@pytest.mark.parametrize("path, column, expected", [
    (("protocolSection", "armsInterventionsModule"), None, None),
    (("protocolSection", "designModule", "enrollmentInfo"), "enrollment_count", None),
    (("protocolSection", "statusModule", "startDateStruct"), "start_date_sort", None),
    (("protocolSection", "contactsLocationsModule"), "location_count", 0),
    (("protocolSection", "designModule", "phases"), "phases", None),
    (("hasResults",), "has_results", None),
    (("derivedSection",), "version_holder", None),
])
def test_missing_modules_give_empty_values_not_errors(path, column, expected):
    record = fixture_record("NCT05489822")
    if column == "phases":
        record = fixture_record("NCT02385136")
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    rows = study_rows(record)
    if column is None:
        assert rows.children["interventions"] == []
    else:
        assert row_dict(rows)[column] == expected


def test_the_transform_leaves_its_input_untouched():
    record = fixture_record("NCT02385136")
    before = copy.deepcopy(record)
    study_rows(record)
    assert record == before


@pytest.mark.parametrize("value", [[], "text", {"protocolSection": {}}, {"studies": []},
                                   {"protocolSection": {"identificationModule": {"nctId": "NCT123"}}}])
def test_values_that_are_not_study_records_are_refused(value):
    with pytest.raises(NotAStudyRecord):
        study_rows(value)


@pytest.mark.parametrize("text, expected", [("2019-03-14", "2019-03-14"), ("2019-03", "2019-03-01"),
                                            ("2019", "2019-01-01"), (None, None), ("March 2019", None)])
def test_sortable_dates(text, expected):
    assert sortable_date(text) == expected


def test_serialized_records_parse_back_to_exactly_the_record():
    record = fixture_record("NCT00329836")  # a record with a results section
    assert orjson.loads(serialize(record)) == record


# -- the typed reader at its edges, and the values every JSON gives ---------------------------------------


def _typed():
    from trialsync.transform.rows import _Typed

    return _Typed("NCT05489822")


@pytest.mark.parametrize("value", [0, -(2 ** 63), 2 ** 63 - 1, None])
def test_an_integer_inside_sqlites_range_is_kept(value):
    typed = _typed()
    assert typed.integer({"count": value}, "count", "enrollmentInfo") == value and typed.out_of_range == []


@pytest.mark.parametrize("value", [2 ** 63, -(2 ** 63) - 1, 2 ** 64, 2.0 ** 63, -(2.0 ** 63), float("inf")])
def test_an_integer_past_sqlites_range_is_left_empty_and_noted(value):
    typed = _typed()
    assert typed.integer({"count": value}, "count", "protocolSection.designModule.enrollmentInfo", ("a",)) is None
    assert typed.out_of_range == [("enrollmentInfo.count", ("a", "count"), value)]


# a float is refused whatever its size up to the range's ends (9.2e18 is just inside 2**63)
@pytest.mark.parametrize("value", [1.5, 9.2e18, -9.2e18, "12", True, [1]])
def test_an_integer_of_another_type_is_a_record_error_naming_both_types(value):
    from trialsync.errors import RecordError

    with pytest.raises(RecordError) as caught:
        _typed().integer({"count": value}, "count", "enrollmentInfo")
    got = {float: "a number", str: "a string", bool: "a boolean", list: "an array"}[type(value)]
    assert str(caught.value) == (f"NCT05489822: enrollmentInfo.count is {got}, where the API's spec has an "
                                 "integer; the record was not stored")


@pytest.mark.parametrize("value, kept", [(90, True), (-90, True), (90.0001, False), (-90.5, False), (0, True)])
def test_a_number_is_kept_inside_its_bounds_and_noted_outside(value, kept):
    typed = _typed()
    got = typed.number({"lat": value}, "lat", "geoPoint", (), bounds=(-90.0, 90.0))
    assert (got == value and typed.out_of_range == []) if kept else (got is None and len(typed.out_of_range) == 1)


def test_text_objects_and_their_wrong_types():
    from trialsync.errors import RecordError

    typed = _typed()
    assert typed.text({"a": "x"}, "a", "m") == "x" and typed.text({}, "a", "m") is None
    assert typed.obj({"a": {"b": 1}}, "a", "m") == {"b": 1} and typed.obj({}, "a", "m") == {}
    for reader, value in ((typed.text, 5), (typed.obj, [1]), (typed.obj, "x")):
        with pytest.raises(RecordError, match=r"^NCT05489822: m\.a is .*, where the API's spec has "):
            reader({"a": value}, "a", "m")
    assert str(typed._wrong("m", "a", None, str)) == ("NCT05489822: m.a is null, where the API's spec has a "
                                                       "string; the record was not stored")


def test_as_values_gives_flags_as_booleans_and_phases_as_a_list():
    from trialsync.transform import as_values

    row = {"has_results": 1, "healthy_volunteers": 0, "phases": "PHASE1, PHASE2", "nct_id": "x"}
    assert as_values(row) is row
    assert row == {"has_results": True, "healthy_volunteers": False, "phases": ["PHASE1", "PHASE2"], "nct_id": "x"}
    assert as_values({"has_results": None, "phases": None}) == {"has_results": None, "phases": []}
    assert as_values({"phases": ""}) == {"phases": []}
    assert as_values({"phases": ["NA"]}) == {"phases": ["NA"]}  # a list already stays as it is
    assert as_values({"lead_sponsor": "Mayo"}) == {"lead_sponsor": "Mayo"}


def test_a_virtual_column_reads_its_path_and_none_where_it_is_missing():
    from trialsync.transform import virtual_value

    record = fixture_record("NCT05489822")
    p = record["protocolSection"]
    assert virtual_value(record, "official_title") == p["identificationModule"]["officialTitle"]
    assert virtual_value(record, "brief_summary") == p["descriptionModule"]["briefSummary"]
    assert virtual_value(record, "eligibility_criteria") == p["eligibilityModule"]["eligibilityCriteria"]
    del p["descriptionModule"]
    assert virtual_value(record, "brief_summary") is None
    p["eligibilityModule"] = "not an object"
    assert virtual_value(record, "eligibility_criteria") is None


@pytest.mark.parametrize("value, got", [("12", "a string"), (True, "a boolean"), ({"a": 1}, "an object")])
def test_a_number_of_another_type_is_a_record_error_naming_both_types(value, got):
    from trialsync.errors import RecordError

    with pytest.raises(RecordError) as caught:
        _typed().number({"lat": value}, "lat", "geoPoint")
    assert str(caught.value) == (f"NCT05489822: geoPoint.lat is {got}, where the API's spec has a number; the "
                                 "record was not stored")


def test_a_number_out_of_its_bounds_is_noted_with_its_value_and_path():
    typed = _typed()
    assert typed.number({"lat": 1e300}, "lat", "protocolSection.x.geoPoint", ("locations", 0), (-90.0, 90.0)) is None
    assert typed.out_of_range == [("geoPoint.lat", ("locations", 0, "lat"), 1e300)]


def test_a_value_of_a_type_json_never_gives_is_named_by_its_python_type():
    assert "m.a is set, where" in str(_typed()._wrong("m", "a", {1}, str))


@pytest.mark.parametrize("value", [True, False, None])
def test_a_boolean_is_kept_and_another_type_is_a_record_error(value):
    from trialsync.errors import RecordError

    assert _typed().boolean({"b": value}, "b", "m") is value
    with pytest.raises(RecordError, match=r"^NCT05489822: m\.b is a string, where the API's spec has a boolean; "):
        _typed().boolean({"b": "yes"}, "b", "m")


# -- lists, dates and warnings of the typed reader; the record's bytes; the full-text values ---------------


@pytest.mark.parametrize("reader, good, bad_item, item_type", [("objects", [{"a": 1}], "x", "a string"),
                                                               ("texts", ["a", "b"], 3, "an integer")])
def test_a_list_reader_keeps_a_list_of_its_items_and_names_the_first_wrong_item(reader, good, bad_item, item_type):
    from trialsync.errors import RecordError

    read = getattr(_typed(), reader)
    assert read({"k": good}, "k", "m") is good and read({}, "k", "m") == [] and read({"k": None}, "k", "m") == []
    with pytest.raises(RecordError) as caught:
        read({"k": {"a": 1}}, "k", "m")
    assert str(caught.value).startswith("NCT05489822: m.k is an object, where the API's spec has an array;")
    with pytest.raises(RecordError) as caught:
        read({"k": [*good, bad_item]}, "k", "m")
    wanted = "an object" if reader == "objects" else "a string"
    assert str(caught.value) == (f"NCT05489822: m.k[{len(good)}] is {item_type}, where the API's spec has {wanted}; "
                                 "the record was not stored")


def test_a_date_and_its_type_are_read_from_their_struct_and_a_wrong_one_is_named_by_its_path():
    from trialsync.errors import RecordError

    typed = _typed()
    struct = {"startDateStruct": {"date": "2024-10", "type": "ESTIMATED"}}
    assert typed.date(struct, "startDateStruct", "s") == "2024-10"
    assert typed.date_type(struct, "startDateStruct", "s") == "ESTIMATED"
    assert typed.date({}, "startDateStruct", "s") is None and typed.date_type({}, "startDateStruct", "s") is None
    with pytest.raises(RecordError, match=r"^NCT05489822: s\.startDateStruct\.date is an integer, where"):
        typed.date({"startDateStruct": {"date": 2024}}, "startDateStruct", "s")
    with pytest.raises(RecordError, match=r"^NCT05489822: s\.startDateStruct\.type is an array, where"):
        typed.date_type({"startDateStruct": {"type": []}}, "startDateStruct", "s")


def test_warnings_name_each_field_once_with_its_first_value_as_sent_and_how_many_more():
    typed = _typed()
    raw = b'{"a": [{"n": 1e999}, {"n": 2e400}], "b": {"m": 99999999999999999999}}'
    typed.number({"n": float("inf")}, "n", "protocolSection.designModule.a", ("a", 0))
    typed.number({"n": float("inf")}, "n", "protocolSection.designModule.a", ("a", 1))
    typed.integer({"m": 99999999999999999999}, "m", "x.b", ("b",))
    assert typed.warnings(raw) == ["NCT05489822: a.n 1e999 (and 1 more) is out of range; left empty",
                                   "NCT05489822: x.b.m 99999999999999999999 is out of range; left empty"]
    assert _typed().warnings(raw) == []


def test_a_warning_falls_back_to_the_value_read_when_the_raw_bytes_do_not_hold_it():
    from trialsync.transform.rows import _value_at

    typed = _typed()
    typed.number({"n": 1e300}, "n", "m", ("gone",), (-1.0, 1.0))
    assert typed.warnings(b"not json") == ["NCT05489822: m.n 1e+300 is out of range; left empty"]
    assert _value_at({"a": [5]}, ("a", 0), 7) == "5" and _value_at({"a": [5]}, ("a", 3), 7) == "7"
    assert _value_at({"a": "text"}, ("a",), 2.5) == "2.5" and _value_at({"a": True}, ("a",), 1) == "1"
    assert _value_at(None, ("a",), 3) == "3" and _value_at({"a": 1.0}, ("a",), 9) == "1.0"


@pytest.mark.parametrize("where, short", [("protocolSection.designModule.enrollmentInfo.count", "enrollmentInfo.count"),
                                          ("protocolSection.designModule", "protocolSection.designModule"),
                                          ("resultsSection.a.b.c", "resultsSection.a.b.c"), ("count", "count")])
def test_a_warning_names_a_field_without_protocol_section_and_its_module(where, short):
    from trialsync.transform.rows import _short_field

    assert _short_field(where) == short


def test_a_record_holding_an_integer_past_64_bits_serializes_compactly_and_parses_back_exactly():
    import json

    record = {"protocolSection": {"designModule": {"enrollmentInfo": {"count": 2 ** 70}}}, "t": "Zürich ®"}
    raw = serialize(record)
    assert json.loads(raw) == record and raw == json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    assert b" " not in raw.replace(b"Z\xc3\xbcrich \xc2\xae", b"")


@pytest.mark.parametrize("value, message", [
    ([], "not a study record (no protocolSection)"),
    ({"protocolSection": []}, "not a study record (no protocolSection)"),
    ({"protocolSection": {"identificationModule": {"nctId": "NCT123"}}}, "study record without a valid NCT id ('NCT123')"),
])
def test_a_value_that_is_not_a_study_is_refused_saying_why(value, message):
    with pytest.raises(NotAStudyRecord) as caught:
        study_rows(value)
    assert str(caught.value) == message


def test_central_and_site_contacts_are_rows_of_name_role_phone_and_email():
    record = fixture_record("NCT05489822")
    locations = record["protocolSection"].setdefault("contactsLocationsModule", {}).setdefault("locations", [{}])
    contact = {"name": "A. Person", "role": "CONTACT", "phone": "555-0100", "email": "a@example.org"}
    record["protocolSection"]["contactsLocationsModule"]["centralContacts"] = [contact]
    locations[0]["contacts"] = [contact]
    rows = study_rows(record)
    assert rows.children["central_contacts"] == [("A. Person", "CONTACT", "555-0100", "a@example.org")]
    assert rows.children["location_contacts"] == [(0, "A. Person", "CONTACT", "555-0100", "a@example.org")]
    from trialsync.errors import RecordError

    contact["email"] = ["a@example.org"]
    with pytest.raises(RecordError, match=r"centralContacts\.email is an array"):
        study_rows(record)



@pytest.mark.parametrize("module", ["identificationModule", "statusModule", "designModule", "sponsorCollaboratorsModule",
                                    "conditionsModule", "armsInterventionsModule", "contactsLocationsModule",
                                    "descriptionModule", "eligibilityModule", "outcomesModule", "referencesModule"])
def test_a_module_of_the_wrong_type_is_named_by_its_path_and_the_type_it_holds(module):
    from trialsync.errors import RecordError

    record = fixture_record("NCT05489822")
    record["protocolSection"][module] = ["not", "an object"]
    if module == "identificationModule":  # the NCT id is read before the module's type is checked
        record["protocolSection"]["identificationModule"] = {"nctId": "NCT05489822", "orgStudyIdInfo": []}
        module = "identificationModule.orgStudyIdInfo"
    with pytest.raises(RecordError) as caught:
        study_rows(record)
    assert str(caught.value) == (f"NCT05489822: protocolSection.{module} is an array, where the API's spec has an "
                                 "object; the record was not stored")


@pytest.mark.parametrize("reader, value, got, wanted", [("text", 5, "an integer", "a string"),
                                                        ("obj", [1], "an array", "an object"),
                                                        ("obj", "x", "a string", "an object")])
def test_a_wrong_value_is_named_by_the_type_it_holds(reader, value, got, wanted):
    from trialsync.errors import RecordError

    with pytest.raises(RecordError) as caught:
        getattr(_typed(), reader)({"a": value}, "a", "m")
    assert str(caught.value) == f"NCT05489822: m.a is {got}, where the API's spec has {wanted}; the record was not stored"


READ_FIELDS = """hasResults derivedSection.miscInfoModule.versionHolder
derivedSection.miscInfoModule.submissionTracking.submissionInfos.releaseDate
derivedSection.miscInfoModule.submissionTracking.submissionInfos.resetDate
derivedSection.miscInfoModule.submissionTracking.submissionInfos.unreleaseDate
derivedSection.miscInfoModule.submissionTracking.submissionInfos.unreleaseDateUnknown
protocolSection.oversightModule.isFdaRegulatedDrug protocolSection.oversightModule.isFdaRegulatedDevice
protocolSection.oversightModule.isUsExport protocolSection.oversightModule.fdaaa801Violation
protocolSection.statusModule.dispFirstSubmitDate
derivedSection.conditionBrowseModule.meshes.id derivedSection.conditionBrowseModule.meshes.term
derivedSection.interventionBrowseModule.meshes.id derivedSection.interventionBrowseModule.meshes.term
protocolSection.armsInterventionsModule.interventions.name protocolSection.armsInterventionsModule.interventions.type
protocolSection.conditionsModule.conditions[0] protocolSection.conditionsModule.keywords[0]
protocolSection.contactsLocationsModule.centralContacts.email protocolSection.contactsLocationsModule.centralContacts.name
protocolSection.contactsLocationsModule.centralContacts.phone protocolSection.contactsLocationsModule.centralContacts.role
protocolSection.contactsLocationsModule.locations.city protocolSection.contactsLocationsModule.locations.contacts.email
protocolSection.contactsLocationsModule.locations.contacts.name protocolSection.contactsLocationsModule.locations.contacts.phone
protocolSection.contactsLocationsModule.locations.contacts.role protocolSection.contactsLocationsModule.locations.country
protocolSection.contactsLocationsModule.locations.facility protocolSection.contactsLocationsModule.locations.geoPoint.lat
protocolSection.contactsLocationsModule.locations.geoPoint.lon protocolSection.contactsLocationsModule.locations.state
protocolSection.contactsLocationsModule.locations.status protocolSection.contactsLocationsModule.locations.zip
protocolSection.descriptionModule.briefSummary protocolSection.designModule.designInfo.allocation
protocolSection.designModule.designInfo.maskingInfo.masking protocolSection.designModule.designInfo.primaryPurpose
protocolSection.designModule.enrollmentInfo.count protocolSection.designModule.enrollmentInfo.type
protocolSection.designModule.phases[0] protocolSection.designModule.studyType
protocolSection.eligibilityModule.eligibilityCriteria protocolSection.eligibilityModule.healthyVolunteers
protocolSection.eligibilityModule.maximumAge protocolSection.eligibilityModule.minimumAge
protocolSection.eligibilityModule.sex protocolSection.identificationModule.acronym
protocolSection.identificationModule.briefTitle protocolSection.identificationModule.officialTitle
protocolSection.identificationModule.orgStudyIdInfo.id protocolSection.identificationModule.secondaryIdInfos.domain
protocolSection.identificationModule.secondaryIdInfos.id protocolSection.identificationModule.secondaryIdInfos.type
protocolSection.outcomesModule.primaryOutcomes.measure protocolSection.referencesModule.references.pmid
protocolSection.referencesModule.references.type protocolSection.sponsorCollaboratorsModule.collaborators.class
protocolSection.sponsorCollaboratorsModule.collaborators.name protocolSection.sponsorCollaboratorsModule.leadSponsor.class
protocolSection.sponsorCollaboratorsModule.leadSponsor.name protocolSection.statusModule.completionDateStruct.date
protocolSection.statusModule.completionDateStruct.type protocolSection.statusModule.lastKnownStatus
protocolSection.statusModule.lastUpdatePostDateStruct.date protocolSection.statusModule.overallStatus
protocolSection.statusModule.primaryCompletionDateStruct.date protocolSection.statusModule.primaryCompletionDateStruct.type
protocolSection.statusModule.resultsFirstPostDateStruct.date protocolSection.statusModule.startDateStruct.date
protocolSection.statusModule.startDateStruct.type protocolSection.statusModule.statusVerifiedDate
protocolSection.statusModule.studyFirstPostDateStruct.date protocolSection.statusModule.whyStopped""".split()


def test_every_field_the_transform_reads_is_type_checked_and_named_by_its_own_path():
    """Each scalar of four real records (the fewest that hold the most fields; one given here the few fields
    none of them has) is set, one at a time, to a value of another type: the fields the transform reads are
    exactly READ_FIELDS, and each is refused under its own path and with the type it held."""
    from trialsync.errors import RecordError

    rich = fixture_record("NCT03683472")
    ident, status = rich["protocolSection"]["identificationModule"], rich["protocolSection"]["statusModule"]
    ident["acronym"], status["lastKnownStatus"] = "SPINE", "RECRUITING"
    ident.setdefault("secondaryIdInfos", [{"id": "X-1", "type": "OTHER"}])[0]["domain"] = "A domain"
    rich["protocolSection"]["contactsLocationsModule"]["locations"][0]["contacts"] = [
        {"name": "A. Person", "role": "CONTACT", "phone": "555-0100", "email": "a@example.org"}]
    rich["protocolSection"]["oversightModule"]["fdaaa801Violation"] = False
    status["dispFirstSubmitDate"] = "2023-01-01"
    rich["derivedSection"]["miscInfoModule"]["submissionTracking"]["submissionInfos"] = [
        {"releaseDate": "2022-02-21", "resetDate": "2022-03-18", "unreleaseDate": "2022-03-01", "unreleaseDateUnknown": False}]
    read = set()
    for record in (rich, *(fixture_record(n) for n in ("NCT05844332", "NCT05827016", "NCT04326231"))):
        raw, nct_id = orjson.dumps(record), record["protocolSection"]["identificationModule"]["nctId"]
        for path, value in record_leaves({key: value for key, value in record.items() if key != "resultsSection"}):
            if path[-1] == "nctId":
                continue
            changed = orjson.loads(raw)
            parent = changed
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]], held = ("seven", "a string") if not isinstance(value, str) else (7, "an integer")
            try:
                study_rows(changed)
            except RecordError as error:
                assert str(error).startswith(f"{nct_id}: {error_path(path)} is {held}, where the API's spec has "), error
                read.add(error_path(path))
    assert sorted(read) == sorted(READ_FIELDS)


READ_CONTAINERS = """derivedSection derivedSection.conditionBrowseModule derivedSection.conditionBrowseModule.meshes
derivedSection.conditionBrowseModule.meshes[0] derivedSection.interventionBrowseModule
derivedSection.interventionBrowseModule.meshes derivedSection.interventionBrowseModule.meshes[0]
derivedSection.miscInfoModule derivedSection.miscInfoModule.submissionTracking
derivedSection.miscInfoModule.submissionTracking.submissionInfos
derivedSection.miscInfoModule.submissionTracking.submissionInfos[0] protocolSection.oversightModule
protocolSection.armsInterventionsModule
protocolSection.armsInterventionsModule.interventions protocolSection.armsInterventionsModule.interventions[0]
protocolSection.conditionsModule protocolSection.conditionsModule.conditions protocolSection.conditionsModule.keywords
protocolSection.contactsLocationsModule protocolSection.contactsLocationsModule.centralContacts
protocolSection.contactsLocationsModule.centralContacts[0] protocolSection.contactsLocationsModule.locations
protocolSection.contactsLocationsModule.locations[0] protocolSection.contactsLocationsModule.locations.contacts
protocolSection.contactsLocationsModule.locations.contacts[0] protocolSection.contactsLocationsModule.locations.geoPoint
protocolSection.descriptionModule protocolSection.designModule protocolSection.designModule.designInfo
protocolSection.designModule.designInfo.maskingInfo protocolSection.designModule.enrollmentInfo
protocolSection.designModule.phases protocolSection.eligibilityModule protocolSection.identificationModule.orgStudyIdInfo
protocolSection.identificationModule.secondaryIdInfos protocolSection.identificationModule.secondaryIdInfos[0]
protocolSection.outcomesModule protocolSection.outcomesModule.primaryOutcomes
protocolSection.outcomesModule.primaryOutcomes[0] protocolSection.referencesModule
protocolSection.referencesModule.references protocolSection.referencesModule.references[0]
protocolSection.sponsorCollaboratorsModule protocolSection.sponsorCollaboratorsModule.collaborators
protocolSection.sponsorCollaboratorsModule.collaborators[0] protocolSection.sponsorCollaboratorsModule.leadSponsor
protocolSection.statusModule protocolSection.statusModule.completionDateStruct
protocolSection.statusModule.lastUpdatePostDateStruct protocolSection.statusModule.primaryCompletionDateStruct
protocolSection.statusModule.resultsFirstPostDateStruct protocolSection.statusModule.startDateStruct
protocolSection.statusModule.studyFirstPostDateStruct""".split()


def test_every_object_and_list_the_transform_reads_is_type_checked_and_named_by_its_own_path():
    """As above, for each object and list of the same real records set, one at a time, to a string."""
    from trialsync.errors import RecordError

    read = set()
    for nct_id in ("NCT03683472", "NCT05844332", "NCT05827016", "NCT04326231"):
        raw = orjson.dumps(fixture_record(nct_id))
        for path in record_containers({key: value for key, value in orjson.loads(raw).items() if key != "resultsSection"}):
            if path in (("protocolSection",), ("protocolSection", "identificationModule")):
                continue  # without them the record is no study at all (tested above)
            changed = orjson.loads(raw)
            parent = changed
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = "seven"
            try:
                study_rows(changed)
            except RecordError as error:
                assert str(error).startswith(f"{nct_id}: {error_path(path)} is a string, where the API's spec has "), error
                read.add(error_path(path))
    assert sorted(read) == sorted(READ_CONTAINERS), sorted(set(read) ^ set(READ_CONTAINERS))


def test_a_maximum_age_is_read_in_years_and_a_site_without_a_status_still_names_its_country():
    record = fixture_record("NCT03683472")
    record["protocolSection"]["eligibilityModule"].update(minimumAge="18 Years", maximumAge="6 Months")
    site = record["protocolSection"]["contactsLocationsModule"]["locations"][0]
    site.pop("status", None)
    rows = study_rows(record)
    assert (rows.value("min_age_years"), rows.value("max_age_years")) == (18.0, 0.5)
    assert (site["country"],) in rows.children["study_countries"]


def test_a_warning_quotes_each_number_out_of_range_as_the_api_wrote_it():
    """A site's point and the enrollment, past their ranges on a real record, written as the API might write them
    (``1E300``, not Python's ``1e+300``): each warning quotes the text found at the field's own path."""
    record = fixture_record("NCT05489822")
    record["protocolSection"]["contactsLocationsModule"]["locations"][0]["geoPoint"] = {"lat": 1e300, "lon": -2e300}
    record["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = 2 ** 64
    raw = json.dumps(record).replace("-2e+300", "-2.0E+300").replace("1e+300", "1E300").encode()
    rows = study_rows(record, raw)
    assert rows.warnings == [
        "NCT05489822: enrollmentInfo.count 18446744073709551616 is out of range; left empty",
        "NCT05489822: locations.geoPoint.lat 1E300 is out of range; left empty",
        "NCT05489822: locations.geoPoint.lon -2.0E+300 is out of range; left empty"]
    assert rows.value("enrollment_count") is None
