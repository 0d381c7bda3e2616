"""Whole pulls against the stand-in API serving real records: full, incremental, skipped, left, failed."""

from __future__ import annotations

import orjson
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records
from trialsync import reports, store
from trialsync.api import ApiClient
from trialsync.errors import ApiError, Interrupted
from trialsync.sync.pull import PullOptions, changed_since_filter, pull_topic
from trialsync.topics import BUILTIN_TOPICS, Topic
from trialsync.transform import CHILD_COLUMNS

TOPIC = BUILTIN_TOPICS["stem-cell-spine"]


def client_for(server: FakeApi, **kwargs) -> ApiClient:
    return ApiClient(base_url=server.url, rate=0, **kwargs)


def pull(db, server_or_client, topic: Topic = TOPIC, progress=None, **options):
    """Pull ``topic`` (stored first if need be) from the stand-in, or through the given client."""
    if store.topic_state(db, topic.name) is None:
        store.save_topic(db, topic)
    client = server_or_client if isinstance(server_or_client, ApiClient) else client_for(server_or_client)
    kwargs = {"progress": progress} if progress else {}
    return pull_topic(db, client, topic.name, PullOptions(**options), **kwargs)


def pull_changes(db, pull_id: int) -> list[dict]:
    return [c for c in reports.list_changes(db) if c["pull_id"] == pull_id]


def stored_raw(db) -> dict:
    return {nct_id: orjson.loads(raw) for nct_id, raw in db.execute("SELECT nct_id, raw FROM studies")}


def study_tables(db) -> dict:
    tables = ["studies", "topic_studies", "versions", "changes", *CHILD_COLUMNS]
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


def served(server: FakeApi) -> dict:
    return {nct_id: server.corpus.get(nct_id) for nct_id in server.corpus.order}


