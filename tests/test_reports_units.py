"""Direct unit tests of small promises of the reports layer: moments as --as-of reads them and why a search is
not full-text syntax (found unpinned by mutation testing); the parts of a record, the mark of what was written,
pages of studies and changes, and how fresh a topic is (what the MCP server answers with)."""

from __future__ import annotations

import pytest

from conftest import fixture_record, with_status
from trialsync import store
from trialsync.errors import UsageError
from trialsync.reports.common import read_day, read_moment, write_mark
from trialsync.reports.studies import RECORD_SECTIONS, record_parts


@pytest.mark.parametrize("text, moment", [
    ("2026-11-20", "2026-11-20T23:59:59Z"), (" 2026-11-20 ", "2026-11-20T23:59:59Z"),
    ("2026-11-20T00:00", "2026-11-20T00:00:00Z"), ("2026-11-20 23:59:59", "2026-11-20T23:59:59Z"),
    ("2026-11-20T12:30:45Z", "2026-11-20T12:30:45Z"), ("2026-11-20T07:05Z", "2026-11-20T07:05:00Z"),
])
def test_a_moment_is_a_day_s_end_or_the_time_given_in_utc(text, moment):
    assert read_moment(text) == moment


@pytest.mark.parametrize("text", ["2026-11-20T24:00", "2026-11-20T23:60", "2026-11-20T23:59:60"])
def test_a_time_past_the_clock_is_refused_naming_the_option(text):
    with pytest.raises(UsageError) as caught:
        read_moment(text, "--since")
    assert str(caught.value) == f"--since: {text!r} is not a time of day"


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-02-30", "", None, "2026-11-20T1:00"])
def test_what_is_no_moment_is_refused_saying_what_is_taken(text):
    with pytest.raises(UsageError) as caught:
        read_moment(text)
    assert str(caught.value) == ("--as-of takes a date (YYYY-MM-DD) or a date and time in UTC "
                                 f"(YYYY-MM-DDTHH:MM[:SS]), not {text!r}")


@pytest.mark.parametrize("text, day", [("2024", "2024-01-01"), ("2024-05", "2024-05-01"), (" 2024-05-17 ", "2024-05-17")])
def test_a_day_is_the_first_day_a_year_month_or_date_covers(text, day):
    assert read_day(text, "--started-after") == day


def test_what_is_no_day_is_refused_naming_the_option():
    with pytest.raises(UsageError) as caught:
        read_day("last year", "--started-after")
    assert str(caught.value) == "--started-after takes a date as YYYY, YYYY-MM or YYYY-MM-DD, not 'last year'"


def test_a_search_s_syntax_is_checked_against_the_index_s_own_columns(db):
    from trialsync.reports.studies import search_syntax_error

    assert search_syntax_error(db, "stem cell") is None
    assert search_syntax_error(db, "brief_title: stem") is None  # a column of the index
    assert search_syntax_error(db, "covid-19") == "no such column: 19"
    assert search_syntax_error(db, '"unclosed') == 'unterminated string'
    assert search_syntax_error(db, "nosuchcolumn: stem") == "no such column: nosuchcolumn"


def test_the_parts_of_a_record_keep_their_place_and_the_absent_ones_are_named_in_order():
    record = fixture_record("NCT00106392")  # one with results
    protocol = record["protocolSection"]
    parts, absent = record_parts(record, ["statusModule", "annotationSection", "eligibilityModule", "statusModule",
                                          "moreInfoModule", "largeDocumentModule"])
    assert parts == {"protocolSection": {"statusModule": protocol["statusModule"],
                                         "eligibilityModule": protocol["eligibilityModule"]},
                     "resultsSection": {"moreInfoModule": record["resultsSection"]["moreInfoModule"]}}
    assert absent == ["annotationSection", "largeDocumentModule"]


def test_a_section_asked_for_with_one_of_its_modules_is_given_whole_and_the_record_is_left_as_it_was():
    record = fixture_record("NCT00106392")
    kept = fixture_record("NCT00106392")
    for names in (["outcomeMeasuresModule", "resultsSection"], ["resultsSection", "outcomeMeasuresModule"]):
        parts, absent = record_parts(record, names)
        assert (parts, absent) == ({"resultsSection": kept["resultsSection"]}, [])
    assert record == kept


def test_every_section_and_module_of_the_real_records_is_known():
    from fakeapi import load_fixture_records

    for record in load_fixture_records():
        for section, value in record.items():
            if isinstance(value, dict):
                assert section in RECORD_SECTIONS and set(value) <= set(RECORD_SECTIONS[section]), section


