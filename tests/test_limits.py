"""Limits on what the API sends: a body past the size cap, numbers out of range for their column, and an
import that fails leaving its pulls row failed. Through the command line, against the loopback stand-in."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from conftest import fixture_record, table_dump, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records

RECORDS = load_fixture_records()
TOPIC = "stem-cell-spine"
NEW_TIMESTAMP = "2026-11-25T09:00:00"


def cli_db(tmp_path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "cli.db")


def state_without_pulls(tmp_path) -> dict:
    with cli_db(tmp_path) as conn:
        state = table_dump(conn)
    conn.close()
    pulls = state.pop("pulls")
    return state, pulls


# -- a body past the cap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["flood", "flood-stream"])
def test_a_flooding_answer_fails_in_one_line_without_a_retry_and_changes_nothing(fault, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALSYNC_MAX_RESPONSE_MB", "1")
    with FakeApi(Corpus(RECORDS)) as server:
        args = ("pull", "--api-url", server.url, "--page-size", "50")
        first = cli(*args)
        assert first.code == 0, first  # pages of 50 real records are under 1 MB
        before, pulls_before = state_without_pulls(tmp_path)
        server.data_timestamp = NEW_TIMESTAMP
        nct_id = RECORDS[0]["protocolSection"]["identificationModule"]["nctId"]
        server.corpus.put(with_status(fixture_record(nct_id), "COMPLETED", updated=NEW_TIMESTAMP[:10]))
        server.inject("incremental", fault, times=10, size=3 * 1024 * 1024)
        server.reset_log()

        flooded = cli(*args)

        assert flooded.code == 1, flooded
        assert flooded.out == ""
        lines = flooded.err.splitlines()
        assert len(lines) == 1 and "Traceback" not in flooded.err, flooded.err
        assert lines[0].startswith(f"trialsync: {TOPIC}: GET {server.url}/studies?"), lines[0]
        assert "larger than the 1 MB cap" in lines[0] and "not retried" in lines[0], lines[0]
        # A length that says so is refused before a byte of the body is read; a body without one is cut at the cap.
        assert ("announces 3,145,728 bytes" if fault == "flood" else "it kept coming") in lines[0], lines[0]
        assert server.kinds == ["version", "incremental"] and server.injected == [None, fault]  # asked once
        after, pulls_after = state_without_pulls(tmp_path)
        assert after == before
        assert pulls_after[:-1] == pulls_before
        with cli_db(tmp_path) as conn:
            outcome, error = conn.execute("SELECT outcome, error FROM pulls ORDER BY id DESC LIMIT 1").fetchone()
        assert outcome == "failed" and lines[0] == f"trialsync: {TOPIC}: {error}"

        server.clear_faults()  # the same pull under the default cap of 64 MB takes the flood's size in its stride
        monkeypatch.delenv("TRIALSYNC_MAX_RESPONSE_MB")
        server.inject("incremental", fault, size=3 * 1024 * 1024)
        assert cli(*args).code == 0


def test_the_cap_is_an_option_too_and_other_faults_are_still_retried(cli, tmp_path):
    with FakeApi(Corpus(RECORDS)) as server:
        server.inject("page:first", "flood", size=2 * 1024 * 1024)
        result = cli("pull", "--api-url", server.url, "--page-size", "50", "--max-response-mb", "1")
        assert result.code == 1 and "larger than the 1 MB cap" in result.err, result
        assert server.kinds == ["version", "page:first"]
        server.reset_log()
        server.inject("page:middle", "500")
        server.inject("page:last", "cut")
        result = cli("pull", "--api-url", server.url, "--page-size", "50", "--max-response-mb", "1")
        assert result.code == 0, result
        assert server.injected.count("500") == 1 and server.injected.count("cut") == 1
        assert server.kinds.count("page:middle") == 2 and server.kinds.count("page:last") == 2


@pytest.mark.parametrize("value", ["0", "lots"])
def test_a_cap_that_is_not_a_whole_number_of_mb_is_a_usage_error(value, cli):
    result = cli("pull", "--api-url", "http://127.0.0.1:9/api/v2", "--max-response-mb", value)
    assert result.code == 2 and len(result.err.splitlines()) == 1, result
