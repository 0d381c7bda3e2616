"""``doctor`` (against the stand-in API and databases made by real pulls, then damaged or aged in the test)
and ``config``: the exact line of each check, the exit code, and not a byte of the database changed."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record
from fakeapi import Corpus, FakeApi
from trialsync import dates
from trialsync.store import open_for_writing, start_pull
from trialsync.store.db import SCHEMA_VERSION, default_db_path
from trialsync.sync.doctor import check_pace


@pytest.fixture
def api_server():
    """The stand-in API serving the 13 spine records, which carry no field the recorded data model lacks (other
    fixture records do): a healthy database has no schema drift to report (tests/test_drift.py)."""
    with FakeApi(Corpus([fixture_record(nct_id) for nct_id in SPINE_CONDITION_IDS])) as server:
        yield server


@pytest.fixture
def spine(cli, api_server, tmp_path, monkeypatch):
    """Topic 'spine' pulled from the stand-in API into the cli fixture's database; doctor runs paced at 50."""
    assert cli("topics", "add", "spine", "--condition", "spine").code == 0
    assert cli("pull", "spine", "--api-url", api_server.url).code == 0
    monkeypatch.setenv("TRIALSYNC_RATE", "50")
    monkeypatch.setenv("TRIALSYNC_API_URL", api_server.url)
    return tmp_path / "cli.db"