def test_the_write_mark_moves_with_each_write_of_a_pull_or_a_topic_and_only_then(db):
    from trialsync.store import pulls
    from trialsync.topics import Topic

    marks = [write_mark(db)]
    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    marks.append(write_mark(db))
    pull = store.start_pull(db, "t")
    marks.append(write_mark(db))
    assert write_mark(db) == marks[-1]
    pulls.add_counts(db, pull, received=3)
    marks.append(write_mark(db))
    pulls.add_counts(db, pull, left_topic=1)
    marks.append(write_mark(db))
    store.finish_pull(db, pull, "complete")
    marks.append(write_mark(db))
    store.remove_topic(db, "t")
    marks.append(write_mark(db))
    assert len(set(marks)) == len(marks), marks


def test_pages_of_changes_and_studies_are_slices_of_the_whole(db):
    from trialsync.reports.changes import count_changes, list_changes
    from trialsync.reports.studies import StudyQuery, count_studies, list_studies
    from trialsync.store.studies import API, SaveContext, save_studies
    from trialsync.topics import Topic
    from trialsync.transform import study_rows

    ids = ["NCT05305430", "NCT05821920", "NCT06127745", "NCT06589271", "NCT05489822"]
    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    first = store.start_pull(db, "t")
    save_studies(db, [study_rows(fixture_record(i)) for i in ids], SaveContext("t", first, API, False, "2026-11-24"))
    store.finish_pull(db, first, "complete")
    later = store.start_pull(db, "t")
    save_studies(db, [study_rows(with_status(fixture_record(i), "COMPLETED", "2026-11-30")) for i in ids[:4]],
                 SaveContext("t", later, API, False, "2026-11-30"))
    store.finish_pull(db, later, "complete")
    every = list_changes(db, "t")
    assert len(every) == count_changes(db, "t") == 4
    assert [list_changes(db, "t", limit=3, offset=at) for at in (0, 3)] == [every[:3], every[3:]]
    assert list_changes(db, "t", offset=2) == every[2:]
    studies = list_studies(db, "t", StudyQuery(sort="nct"))
    assert [s["nct_id"] for s in studies] == sorted(ids)
    assert list_studies(db, "t", StudyQuery(sort="nct", limit=2, offset=2)) == studies[2:4]
    assert list_studies(db, "t", StudyQuery(sort="nct", offset=4)) == studies[4:]
    assert count_studies(db, "t", StudyQuery(sort="nct", limit=2, offset=2)) == 5
    assert count_studies(db, "t", StudyQuery(statuses=["COMPLETED"])) == 4


def test_a_topic_no_pull_completed_for_is_of_no_freshness_yet(db):
    from trialsync.reports.status import freshness
    from trialsync.topics import Topic

    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    store.finish_pull(db, store.start_pull(db, "t"), "failed", error="no network")
    assert freshness(db, "t") == {"topic": "t", "last_complete_pull": None, "kind": None, "data_timestamp": None}


# -- found unpinned by mutation testing: filters, orders and keys of the reports ------------------------------

IDS = ["NCT05305430", "NCT05821920", "NCT06127745", "NCT06589271", "NCT05489822"]


def _unknown(nct_id: str, last_known: str) -> dict:
    """A real record whose status went unknown, last known as ``last_known``."""
    record = with_status(fixture_record(nct_id), "UNKNOWN", "2026-11-30")
    record["protocolSection"]["statusModule"]["lastKnownStatus"] = last_known
    return record


def _pulled(db, records: list[dict], outcome: str = "complete", topic: str = "t") -> int:
    from trialsync.store.studies import API, SaveContext, save_studies
    from trialsync.transform import study_rows

    pull = store.start_pull(db, topic)
    save_studies(db, [study_rows(r) for r in records], SaveContext(topic, pull, API, False, "2026-12-01"))
    store.finish_pull(db, pull, outcome)
    return pull


@pytest.fixture
def two_pulls(db):
    """Topic ``t``: five real studies, then four of them COMPLETED (four changes in the second pull)."""
    from trialsync.topics import Topic

    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    first = _pulled(db, [fixture_record(i) for i in IDS])
    second = _pulled(db, [with_status(fixture_record(i), "COMPLETED", "2026-11-30") for i in IDS[:4]])
    return db, first, second


