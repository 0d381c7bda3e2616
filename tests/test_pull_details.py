"""Pull behaviours that mutation testing (mutmut on trialsync/sync/pull.py and listing.py) showed no test pinned
down: studies fetched by id (batching, progress, a study back byte for byte, an API that will not return a listed
study), the changed-since filter with and without a topic's own filter, the watermark, what the pulls row
records, each way a pull can end, the digest of a first pull, and what a pull says while it waits.
Every record is a real fixture record, or one derived from it in the test."""

from __future__ import annotations

import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, with_status
from fakeapi import Corpus, FakeApi
from trialsync import reports, store
from trialsync.sync import saving as saving_module
from trialsync.api import ApiClient
from trialsync.errors import ApiError, IncompleteListing, Interrupted, RecordError, TrialsyncError
from trialsync.sync import listing as listing_module
from trialsync.sync import pull as pull_module
from trialsync.sync.pull import PullOptions, changed_since_filter, pull_topic, search_batches
from trialsync.topics import BUILTIN_TOPICS, Topic

TOPIC = BUILTIN_TOPICS["stem-cell-spine"]
# The three spine studies with the oldest last-update dates: an incremental query (from the day before the
# newest date, 2024-09-19) never returns them, so a change to them that keeps their date is seen only by the
# id listing, and they are fetched by id.
OLD_DATED = ["NCT01824108", "NCT04188236", "NCT05508360"]


@pytest.fixture
def server():
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as api:
        yield api


def client_for(server: FakeApi, **kwargs) -> ApiClient:
    return ApiClient(base_url=server.url, rate=0, **kwargs)


def pull(db, server: FakeApi, client: ApiClient | None = None, progress=None, **options):
    if store.topic_state(db, TOPIC.name) is None:
        store.save_topic(db, TOPIC)
    kwargs = {"progress": progress} if progress else {}
    return pull_topic(db, client or client_for(server), TOPIC.name, PullOptions(**options), **kwargs)


def ids_requests(server: FakeApi) -> list[str]:
    """The ``filter.ids`` of each by-id batch asked for (a batch's first page; a full page brings a second)."""
    return [params["filter.ids"] for _, params in server.requests
            if params.get("filter.ids") and "pageToken" not in params]


def stored_status(db, nct_id: str) -> str:
    return db.execute("SELECT overall_status FROM studies WHERE nct_id = ?", [nct_id]).fetchone()[0]


def test_the_changed_since_filter_of_a_topic_without_its_own_filter_is_the_date_range_alone():
    assert changed_since_filter("2026-11-01", None) == "AREA[LastUpdatePostDate]RANGE[2026-10-31,MAX]"
    assert changed_since_filter("2026-11-01", "") == "AREA[LastUpdatePostDate]RANGE[2026-10-31,MAX]"


def test_an_incremental_pull_of_a_topic_without_a_filter_sends_the_date_range_alone(db, server):
    pull(db, server)
    server.data_timestamp = "2026-11-25T09:00:00"
    server.reset_log()
    assert pull(db, server).mode == "incremental"
    incremental = [p for _, p in server.requests if p.get("filter.advanced")]
    assert incremental and {p["filter.advanced"] for p in incremental} == {
        "AREA[LastUpdatePostDate]RANGE[2024-09-18,MAX]"}


def test_studies_changed_without_a_new_date_are_fetched_by_id_in_one_request_and_reported(db, server):
    pull(db, server)
    for nct_id in OLD_DATED:
        server.corpus.put(with_status(fixture_record(nct_id), "TERMINATED"))  # same last-update date
    server.data_timestamp = "2026-11-25T09:00:00"
    server.reset_log()
    events = []

    result = pull(db, server, progress=lambda stage, done, total: events.append((stage, done, total)))

    assert (result.outcome, result.mode, result.refetched) == ("complete", "incremental", 3)
    assert ids_requests(server) == [",".join(sorted(OLD_DATED))]  # one batch, each id once
    assert [e for e in events if e[0] == "missing"] == [("missing", 3, 3)]
    assert {i: stored_status(db, i) for i in OLD_DATED} == dict.fromkeys(OLD_DATED, "TERMINATED")
    changes = [(c["nct_id"], c["field"], c["new"]) for c in reports.list_changes(db) if c["pull_id"] == result.pull_id]
    assert sorted(changes) == [(i, "overall_status", "TERMINATED") for i in sorted(OLD_DATED)]
    # the day of overlap brings back the newest study unchanged; the three fetched by id are the updates
    assert (result.counts.received, result.counts.updated, result.counts.unchanged) == (4, 3, 1)