def snapshot(folder) -> dict:
    """Every file in ``folder`` with the hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def lines(result) -> list[str]:
    return result.out.splitlines()


def test_doctor_on_a_healthy_database_says_all_is_well_and_changes_nothing(cli, spine, api_server):
    before = snapshot(spine.parent)
    result = cli("doctor")
    assert result.code == 0, result
    assert snapshot(spine.parent) == before
    assert result.err == ""
    with sqlite3.connect(f"{spine.as_uri()}?mode=ro", uri=True) as conn:
        fetched = conn.execute("SELECT fetched_at FROM data_models").fetchone()[0]
    conn.close()
    assert lines(result) == [
        f"ok   schema: version {SCHEMA_VERSION}, {spine}",
        "ok   integrity: quick_check found no damage",
        "ok   lock: free (no pull or import under way)",
        "ok   pulls: every pull and import finished",
        "ok   topic spine: last pulled less than a minute ago",
        "ok   pace: no recent pull ran 30 s or longer to measure its pace (the API allows about 50 requests a minute)",
        f"ok   drift: the records pulled match the API's data model (apiVersion 2.0.5, fetched {fetched[:10]})",
        lines(result)[7],
        f"ok   API: {api_server.url} answers, apiVersion 2.0.5",
        "ok   API data: dataTimestamp 2026-11-24T09:00:05",
        "ok   rate: pulls pace to 50 requests a minute (the API allows about 50)",
    ]
    assert lines(result)[7].startswith("ok   disk: ") and "free, database" in lines(result)[7]
    assert cli("doctor", "--quiet").out == ""


def test_doctor_json_gives_every_check_with_its_state(cli, spine):
    import json

    result = cli("doctor", "--format", "json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["ok"] is True
    assert {"name": "topic spine", "state": "ok", "message": "last pulled less than a minute ago", "advice": ""} \
        in data["checks"]


def test_doctor_creates_no_database(cli, tmp_path, api_server, monkeypatch):
    monkeypatch.setenv("TRIALSYNC_RATE", "50")
    result = cli("doctor", "--api-url", api_server.url)
    assert result.code == 1
    assert lines(result)[0] == (f"FAIL database: no trialsync database at {tmp_path / 'cli.db'} -- "
                                "`trialsync pull` or `trialsync import FILE` makes one")
    assert result.err == "trialsync: doctor: 1 of 4 checks is not well\n"
    assert list(tmp_path.iterdir()) == []


def test_doctor_reports_a_damaged_database_in_one_line(cli, spine):
    data = bytearray(spine.read_bytes())
    page = 4096
    data[page:page * 3] = b"\xa5" * (page * 2)  # the header stays: the file is still ours, its pages are not
    spine.write_bytes(bytes(data))
    before = snapshot(spine.parent)
    result = cli("doctor")
    assert result.code == 1
    failed = [line for line in lines(result) if not line.startswith("ok")]
    assert len(failed) == 1
    assert failed == [f"FAIL integrity: database {spine} is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says "
                      "where): database disk image is malformed -- restore a backup, or move the file aside and pull again"]
    assert "Traceback" not in result.err and result.err.count("\n") == 1
    assert snapshot(spine.parent) == before


def test_doctor_reports_a_newer_schema_and_leaves_it_untouched(cli, spine):
    conn = sqlite3.connect(spine)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = snapshot(spine.parent)
    result = cli("doctor")
    assert result.code == 1
    assert lines(result)[0] == (f"FAIL schema: version 99, made by a newer trialsync (this one knows up to {SCHEMA_VERSION}); "
                                "the file was left untouched -- upgrade trialsync")
    assert snapshot(spine.parent) == before


def test_doctor_reports_a_pull_that_never_finished(cli, spine):
    with open_for_writing(spine) as conn:
        pull_id = start_pull(conn, "spine")
        started = conn.execute("SELECT started_at FROM pulls WHERE id = ?", [pull_id]).fetchone()[0]
        under_way = cli("doctor")  # the lock is held by this process: the pull is under way
    assert f"ok   lock: held by process {__import__('os').getpid()}: a pull or import is under way" in lines(under_way)
    assert "ok   pulls: every pull and import finished" in lines(under_way)
    result = cli("doctor")  # the lock is free now, the row still says running: its process is gone
    assert result.code == 1
    assert (f"warn pulls: pull #{pull_id} of spine (started {started[:10]} {started[11:16]}) never finished: its "
            "process is gone -- run `trialsync pull spine`, which records it and pulls again") in lines(result)


def test_a_search_index_set_aside_by_another_program_is_reported_then_rebuilt_by_the_next_pull(cli, spine):
    """Only trialsync's writer sets the full-text triggers aside, inside its own transaction; a row another program
    commits there would silently stop them. doctor says so without writing; the next pull rebuilds the index."""
    nct_id = SPINE_CONDITION_IDS[0]
    conn = sqlite3.connect(spine)
    conn.execute("INSERT INTO search_index_deferred (deferred) VALUES (1)")
    conn.execute("UPDATE studies SET brief_title = 'Qwxyzt trial' WHERE nct_id = ?", [nct_id])
    conn.commit()
    conn.close()
    assert cli("list", "--search", "qwxyzt", "--format", "csv").out.count(nct_id) == 0  # the index missed it
    before = snapshot(spine.parent)
    result = cli("doctor")
    assert result.code == 1
    assert ("warn search index: set aside by another program (search_index_deferred holds a row): `list --search` "
            "may miss text written since -- the next `trialsync pull` or `trialsync import` rebuilds it") in lines(result)
    assert snapshot(spine.parent) == before

    pulled = cli("pull", "spine")
    assert pulled.code == 0, pulled
    assert pulled.err.startswith(f"trialsync: the full-text index of {spine} had been set aside by another program; "
                                 "rebuilt it\n")
    assert nct_id in cli("list", "--search", "qwxyzt", "--format", "csv").out
    with sqlite3.connect(spine) as conn:
        assert conn.execute("SELECT count(*) FROM search_index_deferred").fetchone() == (0,)
        conn.execute("INSERT INTO studies_fts (studies_fts) VALUES ('integrity-check')")
    conn.close()
    assert not [line for line in lines(cli("doctor")) if "search index" in line]


def test_doctor_reports_a_topic_not_pulled_for_three_days(cli, api_server, monkeypatch):
    three_days_ago = datetime.now(timezone.utc) - timedelta(days=3)
    monkeypatch.setattr(dates, "utc_now", lambda: three_days_ago.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert cli("topics", "add", "spine", "--condition", "spine").code == 0
    assert cli("topics", "add", "never", "--condition", "scoliosis").code == 0
    assert cli("pull", "spine", "--api-url", api_server.url).code == 0
    monkeypatch.setenv("TRIALSYNC_RATE", "50")  # doctor reads the clock itself: three days after that pull
    result = cli("doctor", "--api-url", api_server.url)
    assert result.code == 1
    assert "warn topic spine: last pulled 3 days ago -- run `trialsync pull spine`" in lines(result)
    assert "warn topic never: never pulled -- run `trialsync pull never`" in lines(result)
    assert result.err == "trialsync: doctor: 2 of 12 checks are not well\n"


def test_doctor_reports_an_unreachable_api(cli, spine):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before doctor asks: nothing listens there
    result = cli("doctor", "--api-url", f"http://127.0.0.1:{port}")
    assert result.code == 1
    assert (f"FAIL API: http://127.0.0.1:{port} cannot be reached (connection refused) -- check the network and "
            "--api-url / TRIALSYNC_API_URL; `trialsync import FILE` works offline") in lines(result)
    assert "Traceback" not in result.err


def test_doctor_reports_a_pull_the_api_throttled_and_pacing_turned_off(cli, spine, api_server, monkeypatch):
    api_server.inject("any", "429-bare", times=1)
    assert cli("pull", "spine", "--full", "--retries", "1", "--api-url", api_server.url).code == 1
    monkeypatch.setenv("TRIALSYNC_RATE", "0")
    result = cli("doctor")
    assert result.code == 1
    assert ("warn pace: pull #2 of spine gave up on HTTP 429 (too many requests) -- keep --rate / TRIALSYNC_RATE "
            "at 50 a minute or lower") in lines(result)
    assert ("warn rate: pacing is off (rate 0) -- set --rate / TRIALSYNC_RATE to 50 a minute: past that the API "
            "answers 429") in lines(result)


def _row(pull_id: int, requests: int, seconds: int) -> dict:
    start = datetime(2026, 11, 20, 6, 30, tzinfo=timezone.utc)
    return {"id": pull_id, "topic": "spine", "outcome": "complete", "error": None, "requests": requests,
            "started_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished_at": (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_the_pace_of_the_busiest_recent_pull_is_measured_against_the_api_limit():
    ok = check_pace([_row(3, 26, 40), _row(2, 31, 60), _row(1, 200, 10)])  # #1 too short to measure
    assert (ok.state, ok.message) == ("ok", "the busiest recent pull (#3 of spine) sent 38 requests a minute, 75% of "
                                            "the about 50 the API allows")
    fast = check_pace([_row(4, 61, 30)])
    assert (fast.state, fast.message) == ("warn", "the busiest recent pull (#4 of spine) sent 120 requests a minute, "
                                                  "240% of the about 50 the API allows")


def test_config_without_environment_variables_gives_the_defaults(cli, monkeypatch):
    for name in ("TRIALSYNC_DB", "TRIALSYNC_RATE", "TRIALSYNC_API_URL"):
        monkeypatch.delenv(name, raising=False)
    result = cli("config")
    assert result.code == 0
    assert lines(result) == [
        f"database  {default_db_path()}  (default; --db or TRIALSYNC_DB)",
        "API URL   https://clinicaltrials.gov/api/v2  (default; --api-url or TRIALSYNC_API_URL)",
        "rate      50 requests a minute, one every 1.21 s  (default; --rate or TRIALSYNC_RATE)",
        "",
        "TRIALSYNC_API_URL          unset, default: https://clinicaltrials.gov/api/v2",
        f"TRIALSYNC_DB               unset, default: {default_db_path()}",
        "TRIALSYNC_DEBUG            unset, default: off (an unexpected error is one line; set it to see its traceback)",
        "TRIALSYNC_LIST_EVERY       unset, default: 7",
        "TRIALSYNC_MAX_RESPONSE_MB  unset, default: 64",
        "TRIALSYNC_RATE             unset, default: 50",
        "TRIALSYNC_REFRESH_DAYS     unset, default: 30",
        "TRIALSYNC_RETRIES          unset, default: 5 (doctor: 1)",
        "TRIALSYNC_TIMEOUT          unset, default: 120 (doctor: 30)",
    ]


def test_config_shows_the_environment_in_effect_and_flags_what_no_command_reads(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TRIALSYNC_RATE", "20")
    monkeypatch.setenv("TRIALSYNC_API_URL", "http://127.0.0.1:8080/api/v2")
    monkeypatch.setenv("TRIALSYNC_RETRIES", "0")
    monkeypatch.setenv("TRIALSYNC_RATES", "3")
    result = cli("config")
    assert result.code == 0
    assert lines(result)[:3] == [
        f"database  {tmp_path / 'cli.db'}  (TRIALSYNC_DB)",
        "API URL   http://127.0.0.1:8080/api/v2  (TRIALSYNC_API_URL)",
        "rate      20 requests a minute, one every 3.03 s  (TRIALSYNC_RATE)",
    ]
    assert f"TRIALSYNC_DB               {tmp_path / 'cli.db'}" in lines(result)
    assert "TRIALSYNC_RATE             20" in lines(result)
    assert "TRIALSYNC_RATES            3  (not a trialsync setting)" in lines(result)
    assert ("TRIALSYNC_RETRIES          0  (refused by the commands: Invalid value for '--retries' (env var: "
            "'TRIALSYNC_RETRIES'): 0 is not in the range 1<=x<=100.)") in lines(result)


def test_doctor_reports_an_older_schema_without_upgrading_it(cli, tmp_path, api_server, monkeypatch):
    import shutil
    from pathlib import Path

    path = tmp_path / "cli.db"
    shutil.copyfile(Path(__file__).parent / "fixtures" / "db" / "v3-48f87f1.db", path)  # made by a release of schema 3
    before = snapshot(tmp_path)
    monkeypatch.setenv("TRIALSYNC_RATE", "50")
    result = cli("doctor", "--api-url", api_server.url)
    assert result.code == 1
    assert lines(result)[:3] == [
        f"warn schema: version 3, older than this trialsync's {SCHEMA_VERSION} -- the next `trialsync pull` upgrades it (doctor does not)",
        "ok   integrity: quick_check found no damage",
        "ok   lock: free (no pull or import under way)",
    ]
    assert snapshot(tmp_path) == before


def test_on_a_terminal_the_marks_are_symbols_and_advice_follows_a_dash_only_when_not_well():
    from trialsync.render.doctor import render_checks
    from trialsync.sync.doctor import Check

    checks = [Check("lock", "ok", "free", "never shown"), Check("topic a", "warn", "never pulled", "run it"),
              Check("API", "fail", "down\x1b[2J", "wait")]
    assert render_checks(checks, "text", terminal=True).splitlines() == [
        "✓ lock: free", "! topic a: never pulled — run it", "✗ API: down\\x1b[2J — wait"]
    assert render_checks(checks, "text", quiet=True).splitlines() == [
        "warn topic a: never pulled -- run it", "FAIL API: down\\x1b[2J -- wait"]


def test_doctor_warns_of_a_pace_above_the_limit_an_api_of_another_version_and_no_data_date(cli, spine, api_server,
                                                                                            monkeypatch):
    monkeypatch.setenv("TRIALSYNC_RATE", "80")
    api_server.api_version, api_server.data_timestamp = "1.9", None
    result = cli("doctor")
    assert result.code == 1
    assert [line for line in lines(result) if not line.startswith("ok")] == [
        f"warn API: {api_server.url} answers, with apiVersion '1.9' -- trialsync reads version 2 of the API: "
        "is --api-url right?",
        "warn API data: the API did not say when its data was refreshed (no dataTimestamp)",
        "warn rate: pulls pace to 80 requests a minute, above the about 50 the API allows -- set --rate / "
        "TRIALSYNC_RATE to 50 or lower",
    ]


def test_doctor_reports_an_api_that_answers_what_is_not_json(cli, spine, api_server):
    api_server.inject("version", "html", times=50)  # a maintenance page, answered 200, on every try
    result = cli("doctor")
    assert result.code == 1
    failed = [line for line in lines(result) if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL API: cannot be reached: "), failed
    assert failed[0].endswith(
        " -- check the network and --api-url / TRIALSYNC_API_URL; `trialsync import FILE` works offline")


def test_doctor_warns_when_the_disk_may_not_hold_a_full_pull(cli, spine, monkeypatch):
    import shutil

    from trialsync.sync import doctor

    real = shutil.disk_usage(spine.parent)
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: real._replace(free=999))
    result = cli("doctor")
    assert result.code == 1
    [disk] = [line for line in lines(result) if "disk:" in line]
    assert disk.startswith("warn disk: only 999 bytes free, database ") and disk.endswith(
        f" -- free space on {spine.parent.resolve()}: a pull may need up to {doctor.DISK_FACTOR}x the database's size")


def test_doctor_names_what_quick_check_finds_and_how_much_more(cli, spine):
    # two topics written past their NOT NULL created_at (the constraint lifted, then put back): quick_check
    # names the first and counts the other
    conn = sqlite3.connect(spine)
    schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'topics'").fetchone()[0]
    assert "created_at TEXT NOT NULL" in schema
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'topics'",
                 [schema.replace("created_at TEXT NOT NULL", "created_at TEXT")])
    conn.commit()
    conn.close()
    conn = sqlite3.connect(spine)
    conn.executemany("INSERT INTO topics (name, params, created_at) VALUES (?, '{}', NULL)", [["a"], ["b"]])
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'topics'", [schema])
    conn.commit()
    conn.close()
    result = cli("doctor")
    assert result.code == 1
    [integrity] = [line for line in lines(result) if "integrity:" in line]
    assert integrity == (f"FAIL integrity: database {spine} is damaged: NULL value in topics.created_at "
                         "(and 1 more problems) -- restore a backup, or move the file aside and pull again")


def test_doctor_on_imported_studies_only_says_records_are_not_checked_against_a_data_model(cli, tmp_path,
                                                                                         monkeypatch):
    from pathlib import Path

    assert cli("import", str(Path(__file__).parent.parent / "data" / "stem-cell-spine-sample.json")).code == 0
    monkeypatch.setenv("TRIALSYNC_RATE", "50")
    result = cli("doctor", "--api-url", "http://127.0.0.1:9")
    assert ("ok   drift: no pull has fetched the API's data model yet: records are not checked against it"
            in lines(result)), result.out


def test_doctor_warns_when_no_topic_is_stored(cli, spine):
    assert cli("topics", "remove", "spine", "--yes").code == 0
    result = cli("doctor")
    assert "warn topics: no topic is stored -- `trialsync pull` follows the built-in one" in lines(result), result.out