def test_changes_of_one_study_and_of_the_last_pulls(two_pulls):
    from trialsync.reports.changes import list_changes

    db, first, second = two_pulls
    one = list_changes(db, "t", nct_id=IDS[1])
    assert [(c["nct_id"], c["field"], c["new"]) for c in one] == [(IDS[1], "overall_status", "COMPLETED")]
    assert list_changes(db, nct_id=IDS[4]) == []
    assert {c["pull_id"] for c in list_changes(db, "t", pulls=1)} == {second}
    assert {c["pull_id"] for c in list_changes(db, pulls=1)} == {second}
    assert len(list_changes(db, "t", pulls=2)) == 4
    third = _pulled(db, [fixture_record(IDS[4])], outcome="unchanged")
    assert list_changes(db, "t", pulls=1) == [] and list_changes(db, pulls=1) == []
    assert third > second


def test_status_lists_unknown_studies_by_last_known_status_in_report_order(db):
    from trialsync.reports.status import status_report
    from trialsync.topics import Topic

    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    _pulled(db, [_unknown(IDS[0], "RECRUITING"), _unknown(IDS[1], "ACTIVE_NOT_RECRUITING"),
                 _unknown(IDS[2], "ACTIVE_NOT_RECRUITING"), fixture_record(IDS[3])])
    report = status_report(db, "t")
    # report order, not the alphabet's (which puts ACTIVE_NOT_RECRUITING first)
    assert list(report["unknown_by_last_known"].items()) == [("RECRUITING", 1), ("ACTIVE_NOT_RECRUITING", 2)]
    assert report["statuses"] == [{"status": "RECRUITING", "label": "Recruiting", "count": 1},
                                  {"status": "UNKNOWN", "label": "Unknown status", "count": 3}]


def test_the_previous_counts_are_the_complete_pull_before_the_newest_never_an_unchanged_one(two_pulls):
    from trialsync.reports.status import history, status_report

    db, first, second = two_pulls
    unchanged = _pulled(db, [], outcome="unchanged")
    db.execute("UPDATE pulls SET finished_at = '2026-12-01T00:00:01Z' WHERE id = ?", [unchanged])  # told apart
    third = _pulled(db, [with_status(fixture_record(IDS[4]), "COMPLETED", "2026-11-30")])
    report = status_report(db, "t")
    finished = db.execute("SELECT finished_at FROM pulls WHERE id = ?", [second]).fetchone()[0]
    assert report["previous"] == {"as_of": finished, "statuses": [
        {"status": "RECRUITING", "label": "Recruiting", "count": 1},
        {"status": "COMPLETED", "label": "Completed", "count": 4}]}
    rows = history(db, "t")
    assert [row["pull_id"] for row in rows] == [first, second, third]
    # report order: RECRUITING before COMPLETED, which the alphabet would put first
    assert list(rows[1]["statuses"].items()) == [("RECRUITING", 1), ("COMPLETED", 4)]


def test_a_topic_with_studies_but_no_complete_pull_counts_its_members(db):
    from trialsync.reports.studies import topic_rows
    from trialsync.topics import Topic

    store.save_topic(db, Topic("u", {"query.cond": "x", "query.term": ""}))
    _pulled(db, [fixture_record(i) for i in IDS[:2]], outcome="failed", topic="u")
    assert topic_rows(db) == [{"name": "u", "studies": 2, "last_pull": None, "search": "query.cond=x"}]


def test_a_topic_not_stored_has_epoch_0_no_pulls_and_nothing_to_report(two_pulls):
    from trialsync.errors import NotFound
    from trialsync.reports.changes import Digest, list_pulls, unreported_changes
    from trialsync.reports.common import topic_epoch
    from trialsync.topics import Topic

    db, first, second = two_pulls
    assert topic_epoch(db, "nope") == 0
    assert unreported_changes(db, "nope") == Digest("nope", [], 0)
    with pytest.raises(NotFound) as caught:
        list_pulls(db, "nope")
    assert str(caught.value) == "unknown topic 'nope': no pull or import of it is recorded"
    assert [p["id"] for p in list_pulls(db, "t")] == [second, first]
    store.remove_topic(db, "t")
    assert [p["id"] for p in list_pulls(db, "t")] == [second, first]  # its pulls are still on record
    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    assert topic_epoch(db, "t") == second and list_pulls(db, "t") == []


def test_a_sort_by_overdue_results_or_relevance_needs_due_results_or_words_and_names_the_sort(two_pulls):
    from trialsync.errors import InvalidValue
    from trialsync.reports.studies import StudyQuery, list_studies

    with pytest.raises(InvalidValue) as caught:
        list_studies(two_pulls[0], "t", StudyQuery(sort="overdue"))
    assert (caught.value.what, str(caught.value)) == (
        "sort", "sorting by how long results are overdue needs results that are due")
    with pytest.raises(InvalidValue) as caught:
        list_studies(two_pulls[0], "t", StudyQuery(sort="relevance"))
    assert (caught.value.what, str(caught.value)) == ("sort", "sorting by relevance needs words to search for")