def test_ids_past_one_request_are_fetched_in_batches_that_cover_each_id_once(monkeypatch):
    monkeypatch.setattr(listing_module, "IDS_PER_REQUEST", 2)
    five = SPINE_CONDITION_IDS[:5]
    batches = search_batches({"query.cond": "x", "filter.ids": ",".join(five)})
    assert [b["filter.ids"] for b in batches] == [",".join(five[:2]), ",".join(five[2:4]), five[4]]
    assert all(b["query.cond"] == "x" for b in batches)
    assert search_batches({"query.cond": "x", "filter.ids": ",".join(SPINE_CONDITION_IDS[:2])}) == [
        {"query.cond": "x", "filter.ids": ",".join(SPINE_CONDITION_IDS[:2])}]


def test_refetching_more_ids_than_one_request_holds_sends_consecutive_batches(db, server, monkeypatch):
    pull(db, server)
    for nct_id in OLD_DATED:
        server.corpus.put(with_status(fixture_record(nct_id), "WITHDRAWN"))
    server.data_timestamp = "2026-11-25T09:00:00"
    server.reset_log()
    monkeypatch.setattr(listing_module, "IDS_PER_REQUEST", 2)
    events = []

    result = pull(db, server, progress=lambda stage, done, total: events.append((stage, done, total)))

    ordered = sorted(OLD_DATED)
    assert result.refetched == 3
    assert ids_requests(server) == [",".join(ordered[:2]), ordered[2]]
    assert [e for e in events if e[0] == "missing"] == [("missing", 2, 3), ("missing", 3, 3)]
    assert {i: stored_status(db, i) for i in OLD_DATED} == dict.fromkeys(OLD_DATED, "WITHDRAWN")


def test_a_study_back_with_the_same_bytes_rejoins_on_an_incremental_pull(db, server):
    pull(db, server)
    nct_id = OLD_DATED[0]  # its old date keeps it out of the changed-since query: only the id listing sees it
    record = server.corpus.get(nct_id)
    server.corpus.remove(nct_id)
    server.data_timestamp = "2026-11-25T09:00:00"
    assert pull(db, server).left == 1
    server.corpus.put(record)
    server.data_timestamp = "2026-11-26T09:00:00"

    result = pull(db, server)

    assert (result.mode, result.refetched, result.counts.rejoined) == ("incremental", 1, 1)
    assert nct_id in store.present_ids(db, TOPIC.name)
    events = [(c["field"], c["old"], c["new"]) for c in reports.list_changes(db)
              if c["pull_id"] == result.pull_id and c["nct_id"] == nct_id]
    assert events == [("membership", "left", "present")]


def serve_instead_by_id(server: FakeApi, monkeypatch, answer) -> None:
    """Make the stand-in answer a ``filter.ids`` request with ``answer(wanted ids)`` instead of those ids."""
    real = server.corpus.select

    def select(params):
        ids = real(params)
        return answer(ids) if params.get("filter.ids") else ids

    monkeypatch.setattr(server.corpus, "select", select)