def test_a_first_pull_stores_every_served_record_exactly(db, api_server):
    total = len(api_server.corpus.order)
    result = pull(db, api_server, page_size=50)
    assert (result.outcome, result.mode, result.counts.received, result.counts.new) == ("complete", "full", total, total)
    assert stored_raw(db) == served(api_server)
    # /version, /studies/metadata (no data model stored yet), pages of 50, /version again (did the data move?)
    assert result.requests == 1 + 1 + -(-total // 50) + 1
    studies_requests = [p for path, p in api_server.requests if path.endswith("/studies")]
    assert [r.get("countTotal") for r in studies_requests] == ["true", None, None]
    assert {k: v for k, v in studies_requests[1].items() if k != "pageToken"} == {
        **TOPIC.search_params(), "pageSize": "50"}


def test_an_incremental_pull_asks_for_recent_updates_and_records_the_changes(db, api_server):
    pull(db, api_server)
    api_server.data_timestamp = "2026-11-25T09:00:00"
    changed = ["NCT05489822", "NCT04056520"]
    for nct_id in changed:
        api_server.corpus.put(with_status(fixture_record(nct_id), "COMPLETED", updated="2026-11-25"))
    api_server.requests.clear()

    result = pull(db, api_server)

    assert result.mode == "incremental"
    watermark = db.execute("SELECT max(last_update_posted) FROM studies WHERE nct_id NOT IN (?, ?)", changed).fetchone()[0]
    studies_requests = [p for path, p in api_server.requests if path.endswith("/studies") and "fields" not in p]
    assert studies_requests[0]["filter.advanced"] == changed_since_filter(watermark, None)
    assert result.counts.received < len(api_server.corpus.order) // 2 and result.counts.updated == 2
    rows = [(c["nct_id"], c["field"], c["old"], c["new"]) for c in pull_changes(db, result.pull_id)]
    assert sorted(rows) == [(i, "overall_status", "RECRUITING", "COMPLETED") for i in sorted(changed)]
    assert stored_raw(db) == served(api_server)


def test_the_incremental_filter_is_anded_with_the_topics_own_filter():
    assert changed_since_filter("2026-11-01", "AREA[Phase]PHASE2") == (
        "(AREA[Phase]PHASE2) AND AREA[LastUpdatePostDate]RANGE[2026-10-31,MAX]")


def test_unchanged_data_timestamp_means_one_request_and_no_study_written(db, api_server):
    pull(db, api_server)
    before = study_tables(db)
    api_server.requests.clear()
    client = client_for(api_server)
    result = pull(db, client)
    assert (result.outcome, result.requests, client.requests_made) == ("unchanged", 1, 1)
    assert [path for path, _ in api_server.requests] == ["/api/v2/version"]
    assert study_tables(db) == before
    written = db.execute("SELECT received, new, updated FROM pulls WHERE id = ?", [result.pull_id]).fetchone()
    assert written == (0, 0, 0)


def test_studies_missing_from_the_id_listing_are_marked_as_left_and_not_counted(db, api_server):
    pull(db, api_server)
    total = len(api_server.corpus.order)
    gone = api_server.corpus.order[:3]
    for nct_id in list(gone):
        api_server.corpus.remove(nct_id)
    api_server.data_timestamp = "2026-11-25T09:00:00"
    result = pull(db, api_server)
    assert result.left == 3
    assert any(p.get("fields") == "NCTId|OverallStatus" for _, p in api_server.requests)
    report = reports.status_report(db, TOPIC.name)
    assert report["total"] == total - 3
    assert report["left_since_previous"] == 3
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == total  # never deleted
    left = {c["nct_id"] for c in pull_changes(db, result.pull_id) if c["new"] == "left"}
    assert left == set(gone)


def test_a_study_in_the_listing_but_never_received_is_fetched_by_id(db, api_server):
    late = api_server.corpus.order[-1]
    record = api_server.corpus.get(late)
    api_server.corpus.remove(late)
    pull(db, api_server)
    api_server.corpus.put(record)  # an old last-update date: the incremental filter cannot see it
    api_server.data_timestamp = "2026-11-25T09:00:00"
    result = pull(db, api_server)
    assert late in store.present_ids(db, TOPIC.name)
    assert any(p.get("filter.ids") == late for _, p in api_server.requests)
    assert ("membership", None, "added") in [(c["field"], c["old"], c["new"]) for c in pull_changes(db, result.pull_id)]


def test_a_pull_that_fails_halfway_leaves_the_watermark_and_the_next_pull_finishes(db, api_server):
    pull(db, api_server)
    watermark = store.topic_state(db, TOPIC.name).watermark
    api_server.data_timestamp = "2026-11-25T09:00:00"
    for nct_id in SPINE_CONDITION_IDS[:2]:
        api_server.corpus.put(with_status(fixture_record(nct_id), "SUSPENDED", updated="2026-11-25"))
    api_server.fail_next("ok", "ok", "500")  # /version and the changed studies pass, the id listing fails
    with pytest.raises(ApiError, match="HTTP 500"):
        pull(db, client_for(api_server, attempts=1))
    assert store.topic_state(db, TOPIC.name).watermark == watermark
    assert db.execute("SELECT outcome FROM pulls ORDER BY id DESC LIMIT 1").fetchone() == ("failed",)

    result = pull(db, api_server)
    assert result.outcome == "complete"
    assert stored_raw(db) == served(api_server)


def test_the_pull_survives_429_500_truncated_and_html_answers(db, api_server):
    api_server.fail_next("429", "500", "truncate", "html", "drop")
    result = pull(db, client_for(api_server, attempts=6), page_size=50)
    assert result.outcome == "complete"
    assert stored_raw(db) == served(api_server)


def test_an_api_that_stays_down_fails_the_pull_with_one_line(db, api_server):
    api_server.fail_next(*["500"] * 10)
    with pytest.raises(ApiError) as caught:
        pull(db, client_for(api_server, attempts=3))
    assert "HTTP 500" in str(caught.value) and "\n" not in str(caught.value)
    assert db.execute("SELECT outcome FROM pulls").fetchone() == ("failed",)


def test_a_stop_request_ends_the_pull_at_a_page_boundary(db, api_server):
    client = client_for(api_server)
    with pytest.raises(Interrupted):
        pull(db, client, progress=lambda stage, done, total: client.stop.set(), page_size=50)
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 50
    assert db.execute("SELECT outcome FROM pulls").fetchone() == ("interrupted",)
    assert store.topic_state(db, TOPIC.name).synced_params is None


def test_membership_of_a_small_topic_is_checked_at_every_pull(db, api_server):
    pull(db, api_server)
    checked = []
    for day in range(25, 29):
        api_server.data_timestamp = f"2026-11-{day}T09:00:00"
        checked.append(pull(db, api_server, list_every=3).membership_checked)
    assert checked == [True, True, True, True]


def test_a_topic_without_search_parameters_cannot_be_pulled(db, api_server):
    from trialsync.errors import EXIT_FAILED, TrialsyncError

    with pytest.raises(TrialsyncError, match="holds imported studies only") as caught:
        pull(db, api_server, Topic("imported", {}))
    assert caught.value.exit_code == EXIT_FAILED
    assert db.execute("SELECT count(*) FROM pulls").fetchone() == (0,)  # refused before a pull row is written


def test_clones_have_distinct_reserved_ids():
    corpus = Corpus(clones=300, base=load_fixture_records())
    assert len(set(corpus.order)) == 300
    assert all(i.startswith("NCT9") for i in corpus.order)
    assert corpus.get(corpus.order[200])["protocolSection"]["identificationModule"]["nctId"] == corpus.order[200]


def test_status_report_counts_live_when_a_failed_pull_wrote_after_the_last_snapshot(db, api_server):
    pull(db, api_server)
    before = reports.status_report(db, TOPIC.name)
    api_server.data_timestamp = "2026-11-25T09:00:00"
    api_server.corpus.put(with_status(fixture_record("NCT05489822"), "WITHDRAWN", updated="2026-11-25"))
    api_server.fail_next("ok", "ok", "500")  # the changed study is saved, then the id listing fails
    with pytest.raises(ApiError):
        pull(db, client_for(api_server, attempts=1))
    after = reports.status_report(db, TOPIC.name)
    counts = lambda report: {e["status"]: e["count"] for e in report["statuses"]}  # noqa: E731
    assert counts(after)["WITHDRAWN"] == counts(before)["WITHDRAWN"] + 1
    assert counts(after)["RECRUITING"] == counts(before)["RECRUITING"] - 1
    assert after["as_of"] == before["as_of"]  # the data is still dated by the last complete pull


def snapshot(db, pull_id: int) -> list[tuple]:
    return db.execute("SELECT overall_status, last_known_status, count FROM pull_status_counts WHERE pull_id = ? "
                      "ORDER BY 1, 2", [pull_id]).fetchall()


def test_an_unchanged_pull_keeps_the_snapshot_before_it_unless_a_pull_or_import_wrote_since(db, api_server):
    from trialsync.sync.files import import_records

    first = pull(db, api_server)
    # Only pulls and imports write studies; a change made behind their back shows which way the counts were taken.
    db.execute("UPDATE studies SET overall_status = 'WITHDRAWN' WHERE nct_id = 'NCT05489822'")
    unchanged = pull(db, api_server)
    assert unchanged.outcome == "unchanged"
    assert snapshot(db, unchanged.pull_id) == snapshot(db, first.pull_id)  # copied: the whole registry's is slow
    db.execute("UPDATE studies SET overall_status = 'RECRUITING' WHERE nct_id = 'NCT05489822'")

    # An import between two pulls writes studies: the next unchanged pull counts them again.
    import_records(db, [with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25")], TOPIC.name,
                   source="ctg-studies.json")
    after_import = pull(db, api_server)
    assert after_import.outcome == "unchanged"
    counts = dict(((status, last), n) for status, last, n in snapshot(db, after_import.pull_id))
    before = dict(((status, last), n) for status, last, n in snapshot(db, first.pull_id))
    assert counts[("COMPLETED", "")] == before.get(("COMPLETED", ""), 0) + 1
    assert counts[("RECRUITING", "")] == before[("RECRUITING", "")] - 1
    assert snapshot(db, after_import.pull_id) == db.execute(
        f"SELECT {store.pulls.COUNT_BY_STATUS} ORDER BY 1, 2", [TOPIC.name]).fetchall()

    # Another topic's pull writes a study this one holds: the next unchanged pull counts again.
    nct_id = "NCT05305430"
    assert store.topic_state(db, TOPIC.name) and nct_id in api_server.corpus.order
    api_server.corpus.put(with_status(fixture_record(nct_id), "TERMINATED", updated="2026-11-26"))
    other = pull(db, api_server, topic=Topic("watch", {"filter.ids": nct_id}))
    assert other.outcome == "complete"
    assert db.execute("SELECT overall_status FROM studies WHERE nct_id = ?", [nct_id]).fetchone() == ("TERMINATED",)
    after_other = pull(db, api_server)
    assert after_other.outcome == "unchanged"
    assert snapshot(db, after_other.pull_id) == db.execute(
        f"SELECT {store.pulls.COUNT_BY_STATUS} ORDER BY 1, 2", [TOPIC.name]).fetchall()
    assert snapshot(db, after_other.pull_id) != snapshot(db, after_import.pull_id)


def test_a_full_re_pull_of_unchanged_data_parses_no_study(db, api_server, monkeypatch):
    from trialsync.sync import prepare

    pull(db, api_server)
    parsed = []
    monkeypatch.setattr(prepare, "parse_study", lambda raw: parsed.append(raw) or orjson.loads(raw))
    api_server.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25"))
    result = pull(db, api_server, full=True)
    assert (result.counts.unchanged, result.counts.updated) == (len(api_server.corpus.order) - 1, 1)
    assert len(parsed) == 1  # only the changed study
    assert stored_raw(db) == served(api_server)


def test_a_study_back_in_the_listing_with_the_same_bytes_is_marked_present_again(db, api_server):
    pull(db, api_server)
    nct_id = api_server.corpus.order[5]
    record = api_server.corpus.get(nct_id)
    api_server.corpus.remove(nct_id)
    api_server.data_timestamp = "2026-11-25T09:00:00"
    pull(db, api_server)
    assert nct_id not in store.present_ids(db, TOPIC.name)
    api_server.corpus.put(record)
    api_server.data_timestamp = "2026-11-26T09:00:00"
    result = pull(db, api_server, full=True)
    assert result.counts.rejoined == 1
    assert nct_id in store.present_ids(db, TOPIC.name)
    assert [(c["field"], c["old"], c["new"]) for c in pull_changes(db, result.pull_id)] == [
        ("membership", "left", "present")]
