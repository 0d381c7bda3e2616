"""A database other people browse: foreign keys that hold, a full-text index that triggers keep in step with
any write, views for the common questions, and the real Datasette serving it all with trialsync's metadata.
The database is built once for the module, by the CLI: two pulls of the spine topic from the stand-in API
(one study terminated and one gone between them), then an import of every fixture record into a second topic."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from conftest import fixture_record, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records

TERMINATED = "NCT05489822"  # terminated between the two pulls
GONE = "NCT04056520"  # no longer served by the second pull: it left the spine topic


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """``trialsync ARGS`` in-process; returns the exit code and standard output."""
    from trialsync import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["trialsync", *args])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli_module.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    assert code == 0, (args, err.getvalue())
    return code, out.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(database path, a function running ``trialsync ARGS`` against it and returning its output)."""
    path = tmp_path_factory.mktemp("browse") / "trialsync.db"
    records = load_fixture_records()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("TRIALSYNC_DB", str(path))
        monkeypatch.setenv("TRIALSYNC_RATE", "0")
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.delenv("TRIALSYNC_API_URL", raising=False)

        def cli(*args: str) -> str:
            return run_cli(monkeypatch, *args)[1]

        with FakeApi(Corpus(records)) as server:
            cli("topics", "add", "spine", "--condition", "spine")
            cli("pull", "spine", "--api-url", server.url)
            server.data_timestamp = "2026-11-25T09:00:00"
            server.corpus.put(with_status(fixture_record(TERMINATED), "TERMINATED", updated="2026-11-25"))
            server.corpus.remove(GONE)
            cli("pull", "spine", "--api-url", server.url)
        every = path.parent / "every.json"
        every.write_text(json.dumps(records))
        cli("import", str(every), "--topic", "all")
        yield path, cli