def test_a_study_the_listing_holds_but_the_api_does_not_return_by_id_fails_the_pull(db, server, monkeypatch):
    pull(db, server)
    silent = OLD_DATED[0]
    server.corpus.put(with_status(fixture_record(silent), "SUSPENDED"))
    server.corpus.remove(OLD_DATED[1])  # would be marked left by a trusted listing
    server.data_timestamp = "2026-11-25T09:00:00"
    other = SPINE_CONDITION_IDS[-1]
    serve_instead_by_id(server, monkeypatch, lambda ids: [other])  # a study, but not the one asked for

    with pytest.raises(IncompleteListing) as caught:
        pull(db, server)

    message = str(caught.value)
    assert f"the API lists {silent} in topic {TOPIC.name} but does not return it by id" in message
    assert "asked 3 times" in message
    assert ids_requests(server) == [silent] * 3
    assert stored_status(db, silent) == fixture_record(silent)["protocolSection"]["statusModule"]["overallStatus"]
    assert store.present_ids(db, TOPIC.name) == set(SPINE_CONDITION_IDS)  # nothing concluded: nothing left
    assert db.execute("SELECT outcome, error FROM pulls ORDER BY id DESC LIMIT 1").fetchone() == ("failed", message)


def test_a_batch_by_id_that_sends_a_study_twice_fails_naming_the_studies_fetched_by_id(db, server, monkeypatch):
    pull(db, server)
    silent = OLD_DATED[0]
    server.corpus.put(with_status(fixture_record(silent), "SUSPENDED"))
    server.data_timestamp = "2026-11-25T09:00:00"
    serve_instead_by_id(server, monkeypatch, lambda ids: ids + ids)

    with pytest.raises(IncompleteListing) as caught:
        pull(db, server)

    assert "the API's answer for studies fetched by id is not complete: 1 study came twice" in str(caught.value)
    assert stored_status(db, silent) == fixture_record(silent)["protocolSection"]["statusModule"]["overallStatus"]


def refresh_during_the_first_listing(server: FakeApi, monkeypatch, joiner: dict | None = None) -> list[list[str]]:
    """Make the registry refresh right after the pull's first status listing (its new release holding
    ``joiner`` too, if given). Returns the ids of each listing taken, in order."""
    real = pull_module.list_statuses
    listings: list[list[str]] = []

    def listing(client, search, progress):
        statuses = real(client, search, progress)
        if not listings:
            server.data_timestamp = "2026-11-25T10:30:00"
            if joiner is not None:
                server.corpus.put(joiner)
        listings.append(sorted(statuses))
        return statuses

    monkeypatch.setattr(pull_module, "list_statuses", listing)
    return listings


def test_a_refresh_during_the_listing_is_announced_while_the_topic_is_listed_again(db, server, monkeypatch):
    pull(db, server)
    server.data_timestamp = "2026-11-25T09:00:00"
    calls = refresh_during_the_first_listing(server, monkeypatch)
    waits = []
    result = pull(db, server, client=client_for(server, on_wait=waits.append))

    assert result.outcome == "complete" and len(calls) == 2
    assert waits == ["the registry refreshed its data during the pull; listing the topic again"]


def test_a_study_that_joins_in_the_refresh_met_while_listing_is_fetched_by_id(db, server, monkeypatch):
    pull(db, server)
    server.data_timestamp = "2026-11-25T09:00:00"
    joiner = fixture_record("NCT00042536")  # a real study outside the spine set, last updated long ago
    joiner_id = joiner["protocolSection"]["identificationModule"]["nctId"]
    calls = refresh_during_the_first_listing(server, monkeypatch, joiner)  # the new release holds one more study
    server.reset_log()
    result = pull(db, server)

    assert joiner_id not in calls[0] and joiner_id in calls[1]
    assert ids_requests(server) == [joiner_id]
    assert (result.outcome, result.refetched, result.left) == ("complete", 1, 0)
    assert store.present_ids(db, TOPIC.name) == set(SPINE_CONDITION_IDS) | {joiner_id}
    assert db.execute("SELECT CAST(raw AS BLOB) FROM studies WHERE nct_id = ?", [joiner_id]).fetchone()[0] == \
        server.corpus.body[joiner_id]


