"""The digest misses nothing and repeats nothing, whatever the order topics are pulled in.

Every change is reported exactly once per topic it belongs to: a study's change is in the digest of each topic
that holds it before or after the change (the status change that makes it leave a topic, or join or rejoin
one, is that topic's news too), whichever topic's pull saw it first, even when the pull that saw it failed.
Everything runs through the command line against the stand-in API, from real records.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import fixture_record, with_status
from fakeapi import Corpus, FakeApi

STUDY = "NCT05489822"  # recruiting in its real record
OTHER = "NCT06589271"  # recruiting too; never changes here
FIXTURE_DB = Path(__file__).parent / "fixtures" / "db"

# a, b and c overlap on STUDY: a watchlist, the recruiting studies of a search, every study of a search.
TOPICS = {
    "a": ("--ids", f"{STUDY},{OTHER}"),
    "b": ("--condition", "x", "--status", "recruiting"),
    "c": ("--condition", "y"),
}
ADDED = "added topic"

LEFT = f"{STUDY} left the topic"
BACK = f"{STUDY} back in the topic"


def status_line(old: str, new: str) -> str:
    return f"{STUDY} status: {old} -> {new}"


def digest_lines(out: str) -> list[str]:
    """The change lines of a run's output (the digest's indented lines, titles left out)."""
    return [line.strip().split(" (")[0] for line in out.splitlines() if line.startswith("  ") and
            not line.startswith("    ")]


@pytest.fixture
def world(cli):
    """The stand-in API serving STUDY and OTHER, with helpers to add topics, pull and move time on."""
    record = fixture_record(STUDY)
    corpus = Corpus([record, fixture_record(OTHER)])
    with FakeApi(corpus) as server:
        class World:
            api = server

            def add(self, *names: str) -> None:
                for name in names:
                    assert cli("topics", "add", name, *TOPICS[name]).code == 0

            def pull(self, *names: str, quiet: bool = True):
                result = cli("pull", *names, "--api-url", server.url, *(["--quiet"] if quiet else []))
                assert result.code == 0, result.err
                return result

            def status(self, status: str, day: str) -> None:
                corpus.put(with_status(record, status, updated=day))
                server.data_timestamp = f"{day}T09:00:00"

        yield World()


def first_fill(world, names) -> None:
    world.add(*names)
    for name in names:
        assert "full pull (first pull)" in world.pull(name).out


@pytest.mark.parametrize("order", list(itertools.permutations("ab")) + list(itertools.permutations("abc")),
                         ids="".join)
def test_a_status_change_that_moves_a_study_out_of_and_back_into_a_topic_is_in_its_digest_in_any_order(world, order):
    first_fill(world, sorted(order))
    world.status("COMPLETED", "2026-11-25")
    outs = {name: digest_lines(world.pull(name).out) for name in order}
    completed = status_line("Recruiting", "Completed")
    assert outs["b"] == [completed, LEFT], outs
    for name in set(order) - {"b"}:
        assert outs[name] == [completed], (name, outs)

    world.status("RECRUITING", "2026-11-26")
    outs = {name: digest_lines(world.pull(name).out) for name in order}
    recruiting = status_line("Completed", "Recruiting")
    assert outs["b"] == [recruiting, BACK], outs
    for name in set(order) - {"b"}:
        assert outs[name] == [recruiting], (name, outs)

    # nothing is repeated: a new release with no change, then every topic again
    world.api.data_timestamp = "2026-11-27T09:00:00"
    for name in order:
        assert world.pull(name).out == "", name


# -- one run, several topics ---------------------------------------------------------------------------------


def test_one_run_of_several_topics_prints_a_shared_change_once_naming_them_and_moves_each_cursor(world, cli):
    first_fill(world, ["a", "b", "c"])
    world.status("COMPLETED", "2026-11-25")
    out = world.pull(quiet=True).out  # every stored topic
    lines = out.splitlines()
    assert digest_lines(out) == [status_line("Recruiting", "Completed"), LEFT]
    shared = lines.index("trialsync: 1 change in a, b and c")
    own = lines.index("trialsync: 1 change in b")
    assert shared < own
    assert [line for line in lines if line.startswith("trialsync:")] == [
        "trialsync: 1 change in a, b and c", "trialsync: 1 change in b"]
    # each topic's cursor moved: neither a run of them all nor of one repeats it
    world.api.data_timestamp = "2026-11-26T09:00:00"
    assert world.pull().out == ""
    for name in "abc":
        world.api.data_timestamp = f"2026-11-2{7 + 'abc'.index(name)}T09:00:00"
        assert world.pull(name).out == ""

    world.status("RECRUITING", "2026-12-01")
    out = world.pull("b", "a", quiet=False).out  # the order named
    lines = out.splitlines()
    assert lines[0].startswith("b: incremental pull") and lines[1].startswith("a: incremental pull")
    assert [line for line in lines if line.startswith("trialsync:")] == [
        "trialsync: 1 change in b", "trialsync: 1 change in b and a"]
    assert digest_lines(out) == [BACK, status_line("Completed", "Recruiting")]
    # c did not run: it still owes the change, once
    assert digest_lines(world.pull("c").out) == [status_line("Completed", "Recruiting")]


def test_changes_pulls_n_of_a_topic_counts_its_own_pulls(world, cli):
    first_fill(world, ["a", "b"])
    world.status("COMPLETED", "2026-11-25")
    world.pull("a")
    world.pull("b")
    for day in ("26", "27", "28"):  # more pulls of a, none of b
        world.api.data_timestamp = f"2026-11-{day}T09:00:00"
        world.pull("a")
    shown = cli("changes", "b", "--pulls", "1")
    assert shown.code == 0
    assert [" ".join(line.split()[1:4]) for line in shown.out.splitlines()[1:]] == [
        f"{STUDY} left topic", f"{STUDY} status: Recruiting"]
    assert cli("changes", "a", "--pulls", "1").out == "nothing in the last 1 pull of a\n"
    assert cli("changes", "a", "--pulls", "3").out == "nothing in the last 3 pulls of a\n"
    listed = json.loads(cli("changes", "a", "--pulls", "4", "-f", "json").out)
    assert [(c["nct_id"], c["field"], c["new"]) for c in listed] == [(STUDY, "overall_status", "COMPLETED")]
    assert json.loads(cli("changes", "a", "--pulls", "1", "-f", "json").out) == []


# -- an upgrade from the first release -------------------------------------------------------------------------


def test_an_upgraded_first_release_database_reports_what_its_failed_and_killed_pulls_saw_once(cli, tmp_path):
    """The first release printed a pull's changes only once it completed. Its fixture ends with a failed pull and
    a killed one; here each had stored one changed record first, written as that release wrote a page (the
    record, its replaced version and the change, filed under the pull's topic)."""
    import orjson
    import zlib

    path = tmp_path / "cli.db"
    shutil.copyfile(FIXTURE_DB / "v1-dc89d50.db", path)
    seen = {7: with_status(fixture_record("NCT00042536"), "TERMINATED", updated="2026-11-20"),
            8: with_status(fixture_record("NCT00282477"), "COMPLETED", updated="2026-11-21")}
    conn = sqlite3.connect(path)
    with conn:
        for pull_id, record in seen.items():
            nct_id = record["protocolSection"]["identificationModule"]["nctId"]
            status = record["protocolSection"]["statusModule"]
            old_raw, old_status, old_updated = conn.execute(
                "SELECT raw, overall_status, last_update_posted FROM studies WHERE nct_id = ?", [nct_id]).fetchone()
            conn.execute("UPDATE studies SET raw = ?, overall_status = ?, last_update_posted = ? WHERE nct_id = ?",
                         [orjson.dumps(record).decode(), status["overallStatus"],
                          status["lastUpdatePostDateStruct"]["date"], nct_id])
            conn.execute("INSERT INTO versions (nct_id, pull_id, replaced_at, last_update_posted, raw_zlib) "
                         "VALUES (?, ?, '2026-12-03T08:47:29Z', ?, ?)",
                         [nct_id, pull_id, old_updated, zlib.compress(old_raw.encode())])
            conn.execute("INSERT INTO changes (pull_id, topic, nct_id, field, old, new, observed_at) "
                         "VALUES (?, 'stem-cell-spine', ?, 'overall_status', ?, ?, '2026-12-03T08:47:29Z')",
                         [pull_id, nct_id, old_status, status["overallStatus"]])
            conn.execute("UPDATE pulls SET received = 1, updated = 1 WHERE id = ?", [pull_id])
    conn.close()

    expected = ["NCT00042536 status: Completed -> Terminated", "NCT00282477 status: Unknown status -> Completed"]
    manifest = json.loads((FIXTURE_DB / "MANIFEST.json").read_text())["fixtures"]["v1-dc89d50"]
    records = [seen[7], seen[8]] + [fixture_record(n) for n in manifest["studies"]
                                    if n not in ("NCT00042536", "NCT00282477")]
    with FakeApi(Corpus(records)) as server:
        first = cli("pull", "--api-url", server.url, "--quiet")
        assert first.code == 0, first.err
        assert [line for line in digest_lines(first.out) if " status: " in line] == expected
        # (the odd records the fixture holds are replaced by the API's, which is news too)
        server.data_timestamp = "2026-11-25T09:00:00"
        again = cli("pull", "--api-url", server.url, "--quiet")
    assert again.code == 0 and again.out == ""
    logged = [(c["nct_id"], c["old"], c["new"]) for c in json.loads(cli("changes", "-f", "json").out)
              if c["field"] == "overall_status"]
    assert logged == [("NCT00282477", "UNKNOWN", "COMPLETED"), ("NCT00042536", "COMPLETED", "TERMINATED")]
