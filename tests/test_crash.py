"""Real processes: a pull killed with SIGKILL at random moments, then run again; two pulls at once."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import orjson
import pytest

from fakeapi import Corpus, FakeApi, load_fixture_records

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")


def start_pull(db_path, server: FakeApi, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TRIALSYNC_DB": str(db_path), "TRIALSYNC_API_URL": server.url, "TRIALSYNC_RATE": "0"}
    return subprocess.Popen([sys.executable, "-m", "trialsync", "pull", "--page-size", "10", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def slow_server():
    with FakeApi(Corpus(load_fixture_records()), page_delay=0.08) as server:
        yield server


def test_a_pull_killed_at_random_moments_then_rerun_holds_exactly_the_served_records(tmp_path, slow_server):
    db_path = tmp_path / "killed.db"
    chance = random.Random(7)
    for _ in range(6):
        asked = len(slow_server.requests)
        process = start_pull(db_path, slow_server)
        # The moment is counted from the pull's first request, so that a slow start on a busy machine does not
        # turn every kill into one before the pull began.
        deadline = time.monotonic() + 60
        while len(slow_server.requests) == asked and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(chance.uniform(0.0, 1.2))
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = start_pull(db_path, slow_server)
    out, err = finished.communicate(timeout=120)
    assert finished.returncode == 0, err

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {nct_id: orjson.loads(raw) for nct_id, raw in conn.execute("SELECT nct_id, raw FROM studies")}
        outcomes = [row[0] for row in conn.execute("SELECT outcome FROM pulls ORDER BY id")]
    assert stored == {nct_id: slow_server.corpus.get(nct_id) for nct_id in slow_server.corpus.order}
    assert outcomes[-1] in ("complete", "unchanged")
    assert "running" not in outcomes
    assert "killed" in outcomes  # recorded as such by the next start


def test_two_pulls_started_together_never_both_write(tmp_path, slow_server):
    db_path = tmp_path / "together.db"
    first = start_pull(db_path, slow_server)
    second = start_pull(db_path, slow_server)
    results = sorted((p.wait(timeout=120), p.stderr.read()) for p in (first, second))
    assert [code for code, _ in results] == [0, 75]
    assert "another trialsync pull is writing" in results[1][1]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*), sum(outcome = 'complete') FROM pulls").fetchone() == (1, 1)


def test_sigterm_stops_a_pull_at_a_page_boundary(tmp_path, slow_server):
    db_path = tmp_path / "term.db"
    process = start_pull(db_path, slow_server)
    deadline = time.monotonic() + 30
    # Signalled once its pages come (however slowly a loaded machine starts it), so the pull row exists.
    while sum(path.endswith("/studies") for path, _ in slow_server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    with sqlite3.connect(db_path) as conn:
        outcome, received = conn.execute("SELECT outcome, received FROM pulls").fetchone()
        stored = conn.execute("SELECT count(*) FROM studies").fetchone()[0]
    assert outcome == "interrupted"
    assert stored == received and stored % 10 == 0  # whole pages only