def test_a_registry_that_keeps_refreshing_fails_the_pull_and_concludes_nothing(db, server, monkeypatch):
    pull(db, server)
    server.data_timestamp = "2026-11-25T09:00:00"
    server.corpus.remove(OLD_DATED[0])  # a listing that could be trusted would mark it left
    answer = server.answer
    minutes = iter(range(10, 60))

    def refreshing(path, params, fault=None):
        if path.endswith("/version"):  # every look at the data's timestamp finds a newer one
            server.data_timestamp = f"2026-11-25T10:{next(minutes):02d}:00"
        return answer(path, params, fault)

    monkeypatch.setattr(server, "answer", refreshing)

    with pytest.raises(IncompleteListing) as caught:
        pull(db, server)

    assert str(caught.value) == (f"the registry's data kept changing while topic {TOPIC.name} was listed (3 times); "
                                 "nothing was concluded from the listing")
    assert store.present_ids(db, TOPIC.name) == set(SPINE_CONDITION_IDS)
    assert db.execute("SELECT outcome FROM pulls ORDER BY id DESC LIMIT 1").fetchone() == ("failed",)


def test_studies_are_stored_as_the_exact_bytes_the_api_sent_not_re_serialised(db, server):
    import json

    for nct_id in SPINE_CONDITION_IDS[:3]:  # the same records, sent with spaces after ':' and ','
        server.corpus.body[nct_id] = json.dumps(fixture_record(nct_id), ensure_ascii=False).encode()
    result = pull(db, server)
    assert result.counts.new == len(SPINE_CONDITION_IDS)
    stored = dict(db.execute("SELECT nct_id, CAST(raw AS BLOB) FROM studies"))
    assert all(stored[i] == server.corpus.body[i] for i in SPINE_CONDITION_IDS)
    assert b'", "' in stored[SPINE_CONDITION_IDS[0]]


def test_a_served_study_without_an_nct_id_fails_the_pull_naming_the_problem(db, server):
    import orjson

    broken = fixture_record(SPINE_CONDITION_IDS[0])
    del broken["protocolSection"]["identificationModule"]["nctId"]
    server.corpus.body[SPINE_CONDITION_IDS[0]] = orjson.dumps(broken)

    with pytest.raises(RecordError, match="study record without a valid NCT id"):
        pull(db, server)
    assert db.execute("SELECT outcome FROM pulls").fetchone() == ("failed",)


def test_an_incremental_pull_keeps_the_topics_own_advanced_filter(db, server):
    phase2 = Topic("spine-phase2", {**TOPIC.params, "filter.advanced": "AREA[Phase]PHASE2"})
    store.save_topic(db, phase2)
    pull_topic(db, client_for(server), phase2.name)
    server.data_timestamp = "2026-11-25T09:00:00"
    server.reset_log()

    result = pull_topic(db, client_for(server), phase2.name)

    assert result.mode == "incremental"
    searches = [p for path, p in server.requests
                if path.endswith("/studies") and "fields" not in p and "filter.ids" not in p]
    assert searches and {p["filter.advanced"] for p in searches} == {
        "(AREA[Phase]PHASE2) AND AREA[LastUpdatePostDate]RANGE[2024-09-18,MAX]"}
    listings = [p for _, p in server.requests if p.get("fields")]
    assert listings and {p["filter.advanced"] for p in listings} == {"AREA[Phase]PHASE2"}


def test_a_small_topic_is_listed_whole_at_every_pull_whatever_list_every_says(db, server):
    """A listing of 13 studies is one request: no list of the registry's changes can cost less."""
    pull(db, server)
    checked = []
    for day in range(25, 29):
        server.data_timestamp = f"2026-11-{day}T09:00:00"
        result = pull(db, server, list_every=2)
        checked.append((result.membership_checked, result.reconciled))
    assert checked == [(True, "listing")] * 4
    assert db.execute("SELECT reconciled FROM pulls ORDER BY id").fetchall() == [("full",)] + [("listing",)] * 4