def test_the_results_baseline_holds_its_counts_and_measurements():
    from trialsync.reports.results import results_of_rows
    from trialsync.transform import study_rows

    rows = study_rows(fixture_record("NCT00106392"))
    results = results_of_rows(rows)
    baseline = results["baseline"]
    assert set(baseline) == {"counts", "measurements"}
    assert len(baseline["counts"]) == len(rows.results["baseline_counts"]) > 0
    assert len(baseline["measurements"]) == len(rows.results["baseline_measurements"]) > 0


def test_the_overview_is_the_topic_s_reports_put_together(two_pulls):
    from trialsync.reports.breakdowns import DIMENSIONS, breakdown
    from trialsync.reports.changes import list_changes
    from trialsync.reports.overview import topic_overview
    from trialsync.reports.status import history, status_report, status_summary

    db, first, second = two_pulls
    overview = topic_overview(db, "t")
    report = status_report(db, "t")
    assert overview["topic"] == "t"
    assert overview["status"] == report and overview["summary"] == status_summary(report)
    assert overview["history"] == history(db, "t")
    assert overview["changes"] == list_changes(db, "t") and overview["changes_total"] == 4
    assert overview["breakdowns"] == {by: breakdown(db, "t", by) for by in DIMENSIONS}
    assert [s["nct_id"] for s in overview["studies"]] == sorted(IDS)


def test_a_feed_has_an_entry_per_study_and_pull_newest_first(two_pulls):
    from trialsync.reports.changes import NO_CHANGES_YET, feed_entries, list_changes
    from trialsync.topics import Topic

    db, first, second = two_pulls
    finished = db.execute("SELECT finished_at FROM pulls WHERE id = ?", [second]).fetchone()[0]
    feed = feed_entries(db, "t")
    assert (feed["topic"], feed["updated"]) == ("t", finished)
    assert [(e["pull_id"], e["nct_id"], e["updated"], len(e["changes"])) for e in feed["entries"]] == [
        (second, change["nct_id"], finished, 1) for change in list_changes(db, "t")]  # in the order seen
    assert sorted(e["nct_id"] for e in feed["entries"]) == sorted(IDS[:4])
    assert all(e["brief_title"] == e["changes"][0]["brief_title"] and e["brief_title"] for e in feed["entries"])
    assert len(feed_entries(db, "t", entries=2)["entries"]) == 2
    store.save_topic(db, Topic("empty", {"query.cond": "y"}))
    created = db.execute("SELECT created_at FROM topics WHERE name = 'empty'").fetchone()[0]
    assert feed_entries(db, "empty") == {"topic": "empty", "updated": created, "entries": []}
    assert feed_entries(db, "never-stored") == {"topic": "never-stored", "updated": NO_CHANGES_YET, "entries": []}


def test_a_condition_written_several_ways_counts_each_study_once_under_the_most_used_spelling(db):
    """Counted in Python from each study's rows together: a study writing one condition three ways is one study
    in it, and each way it writes it is one study's vote for that spelling."""
    from trialsync.reports.breakdowns import breakdown
    from trialsync.store.studies import API, SaveContext, save_studies
    from trialsync.topics import Topic
    from trialsync.transform import study_rows

    def with_conditions(nct_id: str, status: str, conditions: list[str]) -> dict:
        record = with_status(fixture_record(nct_id), status)
        record["protocolSection"].setdefault("conditionsModule", {})["conditions"] = conditions
        return record

    records = [with_conditions("NCT05305430", "RECRUITING", ["Low Back Pain", "low back pain", "LOW BACK PAIN"]),
               with_conditions("NCT05821920", "COMPLETED", ["Low back pain"]),
               with_conditions("NCT06127745", "RECRUITING", ["low back pain", "Sciatica"]),
               with_conditions("NCT06589271", "COMPLETED", [])]
    store.save_topic(db, Topic("t", {"query.cond": "x"}))
    pull = store.start_pull(db, "t")
    save_studies(db, [study_rows(r) for r in records], SaveContext("t", pull, API, False, "2026-11-24"))
    store.finish_pull(db, pull, "complete")
    report = breakdown(db, "t", "condition")
    assert report["total"] == 4 and report["multi"] is True
    assert [(row["value"], row["total"], row["statuses"]) for row in report["rows"]] == [
        ("low back pain", 3, {"RECRUITING": 2, "COMPLETED": 1}),  # written so by 2 studies, each other way by 1
        ("Sciatica", 1, {"RECRUITING": 1}),
        (None, 1, {"COMPLETED": 1}),
    ]
