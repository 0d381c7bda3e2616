"""A large topic's nightly pull priced by what changed: membership settled from the registry's list of changed
studies between full listings (every ``--list-every`` pulls), and a rolling refresh of the studies fetched
longest ago. Against the stand-in API serving 2,500 clones of real records (a topic listed in three requests),
with records changed in the test."""

from __future__ import annotations

import copy

import pytest

from fakeapi import Corpus, FakeApi, clone_id
from trialsync import dates, store
from trialsync.api import ApiClient
from trialsync.errors import IncompleteListing
from trialsync.sync.pull import PullOptions, pull_topic
from trialsync.topics import Topic

TOPIC = Topic("large", {"query.cond": "anything"})
CLONES = 2500
DAY = "2026-11-{:02d}T09:00:00"


@pytest.fixture
def server():
    with FakeApi(Corpus(clones=CLONES)) as api:
        yield api


@pytest.fixture
def clock(monkeypatch):
    now = {"now": "2026-11-24T10:00:00Z"}
    monkeypatch.setattr(dates, "utc_now", lambda: now["now"])
    return now


def pull(db, server, **options):
    if store.topic_state(db, TOPIC.name) is None:
        store.save_topic(db, TOPIC)
    return pull_topic(db, ApiClient(base_url=server.url, rate=0), TOPIC.name, PullOptions(**options))


def next_night(server, day: int) -> None:
    server.data_timestamp = DAY.format(day)
    server.reset_log()


def changed(record: dict, updated: str, status: str | None = None) -> dict:
    later = copy.deepcopy(record)
    module = later["protocolSection"]["statusModule"]
    module["lastUpdatePostDateStruct"]["date"] = updated
    if status:
        module["overallStatus"] = status
    return later


def kinds(server) -> list[str]:
    return [kind for kind in server.kinds]


def present(db, nct_id: str) -> int | None:
    row = db.execute("SELECT present FROM topic_studies WHERE topic = ? AND nct_id = ?", [TOPIC.name, nct_id]).fetchone()
    return None if row is None else row[0]


def test_between_listings_membership_follows_the_registrys_changed_list(db, server, clock):
    first = pull(db, server)
    assert (first.mode, first.reconciled, first.counts.new) == ("full", "full", CLONES)
    leaver, stayer, silent = clone_id(5), clone_id(6), clone_id(7)
    # a member edited so that the topic's search no longer selects it; a new study that joins the topic;
    # a member whose status changes without a new last-update date (only a listing can see that)
    next_night(server, 25)
    server.corpus.put(changed(server.corpus.get(leaver), "2026-11-25", "TERMINATED"), in_topic=False)
    joiner = changed(server.corpus.get(clone_id(8)), "2026-11-25")
    joiner["protocolSection"]["identificationModule"]["nctId"] = clone_id(CLONES)
    server.corpus.put(joiner)
    silent_status = server.corpus.get(silent)["protocolSection"]["statusModule"]["overallStatus"]
    server.corpus.put(changed(server.corpus.get(silent), server.corpus.updated[silent], "WITHDRAWN"))

    night = pull(db, server)

    assert (night.mode, night.reconciled, night.membership_checked) == ("incremental", "changed", False)
    assert (present(db, leaver), present(db, clone_id(CLONES)), present(db, stayer)) == (0, 1, 1)
    assert night.left == 1 and night.counts.new == 1
    assert "listing" not in kinds(server) and kinds(server).count("registry") == 1
    assert db.execute("SELECT overall_status FROM studies WHERE nct_id = ?", [leaver]).fetchone() == ("TERMINATED",)
    assert db.execute("SELECT overall_status FROM studies WHERE nct_id = ?", [silent]).fetchone() == (silent_status,)
    changes = db.execute("SELECT nct_id, field, old, new, topic FROM changes WHERE pull_id = ? ORDER BY id",
                         [night.pull_id]).fetchall()
    assert (leaver, "membership", "present", "left", TOPIC.name) in changes
    assert any(c[0] == leaver and c[1] == "overall_status" and c[3] == "TERMINATED" for c in changes)
    assert db.execute("SELECT reconciled FROM pulls WHERE id = ?", [night.pull_id]).fetchone() == ("changed",)

    # the listing every 7th night heals the silent change
    reconciled = []
    for day in range(26, 32):
        next_night(server, day)
        reconciled.append(pull(db, server).reconciled)
    assert reconciled == ["changed"] * 5 + ["listing"]
    assert db.execute("SELECT overall_status FROM studies WHERE nct_id = ?", [silent]).fetchone() == ("WITHDRAWN",)
    assert "listing" in kinds(server)


def test_the_changed_list_costs_fewer_requests_than_the_listing_it_replaces(db, server, clock):
    pull(db, server)
    next_night(server, 25)
    by_changes = pull(db, server)
    by_changes_requests = len(server.requests)
    next_night(server, 26)
    by_listing = pull(db, server, list_every=1)
    assert (by_changes.reconciled, by_listing.reconciled) == ("changed", "listing")
    assert kinds(server).count("listing") == 3  # 2,500 ids at 1,000 a request
    assert by_changes_requests < len(server.requests)


def test_a_listing_is_taken_instead_when_the_changed_list_would_cost_as_much(db, server, clock):
    pull(db, server)
    next_night(server, 25)
    # 2,600 studies of the registry outside the topic changed since the watermark: three pages, as many as the
    # topic's listing
    base = server.corpus.get(clone_id(0))
    for index in range(CLONES + 1, CLONES + 2601):
        record = changed(base, "2026-11-25")
        record["protocolSection"]["identificationModule"]["nctId"] = clone_id(index)
        server.corpus.put(record, in_topic=False)
    night = pull(db, server)
    assert night.reconciled == "listing"
    # its first page told its size (the second was already on its way: pages are fetched one ahead)
    assert kinds(server).count("registry") == 2
    assert db.execute("SELECT count(*) FROM topic_studies WHERE present = 1").fetchone() == (CLONES,)