def test_a_skipped_pull_reports_no_change_of_search(db, server):
    pull(db, server)
    result = pull(db, server)
    assert (result.outcome, result.mode, result.search_changed, result.membership_checked) == (
        "unchanged", "skipped", False, False)


def test_a_full_re_pull_logs_a_study_that_joined_as_added(db, server):
    pull(db, server)
    joiner = fixture_record("NCT00042536")
    joiner_id = joiner["protocolSection"]["identificationModule"]["nctId"]
    server.corpus.put(joiner)
    server.data_timestamp = "2026-11-25T09:00:00"

    result = pull(db, server, full=True)

    assert (result.mode, result.counts.new, result.first_fill) == ("full", 1, False)
    events = [(c["nct_id"], c["field"], c["old"], c["new"]) for c in reports.list_changes(db, TOPIC.name)
              if c["pull_id"] == result.pull_id]
    assert events == [(joiner_id, "membership", None, "added")]
    assert [c["nct_id"] for c in reports.unreported_changes(db, TOPIC.name).changes] == [joiner_id]


def test_a_full_pull_reports_its_progress_page_by_page_against_the_announced_total(db, server):
    events = []
    result = pull(db, server, progress=lambda stage, done, total: events.append((stage, done, total)), page_size=5)
    total = len(SPINE_CONDITION_IDS)
    assert result.total_count == total
    assert [e for e in events if e[0] == "studies"] == [("studies", 5, total), ("studies", 10, total),
                                                         ("studies", total, total)]


def test_the_pull_row_counts_the_requests_sent_so_far_after_each_page(db, server):
    # A pull killed midway keeps its row as the last page left it: the requests asked so far are there.
    seen = []

    def progress(stage, done, total):
        if stage == "studies":
            seen.append(db.execute("SELECT requests FROM pulls ORDER BY id DESC LIMIT 1").fetchone()[0])

    result = pull(db, server, progress=progress, page_size=5)
    # /version and the first page at least (the next pages may be asked for ahead of the writing)
    assert result.requests == len(server.requests)
    assert len(seen) == 3 and 2 <= seen[0] <= seen[1] <= seen[2] <= result.requests


def test_the_pull_row_records_the_apis_data_timestamp_version_and_announced_total(db, server):
    result = pull(db, server, page_size=5)
    row = db.execute("SELECT data_timestamp, api_version, total_count, mode, outcome FROM pulls WHERE id = ?",
                     [result.pull_id]).fetchone()
    assert row == (server.data_timestamp, "2.0.5", len(SPINE_CONDITION_IDS), "full", "complete")
    assert reports.list_pulls(db, TOPIC.name)[0]["data_timestamp"] == server.data_timestamp
    # the watermark the pull reached is kept with the pull and with its topic, and the API version beside it
    assert db.execute("SELECT watermark FROM pulls WHERE id = ?", [result.pull_id]).fetchone() == ("2024-09-19",)
    assert db.execute("SELECT watermark, data_timestamp, api_version FROM topics WHERE name = ?",
                      [TOPIC.name]).fetchone() == ("2024-09-19", server.data_timestamp, "2.0.5")


def test_pulls_through_a_reused_client_count_only_their_own_requests(db, server):
    client = client_for(server)  # as `trialsync pull` with several topics: one client for every pull
    first = pull(db, server, client=client)
    assert first.requests == client.requests_made == len(server.requests)
    server.data_timestamp = "2026-11-25T09:00:00"
    server.reset_log()
    second = pull(db, server, client=client)
    assert second.mode == "incremental" and second.requests == len(server.requests) == client.requests_made - first.requests
    result = pull(db, server, client=client)
    assert (result.outcome, result.requests) == ("unchanged", 1)
    watermark = store.topic_state(db, TOPIC.name).watermark
    assert watermark == "2024-09-19"
    assert db.execute("SELECT watermark, requests FROM pulls WHERE id = ?", [result.pull_id]).fetchone() == (
        watermark, 1)


