"""Shared test helpers: real fixture records, a database, the CLI in-process, and the stand-in API."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeapi import Corpus, FakeApi, load_fixture_records  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_record(nct_id: str) -> dict:
    """A fresh copy of a real recorded study from tests/fixtures/studies."""
    return orjson.loads((FIXTURES / "studies" / f"{nct_id}.json").read_bytes())


def fixture_page(name: str) -> dict:
    """A real recorded /studies response from tests/fixtures/pages."""
    return orjson.loads((FIXTURES / "pages" / name).read_bytes())


# Walking a record to set each of its fields, in turn, to a value of the wrong type.

def _shape(path: tuple) -> tuple:
    return tuple(step for step in path if not isinstance(step, int))


def record_leaves(node, path=(), seen=None):
    """(path, value) of each scalar under ``node``: the first of each list item's fields met in the record's order,
    so a field that only a later site or outcome carries is reached too."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        for key, value in node.items():
            yield from record_leaves(value, path + (key,), seen)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from record_leaves(value, path + (index,), seen)
    elif _shape(path) not in seen and (not path or not isinstance(path[-1], int) or path[-1] == 0):
        seen.add(_shape(path))
        yield path, node


def error_path(path: tuple) -> str:
    """A path as an error names it: the list a scalar sits in by index, a list of objects by its name alone."""
    parts = []
    for position, step in enumerate(path):
        if isinstance(step, int):
            if position == len(path) - 1:
                parts[-1] += f"[{step}]"
        else:
            parts.append(step)
    return ".".join(parts)


def record_containers(node, path=(), seen=None):
    """The path of each object and list under ``node``, outermost first: the first of each met in the record's
    order, as ``record_leaves``."""
    seen = set() if seen is None else seen
    for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
        if isinstance(value, (dict, list)):
            shape = _shape(path + (key,)) + ((0,) if isinstance(key, int) else ())
            if shape not in seen:
                seen.add(shape)
                yield path + (key,)
            yield from record_containers(value, path + (key,), seen)


def with_status(record: dict, status: str, updated: str | None = None) -> dict:
    """A later state of a real record: a new overall status and, if given, a newer last-update date."""
    later = copy.deepcopy(record)
    later["protocolSection"]["statusModule"]["overallStatus"] = status
    if updated:
        later["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = updated
    return later


SPINE_CONDITION_IDS = ["NCT01824108", "NCT04056520", "NCT04188236", "NCT05305430", "NCT05489822", "NCT05508360",
             "NCT05821920", "NCT05880823", "NCT05883436", "NCT06011551", "NCT06127745", "NCT06413225",
             "NCT06589271"]


@pytest.fixture
def db(tmp_path):
    """A read-write connection to a new trialsync database in tmp_path, holding its write lock."""
    from trialsync.store import open_for_writing

    with open_for_writing(tmp_path / "test.db") as database:
        yield database


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Retries back off for milliseconds, not seconds; Retry-After is still honoured as sent."""
    from trialsync.api import client

    monkeypatch.setattr(client, "DEFAULT_BACKOFF", 0.01)


def table_dump(db, skip=("_sqlite_migrations",)) -> dict:
    """Every row of every table, to compare whole database states."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: sorted(db.execute(f"SELECT * FROM [{t}]").fetchall(), key=repr) for t in tables if t not in skip}


@pytest.fixture
def api_server():
    """The stand-in API serving every fixture record as it is."""
    with FakeApi(Corpus(load_fixture_records())) as server:
        yield server


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``trialsync ARGS`` in-process against a database in tmp_path; returns code, stdout, stderr."""
    from trialsync import cli as cli_module

    monkeypatch.setenv("TRIALSYNC_DB", str(tmp_path / "cli.db"))
    monkeypatch.setenv("TRIALSYNC_RATE", "0")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("TRIALSYNC_API_URL", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["trialsync", *args])
        try:
            cli_module.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


class ModuleCli:
    """``trialsync ARGS`` in-process with ``env`` set, for a module-scoped fixture (pytest's ``capsys`` and the
    ``cli`` fixture are per test); returns code, out and err."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str):
        import contextlib
        import io

        from trialsync import cli as cli_module

        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            for name, value in self.env.items():
                mp.setenv(name, value)
            mp.delenv("TRIALSYNC_API_URL", raising=False)
            mp.setattr(sys, "argv", ["trialsync", *args])
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    cli_module.main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return CliResult(code, out.getvalue(), err.getvalue())


def pull_spine_twice(cli, server, clock: dict) -> None:
    """Topic 'spine' pulled from ``server`` (the 13 spine records) on 2026-11-20, then again on 2026-11-22
    after NCT05489822 was terminated and NCT04056520 stopped being served. ``clock['now']`` is the time
    trialsync reads."""
    clock["now"] = "2026-11-20T10:00:00Z"
    assert cli("topics", "add", "spine", "--condition", "spine").code == 0
    assert cli("pull", "spine", "--api-url", server.url).code == 0
    clock["now"] = "2026-11-22T10:00:00Z"
    server.data_timestamp = "2026-11-22T09:00:00"
    server.corpus.put(with_status(fixture_record("NCT05489822"), "TERMINATED", updated="2026-11-22"))
    server.corpus.remove("NCT04056520")
    assert cli("pull", "spine", "--api-url", server.url).code == 0


@pytest.fixture(scope="session")
def import_cache(tmp_path_factory) -> dict:
    """Databases already built by an import, by (topic, records), kept for the whole session."""
    return {"folder": tmp_path_factory.mktemp("imported"), "built": {}}


def import_cached(cli, tmp_path, records: list[dict], topic: str, cache: dict) -> None:
    """As ``import_as``, but a second test asking for the same import into a new database gets a copy of the
    database the first one built (the import itself is what other tests exercise; here it only sets a scene)."""
    target = Path(os.environ["TRIALSYNC_DB"])
    key = hashlib.sha256(orjson.dumps([topic, records])).hexdigest()
    built = cache["built"].get(key)
    if built is not None and not target.exists():
        shutil.copyfile(built, target)
        return
    import_as(cli, tmp_path, records, topic)
    if built is None:
        built = cache["folder"] / f"{key}.db"
        with sqlite3.connect(target) as source, sqlite3.connect(built) as copy_:
            source.backup(copy_)
        cache["built"][key] = built


def import_as(cli, tmp_path, records: list[dict], topic: str) -> None:
    """Import ``records`` (real records, or ones derived from them in a test) into ``topic`` through the CLI."""
    path = tmp_path / f"{topic}.json"
    path.write_text(json.dumps(records))
    result = cli("import", str(path), "--topic", topic)
    assert result.code == 0, result