def test_a_fault_on_the_changed_list_is_retried_and_an_incomplete_one_concludes_nothing(db, server, clock):
    pull(db, server)
    next_night(server, 25)
    server.corpus.put(changed(server.corpus.get(clone_id(5)), "2026-11-25"), in_topic=False)
    server.inject("registry", "503")
    night = pull(db, server)
    assert night.reconciled == "changed" and present(db, clone_id(5)) == 0
    assert [k for k, f in zip(server.kinds, server.injected) if f] == ["registry"]
    assert kinds(server).count("registry") == 2  # sent again
    next_night(server, 26)
    server.corpus.put(changed(server.corpus.get(clone_id(6)), "2026-11-26"), in_topic=False)
    server.inject("registry", "empty", times=10)
    with pytest.raises(IncompleteListing):
        pull(db, server)
    assert present(db, clone_id(6)) == 1  # nothing called left on an incomplete answer
    assert db.execute("SELECT outcome FROM pulls ORDER BY id DESC LIMIT 1").fetchone() == ("failed",)


def test_the_rolling_refresh_fetches_again_a_share_of_the_studies_fetched_longest_ago(db, server, clock):
    pull(db, server)
    # a month later, the registry changed two of them without a new last-update date
    clock["now"] = "2026-12-26T10:00:00Z"
    oldest = sorted(server.corpus.order)[:2]
    for nct_id in oldest:
        server.corpus.put(changed(server.corpus.get(nct_id), server.corpus.updated[nct_id], "SUSPENDED"))
    next_night(server, 25)
    night = pull(db, server, refresh_days=30)
    share = -(-CLONES // 30)
    assert night.refreshed == share
    batches = [p["filter.ids"].split(",") for _, p in server.requests if p.get("filter.ids") and "pageToken" not in p]
    assert sorted(i for batch in batches for i in batch) == sorted(server.corpus.order)[:share]
    found = db.execute("SELECT nct_id, new FROM changes WHERE field = 'overall_status' AND pull_id = ?",
                       [night.pull_id]).fetchall()
    assert sorted(found) == [(nct_id, "SUSPENDED") for nct_id in oldest]
    # the next night takes the next share of those still not fetched for 30 days; a refresh of 0 days takes none
    first_share = set(sorted(server.corpus.order)[:share])
    stale = {row[0] for row in db.execute("SELECT nct_id FROM study_fetches WHERE fetched_at < '2026-11-26'")}
    next_night(server, 26)
    again = pull(db, server, refresh_days=30)
    batches = [p["filter.ids"].split(",") for _, p in server.requests if p.get("filter.ids") and "pageToken" not in p]
    taken = {i for batch in batches for i in batch}
    assert again.refreshed == len(taken) == share
    assert taken <= stale and not taken & first_share
    assert db.execute("SELECT count(*) FROM study_fetches WHERE fetched_at = '2026-12-26T10:00:00Z' AND nct_id IN "
                      f"({', '.join('?' * share)})", sorted(taken)).fetchone() == (share,)
    next_night(server, 27)
    assert pull(db, server, refresh_days=0).refreshed == 0
    assert not any(p.get("filter.ids") for _, p in server.requests)


def test_nothing_is_refreshed_while_every_study_was_fetched_within_the_days(db, server, clock):
    pull(db, server)
    clock["now"] = "2026-12-20T10:00:00Z"
    next_night(server, 25)
    assert pull(db, server, refresh_days=30).refreshed == 0
    assert not any(p.get("filter.ids") for _, p in server.requests)


def test_a_refresh_of_one_day_fetches_again_every_study_not_fetched_that_day(db, server, clock):
    pull(db, server)
    clock["now"] = "2026-11-26T10:00:00Z"
    next_night(server, 25)
    night = pull(db, server, refresh_days=1)
    # all but those the changed-since answer brought this night (the day of overlap)
    assert 0 < night.counts.received < CLONES and night.refreshed == CLONES - night.counts.received
    taken = [i for _, p in server.requests if p.get("filter.ids") and "pageToken" not in p
             for i in p["filter.ids"].split(",")]
    assert len(taken) == len(set(taken)) == night.refreshed


def test_a_set_of_nct_ids_holds_each_once_and_iterates_in_id_order():
    from trialsync.ids import NctIdSet

    ids = NctIdSet(["NCT90000001", "NCT00000102", "not-an-id", "NCT90000001"])
    assert len(ids) == 3 and list(ids) == ["NCT00000102", "NCT90000001", "not-an-id"]
    assert "NCT90000001" in ids and "NCT90000002" not in ids and "not-an-id" in ids and 7 not in ids
    assert ids.add("NCT90000002") and not ids.add("NCT90000002") and not ids.add("not-an-id")
    many = NctIdSet(f"NCT{90000000 + i:08d}" for i in range(0, 200_000, 3))  # across chunks of 65,536 ids
    assert len(many) == 66_667 and list(many)[-2:] == ["NCT90199995", "NCT90199998"]
    # either side of the first chunk's end (65,536 ids a chunk): every third id is there
    assert ["NCT90065535" in many, "NCT90065536" in many, "NCT90065537" in many, "NCT90065538" in many] == [
        True, False, False, True]
    assert "NCT90065535" not in NctIdSet()