def test_an_incremental_pull_that_receives_nothing_keeps_the_watermark(db, server):
    pull(db, server)
    server.corpus.remove("NCT06589271")  # the newest study (2024-09-19) leaves: the changed-since query is empty
    server.data_timestamp = "2026-11-25T09:00:00"
    result = pull(db, server)
    assert (result.mode, result.counts.received, result.left) == ("incremental", 0, 1)
    assert store.topic_state(db, TOPIC.name).watermark == "2024-09-19"
    server.data_timestamp = "2026-11-26T09:00:00"
    assert pull(db, server).mode == "incremental"


def test_a_study_dated_after_the_apis_data_day_does_not_move_the_watermark(db, server):
    server.data_timestamp = "2024-09-10T09:00:00"  # older than the newest study's last update (2024-09-19)
    result = pull(db, server)
    assert result.outcome == "complete"
    assert store.topic_state(db, TOPIC.name).watermark == "2024-08-12"  # the newest date on or before that day
    warnings = [(c["nct_id"], c["new"]) for c in reports.list_changes(db) if c["field"] == "warning"]
    assert [nct_id for nct_id, _ in warnings] == ["NCT06589271"]
    assert warnings[0][1].startswith("last update posted 2024-09-19 is after the API's data date ")
    assert warnings[0][1].endswith("; it does not move the watermark")


def test_the_future_date_warning_names_the_apis_own_data_date(db, server):
    server.data_timestamp = "2024-09-10T09:00:00"
    pull(db, server)
    [warning] = [c["new"] for c in reports.list_changes(db) if c["field"] == "warning"]
    assert "2024-09-10" in warning and "2024-09-11" not in warning, warning


def test_an_imported_study_dated_after_today_is_stored_with_a_warning_naming_today(db, monkeypatch):
    from trialsync.sync import files
    from trialsync.sync.files import import_records

    monkeypatch.setattr(files, "utc_today", lambda: "2026-11-20")
    store.save_topic(db, TOPIC)
    future = with_status(fixture_record("NCT06589271"), "RECRUITING", updated="2027-01-05")  # a date still to come
    import_records(db, [future], TOPIC.name, source="ctg-studies.json")
    warnings = [c["new"] for c in reports.list_changes(db) if c["field"] == "warning"]
    assert warnings == ["last update posted 2027-01-05 is after today (2026-11-20); it does not move the watermark"]


def test_a_pull_that_fails_on_a_later_page_reports_the_api_error_and_keeps_the_pages_written(db, server):
    server.inject("page:middle", "500", times=10)
    client = client_for(server, attempts=2)
    client.version()  # a request before this pull: not one of the pull's
    with pytest.raises(ApiError, match="HTTP 500: upstream error") as caught:
        pull(db, server, client=client, page_size=5)
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 5
    assert db.execute("SELECT outcome, error, requests FROM pulls").fetchone() == (
        "failed", str(caught.value), client.requests_made - 1)


def failing_progress(exc: BaseException):
    def progress(stage, done, total):
        if stage == "studies":
            raise exc
    return progress


