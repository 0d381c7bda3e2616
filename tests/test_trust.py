"""The promises of the nightly pull, each checked the way a user meets it: through the command line,
against the loopback stand-in of the API, asserting its request log and the database afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import orjson
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, with_status
from fakeapi import Corpus, FakeApi

SPINE = "stem-cell-spine"


@pytest.fixture
def server():
    """The stand-in serving the 13 real spine-condition records."""
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as api:
        yield api


@pytest.fixture
def ts(cli, server):
    """``trialsync ARGS`` in-process against the stand-in (``--api-url`` given for the commands that take it)."""
    def run(*args: str):
        takes_url = args and (args[0] in ("pull", "verify") or args[:2] == ("topics", "show")) and "--api-url" not in args
        return cli(*args, *(("--api-url", server.url) if takes_url else ()))
    return run


def next_refresh(server, day: int) -> None:
    server.data_timestamp = f"2026-11-{day:02d}T09:00:00"


def status_counts(ts, topic: str = SPINE) -> dict:
    data = json.loads(ts("status-report", topic, "-f", "json").out)
    return {entry["status"]: entry["count"] for entry in data["statuses"]} | {"total": data["total"]}


def present(db_path, topic: str = SPINE) -> set[str]:
    with sqlite3.connect(db_path) as conn:
        return {r[0] for r in conn.execute("SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1", [topic])}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- a short answer is never trusted -----------------------------------------------------------------------


@pytest.mark.parametrize("kind, fault", [("listing", "empty"), ("listing", "no-token"), ("page:middle", "no-token"),
                                         ("page:first", "empty")])
def test_a_short_or_empty_listing_that_stays_short_marks_nothing_as_left(ts, server, tmp_path, kind, fault):
    assert ts("pull", "--page-size", "5").code == 0
    before = status_counts(ts)
    next_refresh(server, 25)
    if kind == "listing":  # the id listing has one page of up to 1,000: make it the whole corpus short
        server.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25"))
        fault = "empty"
    server.inject(kind, fault, times=10)
    result = ts("pull", "--page-size", "5", *(["--full"] if kind.startswith("page") else []))
    assert result.code == 1
    assert result.err.count("\n") == 1 and "not complete" in result.err and "asked 3 times" in result.err
    asked = [k for k in server.kinds if k == kind or (kind.startswith("page") and k.startswith("page"))]
    assert len([f for f in server.injected if f]) == 3  # the listing was asked for three times, then given up
    assert present(tmp_path / "cli.db") == set(SPINE_CONDITION_IDS)  # nothing marked as left
    after = status_counts(ts)
    assert after["total"] == before["total"] == 13 and asked
    server.clear_faults()
    assert ts("pull", "--page-size", "5").code == 0  # not skipped as "unchanged": the failed pull did not count
    assert status_counts(ts)["total"] == 13


def test_a_short_listing_once_is_asked_again_and_the_pull_ends_exact(ts, server, tmp_path):
    assert ts("pull", "--page-size", "5").code == 0
    next_refresh(server, 25)
    server.corpus.remove("NCT04056520")
    server.inject("listing", "empty")
    result = ts("pull", "--page-size", "5", "--quiet")
    assert result.code == 0, result
    listing_requests = [p for (path, p), k in zip(server.requests, server.kinds) if k == "listing"]
    assert len(listing_requests) == 2 and all("pageToken" not in p for p in listing_requests)
    assert present(tmp_path / "cli.db") == set(SPINE_CONDITION_IDS) - {"NCT04056520"}
    assert "Left the topic:\n  NCT04056520 left the topic" in result.out


# -- every change is reported exactly once -----------------------------------------------------------------


def test_a_change_observed_by_a_failed_pull_is_reported_once_even_so(ts, server):
    assert ts("pull").code == 0
    next_refresh(server, 25)
    server.corpus.put(with_status(fixture_record("NCT05489822"), "SUSPENDED", updated="2026-11-25"))
    server.inject("listing", "503", times=20)  # the changed study is saved, then the id listing stays down
    failed = ts("pull", "--quiet", "--retries", "2")
    assert failed.code == 1 and "HTTP 503" in failed.err
    server.clear_faults()
    again = ts("pull", "--quiet")
    assert again.code == 0
    later = ts("pull", "--quiet")
    digests = failed.out + again.out + later.out
    assert digests.count("NCT05489822 status: Recruiting -> Suspended") == 1


def test_a_change_observed_by_a_killed_pull_reaches_the_next_digest(ts, server, tmp_path, monkeypatch):
    assert ts("pull").code == 0
    next_refresh(server, 25)
    server.corpus.put(with_status(fixture_record("NCT05489822"), "TERMINATED", updated="2026-11-25"))
    from trialsync.sync import pull as pull_module

    class Killed(BaseException):
        pass

    def listing_killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(pull_module, "list_statuses", listing_killed)  # after the incremental page was written
    with pytest.raises(Killed):
        ts("pull", "--quiet")
    monkeypatch.undo()
    os.environ["TRIALSYNC_DB"] = str(tmp_path / "cli.db")
    result = ts("pull", "--quiet")
    assert result.code == 0
    assert result.out.count("NCT05489822 status: Recruiting -> Terminated") == 1
    assert ts("pull", "--quiet").out == ""


def test_a_change_to_a_study_two_topics_share_is_in_both_topics_changes(ts, server):
    assert ts("topics", "add", "sci", "--cond", "spinal cord injury").code == 0
    assert ts("pull", SPINE).code == 0 and ts("pull", "sci").code == 0
    next_refresh(server, 25)
    server.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25"))
    result = ts("pull", "--quiet")
    assert result.code == 0
    # one run digests both topics: the change is printed once, under a heading that names them
    assert result.out.count("NCT05489822 status: Recruiting -> Completed") == 1
    assert f"trialsync: 1 change in sci and {SPINE}" in result.out
    for topic in (SPINE, "sci"):
        rows = json.loads(ts("changes", topic, "-f", "json").out)
        assert [(r["nct_id"], r["old"], r["new"]) for r in rows] == [("NCT05489822", "RECRUITING", "COMPLETED")]


# -- dates --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_date", ["Jan 2024", "2099-12-31", "2024-02-30"])
def test_a_malformed_or_far_future_date_does_not_stop_later_changes_from_being_seen(ts, server, bad_date):
    weird = fixture_record("NCT04188236")
    weird["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = bad_date
    server.corpus.put(weird)
    first = ts("pull", "--quiet")
    assert first.code == 0, first
    next_refresh(server, 25)
    server.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25"))
    second = ts("pull", "--quiet")
    assert second.code == 0, second
    assert "incremental pull" in second.out
    assert "NCT05489822 status: Recruiting -> Completed" in second.out
    incremental = [p for (path, p), k in zip(server.requests, server.kinds) if k == "incremental"]
    assert incremental and all("RANGE[2026-" in p["filter.advanced"] or "RANGE[2025-" in p["filter.advanced"]
                               or "RANGE[2024-" in p["filter.advanced"] for p in incremental)
    next_refresh(server, 26)
    later = with_status(fixture_record("NCT04056520"), "SUSPENDED", updated="2026-11-26")
    server.corpus.put(later)
    assert "NCT04056520 status: Recruiting -> Suspended" in ts("pull", "--quiet").out
    stored = ts("show", "NCT04188236", "-f", "json").out
    assert orjson.loads(stored) == weird  # stored as sent


def test_a_date_that_cannot_move_the_watermark_is_reported_once(ts, server):
    assert ts("pull").code == 0
    next_refresh(server, 25)
    weird = with_status(fixture_record("NCT04188236"), "TERMINATED")  # was COMPLETED: the id listing sees it
    weird["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "Jan 2024"
    server.corpus.put(weird)
    first = ts("pull", "--quiet").out
    assert "NCT04188236 warning: last update posted 'Jan 2024' is not a YYYY-MM-DD date" in first
    next_refresh(server, 26)
    assert "warning" not in ts("pull", "--quiet").out


# -- imports never make the store older --------------------------------------------------------------------


def test_an_older_import_changes_nothing(ts, server, tmp_path):
    newer = with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25")
    server.corpus.put(newer)
    assert ts("pull").code == 0
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        before = conn.execute("SELECT nct_id, raw FROM studies ORDER BY 1").fetchall()
        changes_before = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
    download = tmp_path / "ctg-studies.json"
    download.write_text(json.dumps([fixture_record(i) for i in SPINE_CONDITION_IDS]))  # older: still recruiting
    result = ts("import", str(download))
    assert result.code == 0
    assert "(0 new, 0 updated, 13 unchanged; 1 of them was older than the stored record, which was kept)" in result.out
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT nct_id, raw FROM studies ORDER BY 1").fetchall() == before
        assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == changes_before
        assert conn.execute("SELECT count(*) FROM versions").fetchone()[0] == 0


def test_an_older_import_into_a_new_topic_still_says_what_it_kept(ts, server, tmp_path):
    server.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-25"))
    assert ts("pull").code == 0
    download = tmp_path / "ctg-studies.json"
    download.write_text(json.dumps([fixture_record("NCT05489822"), fixture_record("NCT04056520")]))
    result = ts("import", str(download), "--topic", "mine")
    assert "(2 new, 0 updated, 0 unchanged; 1 of them was older than the stored record, which was kept)" in result.out
    assert json.loads(ts("show", "NCT05489822", "-f", "json").out)["protocolSection"]["statusModule"][
        "overallStatus"] == "COMPLETED"


def test_importing_the_same_content_again_is_unchanged_never_a_version(ts, tmp_path):
    download = tmp_path / "ctg-studies.json"
    download.write_text(json.dumps([fixture_record(i) for i in SPINE_CONDITION_IDS], indent=2))
    assert ts("import", str(download)).code == 0
    again = ts("import", str(download))
    assert "(0 new, 0 updated, 13 unchanged)" in again.out
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 0


# -- topics ------------------------------------------------------------------------------------------------


def test_a_replaced_search_is_pulled_in_full_and_its_membership_difference_is_one_line(ts, server, tmp_path):
    assert ts("topics", "add", "sci", "--cond", "spinal cord injury").code == 0
    assert ts("pull", "sci").code == 0
    assert ts("topics", "add", "sci", "--cond", "spinal cord injury", "--status", "RECRUITING", "--replace").code == 0
    server.reset_log()
    result = ts("pull", "sci", "--quiet")  # the API's data did not move, yet the search did
    assert result.code == 0, result
    assert "full pull under the topic's new search" in result.out
    assert [k for k in server.kinds if k.startswith("page")] == ["page:only"]
    assert server.requests[1][1]["filter.overallStatus"] == "RECRUITING"
    recruiting = {i for i in SPINE_CONDITION_IDS if fixture_record(i)["protocolSection"]["statusModule"]["overallStatus"] == "RECRUITING"}
    assert present(tmp_path / "cli.db", "sci") == recruiting
    assert f"The topic's search changed: 0 studies joined it and {13 - len(recruiting)} left it." in result.out
    assert "Left the topic:" not in result.out  # summed up, not listed


def test_an_import_only_topic_does_not_fail_a_bare_pull(ts, server, tmp_path):
    download = tmp_path / "mine.json"
    download.write_text(json.dumps([fixture_record("NCT00122499")]))
    assert ts("import", str(download), "--topic", "mine").code == 0
    assert ts("topics", "add", SPINE, "--cond", "x").code == 0
    result = ts("pull")
    assert result.code == 0, result
    assert "mine: holds imported studies only; not pulled" in result.err
    assert ts("pull", "--quiet").err == ""
    named = ts("pull", "mine")
    assert named.code == 1 and "holds imported studies only" in named.err


def test_a_removed_then_re_added_topic_starts_afresh(ts, server):
    assert ts("pull").code == 0
    assert ts("topics", "remove", SPINE, "--yes").code == 0
    assert ts("topics", "add", SPINE, "--cond", "back pain").code == 0
    server.reset_log()
    result = ts("pull", "--quiet")  # same API data as before the removal: still a full first pull
    assert result.code == 0
    assert result.out.startswith(f"{SPINE}: full pull (first pull), 13 studies received (13 new")
    assert "trialsync:" not in result.out  # no flood of "new in topic"
    assert status_counts(ts)["total"] == 13
    assert ts("pull", "--quiet").out == ""


def test_a_topic_whose_studies_are_all_stored_already_becomes_incremental(ts, server):
    assert ts("pull").code == 0
    assert ts("topics", "add", "sci", "--cond", "spinal cord injury").code == 0
    assert ts("pull", "sci").code == 0  # every study it gets is stored byte for byte already
    next_refresh(server, 25)
    assert "sci: incremental pull" in ts("pull", "sci").out


# -- verify ------------------------------------------------------------------------------------------------


def test_verify_agrees_after_a_pull_differs_after_a_silent_change_and_the_next_pull_heals_it(ts, server):
    assert ts("pull").code == 0
    agrees = ts("verify")
    assert agrees.code == 0 and "the store agrees with the API" in agrees.out
    assert [k for k in server.kinds[-1:]] == ["listing"]
    assert server.requests[-1][1]["fields"] == "NCTId|OverallStatus" and server.requests[-1][1]["countTotal"] == "true"
    silent = with_status(fixture_record("NCT04056520"), "UNKNOWN")  # no new LastUpdatePostDate
    silent["protocolSection"]["statusModule"]["lastKnownStatus"] = "RECRUITING"
    server.corpus.put(silent)
    differs = ts("verify")
    assert differs.code == 1
    assert "NCT04056520: the API says Unknown status, the store says Recruiting" in differs.out
    next_refresh(server, 25)
    healed = ts("pull", "--quiet")
    assert healed.code == 0 and "NCT04056520 status: Recruiting -> Unknown status" in healed.out
    assert any(p.get("filter.ids") == "NCT04056520" for _, p in server.requests)
    assert ts("verify").code == 0


def test_verify_json_names_every_difference(ts, server):
    assert ts("pull").code == 0
    server.corpus.remove("NCT04056520")
    data = json.loads(ts("verify", "-f", "json").out)
    assert (data["agrees"], data["only_in_store"], data["api_total"], data["store_total"]) == (
        False, ["NCT04056520"], 12, 13)


# -- the database is ours or untouched ---------------------------------------------------------------------


READ_COMMANDS = [("status-report",), ("changes",), ("pulls",), ("show", "NCT05489822"), ("topics", "list"),
                 ("verify",)]
WRITE_COMMANDS = [("pull",), ("topics", "add", "x", "--cond", "y"), ("topics", "remove", SPINE, "--yes")]


def test_another_applications_sqlite_file_is_left_byte_identical(ts, tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE studies (nct_id TEXT PRIMARY KEY, raw TEXT)")  # a look-alike, still not ours
    conn.execute("INSERT INTO studies VALUES ('NCT05489822', '{}')")
    conn.commit()
    conn.close()
    before = sha(other)
    sample = tmp_path / "s.json"
    sample.write_text(json.dumps([fixture_record("NCT05489822")]))
    for args in READ_COMMANDS + WRITE_COMMANDS + [("import", str(sample))]:
        result = ts(*args, "--db", str(other))
        assert result.code == 1 and result.err.count("\n") == 1, (args, result)
        assert "trialsync did not make" in result.err, args
    assert sha(other) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db", "s.json"]


def test_a_database_from_a_newer_trialsync_is_left_byte_identical(ts, tmp_path):
    assert ts("pull").code == 0
    path = tmp_path / "cli.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = sha(path)
    for args in READ_COMMANDS + WRITE_COMMANDS:
        result = ts(*args)
        assert result.code == 1 and "newer trialsync" in result.err and result.err.count("\n") == 1, args
    assert sha(path) == before


@pytest.mark.parametrize("args", READ_COMMANDS)
def test_a_read_only_command_does_not_create_a_missing_database(ts, tmp_path, args):
    missing = tmp_path / "nowhere" / "trialsync.db"
    result = ts(*args, "--db", str(missing))
    assert result.code == 1 and "no trialsync database" in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "nowhere").exists()


# -- diagnosis ---------------------------------------------------------------------------------------------


def test_a_record_that_breaks_the_spec_fails_the_pull_naming_the_study_and_field(ts, server, tmp_path):
    broken = fixture_record("NCT05489822")
    broken["protocolSection"]["designModule"]["phases"] = "PHASE2"  # the spec has an array
    server.corpus.put(broken)
    result = ts("pull")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "NCT05489822: protocolSection.designModule.phases is a string" in result.err
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        outcome, error = conn.execute("SELECT outcome, error FROM pulls").fetchone()
    assert outcome == "failed" and "NCT05489822" in error


def test_a_read_only_database_file_says_so(ts, tmp_path, monkeypatch):
    assert ts("pull").code == 0
    from trialsync.store import db as store_db

    real_connect = store_db._connect
    # As root, file permissions do not stop a write; a read-only open is what a read-only file gives anyone else.
    monkeypatch.setattr(store_db, "_connect", lambda target, uri=False: real_connect(
        f"{store_db.Path(target).resolve().as_uri()}?mode=ro" if not uri else target, True))
    result = ts("pull", "--full")
    assert result.code == 1 and result.err.count("\n") == 1 and "is read-only" in result.err, result


def test_a_full_disk_is_named_and_the_pull_row_says_failed(ts, server, tmp_path, monkeypatch):
    from trialsync.store import db as store_db

    real_connect = store_db._connect

    def small_disk(target, uri=False):
        conn = real_connect(target, uri)
        # room for the schema (64 pages), the API's data model (8 pages) and a little more
        conn.execute("PRAGMA max_page_count = 86")
        return conn

    monkeypatch.setattr(store_db, "_connect", small_disk)
    result = ts("pull")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "is full" in result.err, result.err
    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT outcome FROM pulls").fetchall() == [("failed",)]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("args", [
    ("pulls", "-n", "99999999999999999999999"),
    ("changes", "--pulls", "99999999999999999999999"),
    ("pull", "--wait", "nan"),
    ("pull", "--wait", "inf"),
    ("pull", "--rate", "nan"),
    ("pull", "--timeout", "0"),
    ("topics", "add", "sci\n", "--cond", "x"),
    ("import", "data/stem-cell-spine-sample.json", "--topic", "Bad Name"),
    ("pull", "--api-url", "ftp://example.org/api"),
])
def test_bad_option_values_exit_2_with_one_line(ts, args):
    result = ts(*args)
    assert result.code == 2, result
    assert result.err.count("\n") == 1 and result.err.startswith("trialsync: ") and "Traceback" not in result.err


def test_pulls_of_an_unknown_topic_is_an_error(ts):
    assert ts("pull").code == 0
    result = ts("pulls", "nosuch")
    assert result.code == 1 and "unknown topic 'nosuch'" in result.err


def test_a_request_that_trickles_bytes_is_abandoned_at_its_deadline_and_sent_again(ts, server):
    server.inject("page:only", "trickle", seconds=60)  # 0.6 s a byte: the whole page would take hours
    started = time.monotonic()
    result = ts("pull", "--timeout", "1")
    assert result.code == 0, result
    assert time.monotonic() - started < 15
    pages = [p for (path, p), k in zip(server.requests, server.kinds) if k == "page:only"]
    assert len(pages) == 2 and pages[0] == pages[1]


# -- signals -------------------------------------------------------------------------------------------------


def start(tmp_path, server, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TRIALSYNC_DB": str(tmp_path / "sig.db"), "TRIALSYNC_API_URL": server.url,
           "TRIALSYNC_RATE": "0"}
    return subprocess.Popen([sys.executable, "-m", "trialsync", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_request(server, kind: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while kind not in server.kinds:
        assert time.monotonic() < deadline, f"no {kind} request came"
        time.sleep(0.05)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("fault, options", [("429", {"retry_after": 120}), ("hang", {"seconds": 60})])
def test_sigterm_while_waiting_on_the_api_exits_130_within_seconds(tmp_path, server, fault, options):
    server.inject("version", fault, **options)
    process = start(tmp_path, server, "pull")
    wait_for_request(server, "version")
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("trialsync: interrupted")
    with sqlite3.connect(tmp_path / "sig.db") as conn:
        assert conn.execute("SELECT outcome FROM pulls").fetchall() == [("interrupted",)]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("command", [("pull", "--wait", "60"), ("import", "data/stem-cell-spine-sample.json", "--wait", "60")])
def test_sigterm_while_waiting_for_the_lock_exits_130(tmp_path, server, command):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from trialsync import store\n"
         "with store.write_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(tmp_path / "sig.db")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        process = start(tmp_path, server, *command)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()


def test_a_listing_taken_while_the_registry_refreshed_is_taken_again_before_anything_is_called_left(db, tmp_path):
    """The registry's data refresh lands between two pages of the id listing: a study leaves on the first
    page's side and another joins on the second's, so the count still matches. Only a listing that begins and
    ends under one dataTimestamp may say which studies left."""
    from trialsync import store
    from trialsync.api import ApiClient
    from trialsync.sync import listing as listing_module
    from trialsync.sync.pull import PullOptions, pull_topic
    from trialsync.topics import BUILTIN_TOPICS

    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    with FakeApi(Corpus(records)) as server:
        store.save_topic(db, BUILTIN_TOPICS[SPINE])
        client = ApiClient(base_url=server.url, rate=0)
        assert pull_topic(db, client, SPINE).outcome == "complete"
        server.data_timestamp = "2026-11-25T09:00:00"
        real = listing_module.list_statuses
        calls = []

        def refresh_during_the_first_listing(client, search, progress):
            statuses = real(client, search, progress)
            if not calls:  # as if the refresh came mid-listing: this listing is of the old data, the API's is new
                server.data_timestamp = "2026-11-25T10:30:00"
                server.corpus.remove("NCT04056520")
            calls.append(sorted(statuses))
            return statuses

        from trialsync.sync import pull as pull_module

        pull_module.list_statuses = refresh_during_the_first_listing
        try:
            result = pull_topic(db, client, SPINE, PullOptions())
        finally:
            pull_module.list_statuses = real
        assert len(calls) == 2 and "NCT04056520" in calls[0] and "NCT04056520" not in calls[1]
        assert result.left == 1 and store.present_ids(db, SPINE) == set(SPINE_CONDITION_IDS) - {"NCT04056520"}
        # the first pull: at its start and after its listing; the second: at its start, after the listing that
        # straddled the refresh, and after the listing taken again
        assert server.kinds.count("version") == 5
        assert store.topic_state(db, SPINE).data_timestamp == "2026-11-25T09:00:00"  # the next pull is not skipped


def test_verify_says_on_stderr_when_the_store_differs(ts, server):
    assert ts("pull").code == 0
    server.corpus.remove("NCT04056520")
    result = ts("verify")
    assert result.code == 1
    assert result.err == (f"trialsync: {SPINE}: the store differs from the API (1 difference); "
                          f"`trialsync pull {SPINE}` brings it up to date\n")


def test_a_digest_fits_a_mail_of_80_columns(ts, server, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert ts("pull").code == 0
    next_refresh(server, 25)
    server.corpus.put(with_status(fixture_record("NCT06589271"), "COMPLETED", updated="2026-11-25"))
    out = ts("pull", "--quiet").out
    assert "  NCT06589271 status: Recruiting -> Completed\n    SCLife®-LDD hUC-MSCs Injection Therapy" in out
    assert all(len(line) <= 80 for line in out.splitlines()[1:])  # the summary line aside


def test_an_error_line_keeps_a_long_url_short(ts, server, monkeypatch):
    monkeypatch.setenv("TRIALSYNC_RETRIES", "1")
    assert ts("topics", "add", "long", "--cond", "x" * 400).code == 0
    server.inject("page", "503", times=5)
    result = ts("pull", "long")
    assert result.code == 1 and "HTTP 503" in result.err and len(result.err) < 260, result.err


def test_a_first_pull_killed_midway_is_shown_as_partial(ts, server):
    from trialsync.sync import saving as saving_module

    class Killed(BaseException):
        pass

    real, pages = saving_module.save_studies, []

    def killed_on_the_second_page(*args, **kwargs):
        pages.append(1)
        if len(pages) == 2:
            raise Killed
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(saving_module, "save_studies", killed_on_the_second_page)
        ts("pull", "--page-size", "5")
    report = ts("status-report")
    assert report.code == 0 and report.out.startswith(f"{SPINE}: 5 studies:")
    assert "No pull or import of this topic has completed yet" in report.out


def test_a_damaged_database_stops_a_bare_pull_after_the_first_topic(ts, server, tmp_path, monkeypatch):
    assert ts("topics", "add", "a", "--cond", "x").code == 0 and ts("topics", "add", "b", "--cond", "y").code == 0
    from trialsync.errors import StoreError
    from trialsync.sync import run as run_module

    calls = []

    def broken(conn, client, name, options, progress, warn=None):
        calls.append(name)
        raise StoreError("the database is damaged (test)")

    monkeypatch.setattr(run_module, "pull_topic", broken)
    result = ts("pull")
    assert result.code == 1 and calls == ["a"] and result.err.count("\n") == 1