def rows(path: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_the_declared_foreign_keys_hold_on_a_database_built_by_pulls_and_an_import(built):
    path, _ = built
    assert rows(path, "PRAGMA foreign_key_check") == []
    declared = {(table, row[3], row[2]) for table in ("versions", "topic_studies", "digest_backlog", "conditions")
                for row in rows(path, f"SELECT * FROM pragma_foreign_key_list('{table}')")}
    assert {("versions", "nct_id", "studies"), ("topic_studies", "topic", "topics"),
            ("topic_studies", "first_pull", "pulls"), ("topic_studies", "left_pull", "pulls"),
            ("digest_backlog", "change_id", "changes"), ("conditions", "nct_id", "studies")} <= declared
    # The check has something to check: a replaced record, a study that left, two topics.
    assert rows(path, "SELECT nct_id FROM versions") == [(TERMINATED,)]
    assert rows(path, "SELECT count(*) FROM topic_studies WHERE left_pull IS NOT NULL") == [(1,)]


def search(conn: sqlite3.Connection, query: str) -> set[str]:
    return {row[0] for row in conn.execute(
        "SELECT s.nct_id FROM studies_fts f JOIN studies s ON s.rowid = f.rowid WHERE studies_fts MATCH ?", [query])}


def check_index(conn: sqlite3.Connection) -> None:
    """FTS5's own check that the index holds exactly the text of the view it indexes (raises if not)."""
    conn.execute("INSERT INTO studies_fts (studies_fts, rank) VALUES ('integrity-check', 1)")


def test_triggers_keep_the_search_index_in_step_with_any_write(built, tmp_path):
    path = tmp_path / "copy.db"
    source = sqlite3.connect(built[0])
    target = sqlite3.connect(path)
    source.backup(target)
    source.close()
    conn = target
    check_index(conn)
    nct_id = "NCT05489822"
    condition = conn.execute("SELECT condition FROM conditions WHERE nct_id = ? ORDER BY seq", [nct_id]).fetchone()[0]
    word = condition.split()[0]
    assert nct_id in search(conn, f'conditions: "{word}"')

    # A list item removed, one added, one changed, outside trialsync's writer.
    conn.execute("DELETE FROM conditions WHERE nct_id = ?", [nct_id])
    check_index(conn)
    assert nct_id not in search(conn, f'conditions: "{word}"')
    conn.execute("INSERT INTO keywords (nct_id, seq, keyword) VALUES (?, 99, 'zyxwv')", [nct_id])
    check_index(conn)
    assert search(conn, "keywords: zyxwv") == {nct_id}
    conn.execute("UPDATE keywords SET keyword = 'qwertz' WHERE nct_id = ? AND seq = 99", [nct_id])
    check_index(conn)
    assert search(conn, "zyxwv") == set() and search(conn, "qwertz") == {nct_id}

    # The study's own columns: a title changed, a record refreshed (the raw text, not its titles), the row deleted.
    conn.execute("UPDATE studies SET brief_title = 'Vwxyz trial' WHERE nct_id = ?", [nct_id])
    check_index(conn)
    assert search(conn, "vwxyz") == {nct_id}
    conn.execute("UPDATE studies SET raw = raw || ' ' WHERE nct_id = ?", [nct_id])
    check_index(conn)
    conn.execute("DELETE FROM studies WHERE nct_id = ?", [nct_id])
    check_index(conn)
    assert search(conn, "vwxyz") == set() and search(conn, "qwertz") == set()
    conn.close()


def test_the_views_answer_the_common_questions(built):
    path, cli = built
    for topic in ("spine", "all"):
        report = json.loads(cli("status-report", topic, "-f", "json"))
        counted = dict(rows(path, "SELECT overall_status, studies FROM topic_status_counts WHERE topic = ?", topic))
        assert counted == {entry["status"]: entry["count"] for entry in report["statuses"]}
    listed = {study["nct_id"] for study in json.loads(cli("list", "spine", "-n", "1000", "-f", "json"))}
    assert TERMINATED in listed and GONE not in listed
    topics = dict(rows(path, "SELECT nct_id, topics FROM studies_with_topics"))
    assert len(topics) == rows(path, "SELECT count(*) FROM studies")[0][0]
    assert {nct_id for nct_id, held in topics.items() if held == "all, spine"} == listed
    assert topics[GONE] == "all"
    title = fixture_record(TERMINATED)["protocolSection"]["identificationModule"]["briefTitle"]
    status_change = rows(path, "SELECT brief_title, old, new FROM recent_changes WHERE nct_id = ? AND field = ?",
                         TERMINATED, "overall_status")
    assert status_change == [(title, fixture_record(TERMINATED)["protocolSection"]["statusModule"]["overallStatus"],
                              "TERMINATED")]
    ids = [row[0] for row in rows(path, "SELECT id FROM recent_changes")]
    assert ids == sorted(ids, reverse=True) and len(ids) == rows(path, "SELECT count(*) FROM changes")[0][0]
    assert rows(path, "SELECT count(*) FROM sites") == rows(path, "SELECT count(*) FROM locations")


# The real Datasette on the built database, with the metadata `trialsync datasette-metadata` prints.

@pytest.fixture(scope="module")
def datasette(built):
    """A function getting a path from the real Datasette serving the built database: (status, body)."""
    app = pytest.importorskip("datasette.app", reason="datasette (a test dependency) is not installed")
    path, cli = built
    metadata = json.loads(cli("datasette-metadata"))
    ds = app.Datasette([str(path)], metadata=metadata)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(ds.invoke_startup())

    def get(url: str) -> tuple[int, str]:
        response = loop.run_until_complete(ds.client.get(url))
        return response.status_code, response.text

    yield get
    loop.close()


def get_json(datasette, url: str):
    status, body = datasette(url)
    assert status == 200, (url, body[:500])
    return json.loads(body)


def test_datasette_searches_the_full_text_index_as_list_search_does(built, datasette):
    _, cli = built
    for word in ("spinal", "cancer"):
        found = get_json(datasette, f"/trialsync/studies_search.json?_search={word}&_shape=array&_size=max")
        listed = json.loads(cli("list", "all", "--search", word, "-n", "1000", "-f", "json"))
        assert {row["nct_id"] for row in found} == {study["nct_id"] for study in listed} != set()
        # The table itself searches the same index.
        studies = get_json(datasette, f"/trialsync/studies.json?_search={word}&_shape=array&_size=max&_col=nct_id")
        assert {row["nct_id"] for row in studies} == {row["nct_id"] for row in found}
    status, page = datasette("/trialsync/studies_search")
    assert status == 200 and 'name="_search"' in page  # the search box


def test_datasette_serves_the_views_as_trialsync_reports_them(built, datasette):
    path, cli = built
    counts = get_json(datasette, "/trialsync/topic_status_counts.json?topic=spine&_shape=array")
    report = json.loads(cli("status-report", "spine", "-f", "json"))
    assert {row["overall_status"]: row["studies"] for row in counts} == {
        entry["status"]: entry["count"] for entry in report["statuses"]}
    study = get_json(datasette, f"/trialsync/studies_with_topics.json?nct_id={TERMINATED}&_shape=array")
    assert [(row["overall_status"], row["topics"], row["url"]) for row in study] == [
        ("TERMINATED", "all, spine", f"https://clinicaltrials.gov/study/{TERMINATED}")]
    changes = get_json(datasette, f"/trialsync/recent_changes.json?nct_id={TERMINATED}&field=overall_status&_shape=array")
    assert [row["new"] for row in changes] == ["TERMINATED"]
    sites = get_json(datasette, "/trialsync/sites.json?_size=1")
    assert {"latitude", "longitude", "nct_id", "brief_title"} <= set(sites["columns"])  # what map plugins look for
    assert sites["filtered_table_rows_count"] == rows(path, "SELECT count(*) FROM locations")[0][0]


def test_datasette_shows_the_metadata_facets_and_labels(built, datasette):
    served = get_json(datasette, "/-/metadata.json")
    assert served["source"] == "ClinicalTrials.gov, U.S. National Library of Medicine"
    assert served["license_url"] == "https://clinicaltrials.gov/about-site/terms-conditions"
    studies = get_json(datasette, "/trialsync/studies.json?_size=0")
    assert {"overall_status", "phases", "lead_sponsor_class"} <= set(studies["facet_results"])
    terminated = next(item for item in studies["facet_results"]["overall_status"]["results"]
                      if item["value"] == "TERMINATED")
    assert terminated["count"] == rows(built[0], "SELECT count(*) FROM studies WHERE overall_status = 'TERMINATED'")[0][0]
    # A foreign key to studies shows the study's title (label_column).
    versions = get_json(datasette, "/trialsync/versions.json?_labels=on&_shape=array&_col=nct_id")
    title = fixture_record(TERMINATED)["protocolSection"]["identificationModule"]["briefTitle"]
    assert [row["nct_id"] for row in versions] == [{"value": TERMINATED, "label": title}]
    status, page = datasette("/trialsync/studies")
    assert status == 200 and "One row per study" in page  # the table's description


def test_the_metadata_names_the_database_after_its_file(built, tmp_path):
    _, cli = built
    metadata = json.loads(cli("datasette-metadata", "--db", str(tmp_path / "mirror.db")))
    assert list(metadata["databases"]) == ["mirror"]
    assert not (tmp_path / "mirror.db").exists()  # the file is named, never made
    tables = metadata["databases"]["mirror"]["tables"]
    assert tables["studies_search"] == {**tables["studies_search"], "fts_table": "studies_fts", "fts_pk": "rowid"}
    assert tables["studies"]["label_column"] == "brief_title"


def test_the_metadata_describes_every_table_and_view_and_only_columns_they_have(built):
    """A person browsing sees what each table holds: every table and view of the database has a description
    (SQLite's own tables and the full-text index's shadow tables aside), worded alike (a capital first, no
    full stop), and a column is described only if its table has it."""
    from trialsync.render.datasette import datasette_metadata

    path, _ = built
    tables = datasette_metadata(path.stem)["databases"][path.stem]["tables"]
    present = {name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND "
                                             "name NOT LIKE 'sqlite_%' AND name NOT LIKE 'studies_fts_%'")}
    described = {name for name, meta in tables.items() if meta.get("description")}
    assert present - described == set() and set(tables) - present == set()
    for name, meta in tables.items():
        texts = [meta["description"], *meta.get("columns", {}).values()]
        assert all(t[0].isupper() or t[0].isdigit() for t in texts) and not any(t.endswith(".") for t in texts), name
        have = {column for (_, column, *_) in rows(path, f"PRAGMA table_xinfo({name})")}
        assert set(meta.get("columns", {})) <= have, name
