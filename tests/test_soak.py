"""A soak: 200 pulls into one database from one stand-in API whose data keeps moving and which keeps failing.

Between pulls the served data moves on (a new ``dataTimestamp``; status changes with and without a newer
last-update date, studies leaving the search, coming back, and joining it), every change derived in this
file from a real recorded study and logged. Before each pull some request kinds are told to fail once with
a random fault, and now and then the API goes down for a whole request (every try fails), so that pull
fails. After every pull, as the command line does, the topic's digest is taken and marked reported.

What must hold: every complete pull leaves the store equal to what is served; a failed pull concludes
nothing it could not know (no served study marked as left, only served states stored); every pull without
an outage completes; at the end (after one last clean pull) the store equals the stand-in, the database is
sound, each study's status history in the change log is the history it was served, and every change of
the topic was reported exactly once.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import pytest

from conftest import with_status
from fakeapi import Corpus, FakeApi, load_fixture_records
from trialsync import reports, store
from trialsync.api import ApiClient
from trialsync.errors import ApiError
from trialsync.sync.pull import PullOptions, pull_topic
from trialsync.topics import BUILTIN_TOPICS

pytestmark = pytest.mark.soak

SEED = 20261125
PULLS = 200
TOPIC = BUILTIN_TOPICS["stem-cell-spine"]
ATTEMPTS = 3  # tries per request: one fault is always survived, an outage of ATTEMPTS faults never
DEADLINE = 1.0
FAULT_RATE = 0.1  # chance, per request kind and pull, of one fault on a request of that kind
OUTAGE_RATE = 0.05  # chance, per pull, that the API fails one request on every try
FULL_EVERY = 10  # every so often a full pull, whose search has first, middle and last pages
INCREMENTAL_KINDS = ["version", "incremental", "listing", "ids"]  # what an incremental pull asks for
FULL_KINDS = ["version", "page:first", "page:middle", "page:last"]  # what a full pull asks for
FAULTS = ["429", "429-bare", "500", "503", "reset", "drop", "cut", "truncate", "html", "bad-gzip", "empty", "no-token"]
LISTING_FAULTS = {"empty", "no-token"}
SLOW_FAULTS = ["hang", "trickle"]  # answers too slow to wait for: a second lost to the deadline each time
SLOW_RATE = 0.03  # chance that a fault picked is one of those
FIRST_DAY = date(2026, 11, 25)


def record_id(record: dict) -> str:
    return record["protocolSection"]["identificationModule"]["nctId"]


def record_status(record: dict) -> str | None:
    return record["protocolSection"]["statusModule"].get("overallStatus")


def pairs(trace: list) -> list[tuple]:
    return list(zip(trace, trace[1:]))


def is_subsequence(short: list, long: list) -> bool:
    items = iter(long)
    return all(any(x == y for y in items) for x in short)


def test_two_hundred_pulls_with_moving_data_and_random_faults_tell_the_truth(tmp_path):
    rng = random.Random(SEED)
    why = f"seed={SEED}"
    records = load_fixture_records()
    statuses = sorted({record_status(r) for r in records if record_status(r)})  # the API's own values
    held_back = rng.sample(records, 4)  # studies that join the search later
    held_back_ids = {record_id(r) for r in held_back}
    initial = [r for r in records if record_id(r) not in held_back_ids]

    made: list[tuple] = []  # every change made to the served data: (before pull no., action, nct_id, detail)
    served_history = {record_id(r): [record_status(r)] for r in records}  # statuses as served, in order
    removed: dict[str, dict] = {}  # no longer served: the record it had
    pull_log: list[tuple] = []  # (pull no., mode or "failed", faults served)
    reported: list[int] = []
    faults_served: Counter = Counter()
    outcomes: Counter = Counter()

    with FakeApi(Corpus(initial)) as server, store.open_for_writing(tmp_path / "soak.db") as conn:
        client = ApiClient(base_url=server.url, rate=0, attempts=ATTEMPTS, deadline=DEADLINE)

        def stored_status() -> dict[str, str | None]:
            return dict(conn.execute("SELECT nct_id, overall_status FROM studies"))

        def present() -> set[str]:
            return store.present_ids(conn, TOPIC.name)

        def assert_store_equals_served(when: str) -> None:
            served_ids = set(server.corpus.order)
            assert present() == served_ids, (f"{why} {when}: present members differ from the served studies: "
                                             f"not served {sorted(present() - served_ids)}, "
                                             f"missing {sorted(served_ids - present())}")
            stored = dict(conn.execute("SELECT nct_id, CAST(raw AS BLOB) FROM studies"))
            differ = sorted(i for i in served_ids if stored.get(i) != server.corpus.body[i])
            assert not differ, f"{why} {when}: stored records differ from the served ones: {differ}"

        def take_digest() -> None:
            digest = reports.unreported_changes(conn, TOPIC.name)
            reported.extend(change["id"] for change in digest.changes)
            store.mark_reported(conn, TOPIC.name, digest.through)

        store.save_topic(conn, TOPIC)
        first = pull_topic(conn, client, TOPIC.name, PullOptions(page_size=50))
        assert (first.outcome, first.counts.new) == ("complete", len(initial)), why
        take_digest()
        first_fill_through = store.topic_state(conn, TOPIC.name).reported_through
        assert_store_equals_served("after the first pull")
        status_trace = {nct_id: [status] for nct_id, status in stored_status().items()}  # as stored, after each pull
        # As served whenever a pull completed: the changes made between two complete pulls collapse into one.
        at_complete = {nct_id: [record_status(server.corpus.get(nct_id))] for nct_id in server.corpus.order}
        member_trace = {nct_id: [True] for nct_id in present()}

        day = FIRST_DAY
        previous_outage = False
        for number in range(1, PULLS + 2):
            last = number == PULLS + 1  # one last clean pull

            # The served data moves on, always with a new data timestamp (else the pull rightly skips).
            if last or rng.random() < 0.9:
                day += timedelta(days=1)
                server.data_timestamp = f"{day.isoformat()}T09:00:00"
                for _ in range(0 if last else rng.randint(0, 3)):
                    action = rng.choice(["bump", "bump", "silent", "silent", "remove", "back", "join"])
                    if action in ("bump", "silent"):
                        nct_id = rng.choice(server.corpus.order)
                        before = server.corpus.get(nct_id)
                        status = rng.choice([s for s in statuses if s != record_status(before)])
                        server.corpus.put(with_status(before, status, updated=day.isoformat() if action == "bump" else None))
                        served_history[nct_id].append(status)
                        made.append((number, action, nct_id, f"{record_status(before)}->{status}"))
                    elif action == "remove" and len(server.corpus.order) > 100:
                        nct_id = rng.choice(server.corpus.order)
                        removed[nct_id] = server.corpus.get(nct_id)
                        server.corpus.remove(nct_id)
                        made.append((number, action, nct_id, ""))
                    elif action == "back" and removed:
                        nct_id = rng.choice(sorted(removed))
                        server.corpus.put(removed.pop(nct_id))
                        made.append((number, action, nct_id, ""))
                    elif action == "join" and held_back:
                        record = held_back.pop()
                        server.corpus.put(record)
                        made.append((number, action, record_id(record), ""))

            # Faults: now and then one per kind; more rarely an outage (one request failing on every try).
            full = not last and number % FULL_EVERY == 0
            outage = not last and not previous_outage and rng.random() < OUTAGE_RATE
            page_listing_faults = 0
            if not last:
                for kind in FULL_KINDS if full else INCREMENTAL_KINDS:
                    if rng.random() >= FAULT_RATE:
                        continue
                    fault = rng.choice(SLOW_FAULTS) if rng.random() < SLOW_RATE else rng.choice(FAULTS)
                    if fault in LISTING_FAULTS and kind.startswith("page:"):
                        # Three page faults in one search could exhaust its three tries: keep it to two.
                        page_listing_faults += 1
                        if page_listing_faults > 2:
                            fault = "500"
                    # the changed-since query comes in pages; a filter.ids batch is one page (asked one more than its ids)
                    after = rng.choice([0, 0, 1]) if kind == "incremental" else 0
                    server.inject(kind, fault, times=1, after=after, seconds=3.0)
                if outage:
                    if rng.random() < 0.5:
                        server.inject("any", rng.choice(["500", "503", "429-bare", "reset", "drop"]),
                                      times=ATTEMPTS, after=rng.randint(0, 3))
                    else:
                        server.inject("listing", "empty", times=3)  # the id listing stays short: nothing concluded
            previous_outage = outage

            options = PullOptions(full=True, page_size=50) if full else PullOptions(page_size=3)
            members_before = present()
            server.reset_log()
            try:
                result = pull_topic(conn, client, TOPIC.name, options)
                outcome = result.outcome
                mode = result.mode
            except ApiError as exc:
                outcome, mode = "failed", f"failed: {exc}"
            served_now = [(k, f) for k, f in zip(server.kinds, server.injected) if f]
            faults_served.update(f for _, f in served_now)
            server.clear_faults()
            pull_log.append((number, mode, served_now))
            outcomes[outcome] += 1
            take_digest()
            when = f"pull {number} ({mode}; faults {served_now}; outage {outage})"

            assert outcome in ("complete", "unchanged", "failed"), f"{why} {when}"
            if not outage:
                assert outcome != "failed", f"{why} {when}: a pull without an outage must complete (and recover)"
            if outcome == "failed":
                # Nothing was concluded from what the failed pull could not prove.
                newly_left = members_before - present()
                assert not newly_left & set(server.corpus.order), f"{why} {when}: served studies marked as left"
                states = stored_status()
                for nct_id in status_trace.keys() | states.keys():
                    status = states.get(nct_id)
                    assert status in served_history.get(nct_id, [status]), (
                        f"{why} {when}: {nct_id} stored with a status it was never served: {status}")
            else:
                assert_store_equals_served(when)
                for nct_id in server.corpus.order:
                    status = record_status(server.corpus.get(nct_id))
                    trace = at_complete.setdefault(nct_id, [])
                    if not trace or trace[-1] != status:
                        trace.append(status)

            states = stored_status()
            for nct_id, status in states.items():
                trace = status_trace.setdefault(nct_id, [])
                if not trace or trace[-1] != status:
                    trace.append(status)
            now_present = present()
            for nct_id in set(member_trace) | now_present:
                trace = member_trace.setdefault(nct_id, [])
                if not trace or trace[-1] != (nct_id in now_present):
                    trace.append(nct_id in now_present)

        changed = {nct_id for _, action, nct_id, _ in made if action in ("bump", "silent")}
        partly_seen = sorted(i for i in changed if status_trace.get(i) != at_complete.get(i))
        summary = (f"{why}; outcomes {dict(outcomes)}; faults served {dict(faults_served)}; "
                   f"{len(made)} changes made; {len(changed)} studies changed status, of which "
                   f"{len(partly_seen)} had a state stored by a failed pull only")
        assert pull_log[-1][1] != "skipped" and "failed" not in pull_log[-1][1], summary

        # The soak did what it claims: many faults of every kind, some failed pulls, each change kind made.
        assert set(faults_served) >= set(FAULTS), summary
        assert outcomes["failed"] >= 3 and outcomes["complete"] >= PULLS // 2, summary
        assert {action for _, action, _, _ in made} == {"bump", "silent", "remove", "back", "join"}, summary

        # The store equals the stand-in, and the database is sound.
        assert_store_equals_served("at the end")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], summary
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == [], summary

        # Each study's status history in the change log is the one it was served: the statuses it had when
        # pulls completed, plus any state a failed pull stored on its way (a state it was served, in order).
        for nct_id in sorted(changed):
            logged = conn.execute("SELECT old, new FROM changes WHERE nct_id = ? AND field = 'overall_status' "
                                  "ORDER BY id", [nct_id]).fetchall()
            trace, served_then = status_trace.get(nct_id, []), at_complete.get(nct_id, [])
            history = [(n, a, d) for n, a, i, d in made if i == nct_id]
            assert logged == pairs(trace), f"{summary}: {nct_id}: logged {logged}, stored states {trace}, made {history}"
            assert is_subsequence(served_then, trace), (
                f"{summary}: {nct_id}: served at complete pulls {served_then}, logged states {trace}")
            if nct_id not in partly_seen:
                assert logged == pairs(served_then), f"{summary}: {nct_id}: {logged}, made {history}"
            # Stored states are served states, in the order served; the last is the one served now.
            if nct_id in server.corpus.body:
                assert trace[-1] == record_status(server.corpus.get(nct_id)), f"{summary}: {nct_id}: {trace}"
            assert is_subsequence(trace, served_history[nct_id]), (
                f"{summary}: {nct_id}: stored states {trace} are not in the order served {served_history[nct_id]}")
        # Studies whose status was never changed have no status change logged.
        unchanged_logged = conn.execute(
            "SELECT DISTINCT nct_id FROM changes WHERE field = 'overall_status'").fetchall()
        assert {i for (i,) in unchanged_logged} <= changed, summary

        # Membership events trace each study's membership as stored after each pull.
        for nct_id, trace in member_trace.items():
            logged = conn.execute("SELECT old, new FROM changes WHERE nct_id = ? AND field = 'membership' "
                                  "ORDER BY id", [nct_id]).fetchall()
            expected = [(None, "added")] if nct_id in held_back_ids and trace[0] else []
            expected += [("present", "left") if was else ("left", "present") for was, _ in pairs(trace)]
            assert logged == expected, f"{summary}: {nct_id}: membership logged {logged}, stored {trace}"

        # Every change of the topic was reported, and none twice.
        twice = [i for i, n in Counter(reported).items() if n > 1]
        assert not twice, f"{summary}: reported more than once: {twice}"
        topic_changes = {change["id"] for change in reports.list_changes(conn, TOPIC.name)}
        expected_reported = {i for i in topic_changes if i > first_fill_through}
        assert set(reported) == expected_reported, (
            f"{summary}: never reported {sorted(expected_reported - set(reported))}, "
            f"reported but not the topic's {sorted(set(reported) - expected_reported)}")
        assert len(reported) > 50, summary