def test_a_full_disk_while_writing_names_the_database_and_fails_the_pull(db, server, monkeypatch):
    import sqlite3

    from trialsync.errors import StoreError

    def full_disk(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(saving_module, "save_studies", full_disk)
    client = client_for(server)
    client.version()
    path = db.execute("PRAGMA database_list").fetchone()[2]
    with pytest.raises(StoreError) as caught:
        pull(db, server, client=client, page_size=5)
    assert str(caught.value) == f"the disk holding database {path} is full: database or disk is full"
    assert db.execute("SELECT outcome, error, requests FROM pulls").fetchone() == (
        "failed", str(caught.value), client.requests_made - 1)


def test_an_unexpected_error_is_recorded_with_its_type_and_raised_as_is(db, server):
    client = client_for(server)
    client.version()
    with pytest.raises(ValueError, match="progress display broke"):
        pull(db, server, client=client, page_size=5, progress=failing_progress(ValueError("progress display broke")))
    assert db.execute("SELECT outcome, error, requests FROM pulls").fetchone() == (
        "failed", "unexpected error: ValueError: progress display broke", client.requests_made - 1)


def test_a_second_ctrl_c_is_recorded_as_an_interrupted_pull(db, server):
    client = client_for(server)
    client.version()
    with pytest.raises(KeyboardInterrupt):
        pull(db, server, client=client, page_size=5, progress=failing_progress(KeyboardInterrupt()))
    assert db.execute("SELECT outcome, error, requests FROM pulls").fetchone() == (
        "interrupted", "stopped at once by a second Ctrl-C", client.requests_made - 1)


def test_pulling_a_topic_that_is_not_stored_names_it(db, server):
    with pytest.raises(TrialsyncError) as caught:
        pull_topic(db, client_for(server), "no-such-topic")
    assert str(caught.value) == "topic 'no-such-topic' is not stored"


def test_pulling_an_import_only_topic_says_how_to_give_it_a_search(db, server):
    store.save_topic(db, Topic("imported", {}))
    with pytest.raises(TrialsyncError) as caught:
        pull_topic(db, client_for(server), "imported")
    assert str(caught.value) == ("topic 'imported' holds imported studies only: it has no search to pull "
                                 "(give it one with `trialsync topics add NAME --replace --condition ...`)")


def test_a_stop_while_a_page_is_awaited_counts_the_page_already_written(db, server, monkeypatch):
    client = client_for(server)
    client.version()  # a request before this pull: not one of the pull's
    take_fault = server.take_fault

    def stop_when_the_second_page_is_asked_for(kind):
        rule = take_fault(kind)
        if rule and rule["fault"] == "hang":
            client.stop.set()  # as Ctrl-C would, while the client waits for this answer
        return rule

    monkeypatch.setattr(server, "take_fault", stop_when_the_second_page_is_asked_for)
    server.inject("page:middle", "hang", seconds=2.0)

    with pytest.raises(Interrupted) as caught:
        pull(db, server, client=client, page_size=5)

    assert str(caught.value) == (f"interrupted after 5 studies; run `trialsync pull {TOPIC.name}` to finish "
                                 "(nothing was marked as left)")
    assert db.execute("SELECT outcome, error, received, requests FROM pulls").fetchone() == (
        "interrupted", str(caught.value), 5, client.requests_made - 1)
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 5


@pytest.mark.parametrize("full, kind, what", [
    (True, "page:first", f"the search of topic {TOPIC.name}"),
    (False, "incremental", "the changed-since query"),
    (False, "listing", "the id listing"),
], ids=["full", "incremental", "id-listing"])
def test_a_search_that_stays_short_is_named_in_the_error(db, server, full, kind, what):
    pull(db, server)
    server.data_timestamp = "2026-11-25T09:00:00"
    server.inject(kind, "empty", times=10)
    with pytest.raises(IncompleteListing) as caught:
        pull(db, server, full=full)
    assert str(caught.value).startswith(f"the API's answer for {what} is not complete: it ended after 0 of the ")
    assert str(caught.value).endswith("nothing was concluded from it (asked 3 times)")


def test_a_topic_an_import_filled_keeps_its_digest_through_its_first_api_pull(db, server):
    from trialsync.sync.files import import_records

    store.save_topic(db, TOPIC)
    import_records(db, [fixture_record(i) for i in SPINE_CONDITION_IDS], TOPIC.name, source="ctg-studies.json")
    reports.unreported_changes(db, TOPIC.name)  # looked at, not marked as reported
    changed = "NCT05489822"
    server.corpus.put(with_status(fixture_record(changed), "COMPLETED", updated="2026-11-20"))

    result = pull(db, server)

    assert result.first_fill and result.counts.updated == 1
    digest = [(c["nct_id"], c["field"], c["old"], c["new"]) for c in reports.unreported_changes(db, TOPIC.name).changes]
    assert (changed, "overall_status", "RECRUITING", "COMPLETED") in digest


def test_a_topics_first_api_pull_is_not_news_even_for_a_study_another_topic_holds(db, server):
    pull(db, server)
    changed = "NCT05489822"
    server.corpus.put(with_status(fixture_record(changed), "COMPLETED", updated="2026-11-20"))
    watch = Topic("watch-one", {"filter.ids": changed})
    store.save_topic(db, watch)

    result = pull_topic(db, client_for(server), watch.name)

    assert (result.first_fill, result.counts.new) == (True, 1)
    observed = [(c["nct_id"], c["field"], c["new"]) for c in reports.list_changes(db) if c["pull_id"] == result.pull_id]
    assert observed == [(changed, "overall_status", "COMPLETED")]
    assert reports.unreported_changes(db, watch.name).changes == []  # filling a new topic is not news
    spine_digest = [(c["nct_id"], c["new"]) for c in reports.unreported_changes(db, TOPIC.name).changes]
    assert (changed, "COMPLETED") in spine_digest  # the topic that already held it hears of the change


def test_a_version_answer_of_the_wrong_types_counts_as_no_timestamp_and_no_version(db, server, monkeypatch):
    import orjson

    answer = server.answer

    def numbers_for_strings(path, params, fault=None):
        if path.endswith("/version"):
            return 200, "application/json", orjson.dumps({"apiVersion": 2, "dataTimestamp": 20261124})
        return answer(path, params, fault)

    monkeypatch.setattr(server, "answer", numbers_for_strings)
    result = pull(db, server)
    assert (result.outcome, result.data_timestamp) == ("complete", None)
    assert db.execute("SELECT data_timestamp, api_version FROM pulls").fetchone() == (None, None)


def test_a_listing_asked_again_says_so_and_the_id_listing_reports_its_progress(db, server):
    pull(db, server)
    server.data_timestamp = "2026-11-25T09:00:00"
    server.inject("listing", "empty", times=1)  # the id listing's first answer is short: it is asked again
    waits, events = [], []
    client = client_for(server, on_wait=waits.append)

    result = pull(db, server, client=client, progress=lambda stage, done, total: events.append((stage, done, total)))

    assert result.outcome == "complete" and result.membership_checked
    assert waits == ["incomplete answer, asking again"]
    total = len(SPINE_CONDITION_IDS)
    assert [e for e in events if e[0] == "listing"] == [("listing", 0, total), ("listing", total, total)]


def test_every_study_fetched_by_id_in_a_pull_is_counted(db, server, monkeypatch):
    pull(db, server)
    server.corpus.put(with_status(fixture_record(OLD_DATED[0]), "TERMINATED"))  # fetched by id after the listing
    server.data_timestamp = "2026-11-25T09:00:00"
    joiner = fixture_record("NCT00042536")  # fetched by id after the listing taken again
    refresh_during_the_first_listing(server, monkeypatch, joiner)
    server.reset_log()
    result = pull(db, server)

    assert ids_requests(server) == [OLD_DATED[0], "NCT00042536"]
    assert result.refetched == 2


def test_an_import_asked_to_stop_rolls_back_and_says_nothing_was_imported(db):
    import threading

    from trialsync.sync.files import import_records

    store.save_topic(db, TOPIC)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted) as caught:
        import_records(db, [fixture_record(i) for i in SPINE_CONDITION_IDS], TOPIC.name, source="ctg-studies.json",
                       stop=stop)
    assert str(caught.value) == "import of ctg-studies.json interrupted; nothing was imported"
    assert db.execute("SELECT count(*) FROM studies").fetchone() == (0,)
    assert db.execute("SELECT kind, outcome FROM pulls").fetchall() == [("import", "interrupted")]


def test_an_import_file_that_cannot_be_read_fails_in_one_line(cli, tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    path = tmp_path / "studies.json"
    path.write_text("[]")

    def broken(self):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", broken)
    result = cli("import", str(path))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"trialsync: cannot read {path}: Input/output error\n"
