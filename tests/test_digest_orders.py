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
