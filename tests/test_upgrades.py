"""Upgrades always work: a database filled by any earlier release (tests/fixtures/db/, made by each release's own
code with tests/fixtures/db/build.py, odd records that release accepted included) is upgraded by the first
command of this one, and every command reads it. What cannot be derived from an odd record is left empty and
named once; the records themselves stay byte for byte as they were stored."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest

from fakeapi import Corpus, FakeApi

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "db"
MANIFEST = json.loads((FIXTURE_DIR / "MANIFEST.json").read_text())
FIXTURES = sorted(MANIFEST["fixtures"])
STUDIES = Path(__file__).parent / "fixtures" / "studies"
# The derived table(s) each odd record's field feeds: left empty for that study.
EMPTY_FOR = {
    "NCT00415220": ["primary_outcomes"],
    "NCT00334477": ["central_contacts", "location_contacts"],
    "NCT02028013": ["conditions"],
    "NCT00122499": ["locations", "study_countries", "location_contacts"],
    "NCT00893113": ["outcomes", "outcome_counts", "outcome_measurements", "outcome_analyses"],
}
ODD_PHASES = ['PHASE2 "open"', "PHASE3\\b"]


def stored(path: Path, sql: str) -> list[tuple]:
    """Rows read from ``path``; a file under tests/ is read as immutable (nothing made beside it)."""
    immutable = "&immutable=1" if FIXTURE_DIR in path.parents else ""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro{immutable}", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def assert_search_index_matches(path: Path) -> None:
    """FTS5's own check that the full-text index holds exactly the text of the view it indexes (raises if not)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO studies_fts (studies_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


def named_fields(err: str) -> list[tuple[str, str]]:
    """(NCT id, field) of each odd-record line on stderr."""
    found = []
    for line in err.splitlines():
        if "is not of the shape the API's spec gives it" in line:
            nct_id, rest = line.removeprefix("trialsync: ").split(": ", 1)
            found.append((nct_id, rest.split(" ", 1)[0]))
    return found


def expected_named(name: str) -> list[tuple[str, str]]:
    """What the upgrade of fixture ``name`` names: each stored odd record's odd field (a phase holding a quote
    is text, not an odd shape: it is stored as it is)."""
    info = MANIFEST["fixtures"][name]
    named = []
    for nct_id in info["odd_stored"]:
        field = MANIFEST["odd"][nct_id]["field"]
        derived_by = 7 if field.startswith("resultsSection.") else 3  # the migration deriving tables from it
        if info["user_version"] < derived_by and nct_id != "NCT00939406":
            named.append((nct_id, field))
    if "NCT00334477" in info["odd_stored"] and info["user_version"] < 3:
        named.append(("NCT00334477", "protocolSection.contactsLocationsModule.locations.contacts"))
    return sorted(named)


@pytest.fixture(params=FIXTURES)
def old(request, tmp_path):
    """(fixture name, the copy the cli fixture uses, the original's raw records by NCT id)."""
    name = request.param
    source = FIXTURE_DIR / f"{name}.db"
    target = tmp_path / "cli.db"
    shutil.copyfile(source, target)
    raws = dict(stored(source, "SELECT nct_id, raw FROM studies"))
    return name, target, raws


def normalized_schema(path: Path) -> set[tuple]:
    return {(kind, name, " ".join((sql or "").replace('"', "").split()))
            for kind, name, sql in stored(path, "SELECT type, name, sql FROM sqlite_master")}


def test_every_fixture_was_made_by_a_release_and_is_small():
    assert {"v1-dc89d50", "v3-8deebb8", "v3-fcfb81e", "v3-48f87f1"} <= set(FIXTURES)
    for name in FIXTURES:
        path = FIXTURE_DIR / f"{name}.db"
        assert path.stat().st_size < 400_000, name
        assert stored(path, "PRAGMA integrity_check") == [("ok",)], name
        outcomes = [row[0] for row in stored(path, "SELECT outcome FROM pulls WHERE kind = 'pull' ORDER BY id")]
        assert outcomes == ["failed", "running"], name  # a failed pull, then one killed while running


def test_an_old_database_upgrades_and_every_command_reads_it(cli, old, tmp_path):
    from trialsync.store import SCHEMA_VERSION

    name, path, raws = old
    info = MANIFEST["fixtures"][name]
    first = cli("status-report", "-f", "json")
    assert first.code == 0, first
    assert sorted(named_fields(first.err)) == expected_named(name)  # each once
    json.loads(first.out)
    assert stored(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert stored(path, "PRAGMA integrity_check") == [("ok",)]
    assert stored(path, "PRAGMA foreign_key_check") == []  # every declared reference holds
    assert_search_index_matches(path)

    # One shape: the upgraded schema is the schema this release creates.
    fresh = tmp_path / "fresh.db"
    from trialsync.store import open_for_writing

    with open_for_writing(fresh):
        pass
    assert normalized_schema(path) == normalized_schema(fresh)

    outputs = [cli("status-report"), cli("list"), cli("changes"), cli("pulls"), cli("topics", "list")]
    for by in ("phase", "country", "condition", "study-type", "sponsor", "start-year", "sponsor-class", "results"):
        outputs.append(cli("status-report", "--by", by, "-f", "json"))
        json.loads(outputs[-1].out)
    for args in (("list", "-f", "json"), ("list", "-n", "1000", "-f", "json"), ("changes", "-f", "json"),
                 ("pulls", "-f", "json"), ("list", "--search", "spine", "-f", "json"),
                 ("list", "--near", "Chicago, IL", "-f", "json"), ("list", "--as-of", "2030-01-01", "-f", "json")):
        outputs.append(cli(*args))
        assert outputs[-1].code == 0, (args, outputs[-1])
        json.loads(outputs[-1].out)
    for nct_id in info["studies"]:
        outputs.append(cli("show", nct_id))
        assert nct_id in outputs[-1].out
        outputs.append(cli("show", nct_id, "-f", "json"))
        assert orjson.loads(outputs[-1].out) == orjson.loads(raws[nct_id])
    for result in outputs:
        assert result.code == 0, result
        assert named_fields(result.err) == []  # named once, by the upgrade
        assert "damaged" not in result.err
    pulls = json.loads(cli("pulls", "-f", "json").out)
    assert sorted(p["outcome"] for p in pulls if p["kind"] == "pull") == ["failed", "running"]

    # The records are kept as they were stored, byte for byte.
    assert dict(stored(path, "SELECT nct_id, raw FROM studies")) == raws


def test_an_odd_record_keeps_the_rest_of_its_columns_and_leaves_the_odd_field_empty(cli, old):
    name, path, raws = old
    info = MANIFEST["fixtures"][name]
    assert cli("pulls").code == 0
    for nct_id in info["odd_stored"]:
        record = orjson.loads(raws[nct_id])
        row = stored(path, "SELECT brief_title, overall_status, official_title, min_age, org_study_id, study_type "
                           f"FROM studies WHERE nct_id = '{nct_id}'")[0]
        protocol = record["protocolSection"]
        assert row == (protocol["identificationModule"]["briefTitle"], protocol["statusModule"]["overallStatus"],
                       protocol["identificationModule"].get("officialTitle"),
                       protocol["eligibilityModule"].get("minimumAge"),
                       protocol["identificationModule"]["orgStudyIdInfo"]["id"], protocol["designModule"]["studyType"])
        for table in EMPTY_FOR.get(nct_id, []):
            assert stored(path, f"SELECT count(*) FROM {table} WHERE nct_id = '{nct_id}'") == [(0,)], (nct_id, table)
        assert stored(path, f"SELECT count(*) FROM sponsors WHERE nct_id = '{nct_id}'") != [(0,)]


def test_phases_holding_a_quote_or_a_backslash_come_out_as_valid_json(cli, old):
    name, _, _ = old
    assert "NCT00939406" in MANIFEST["fixtures"][name]["odd_stored"]
    listed = json.loads(cli("list", "-n", "1000", "-f", "json").out)
    assert next(s for s in listed if s["nct_id"] == "NCT00939406")["phases"] == ODD_PHASES
    rows = json.loads(cli("status-report", "--by", "phase", "-f", "json").out)["rows"]
    values = {row["value"] for row in rows}
    assert set(ODD_PHASES) <= values


def test_a_pull_after_the_upgrade_replaces_odd_records_and_calls_the_killed_pull_killed(cli, old):
    name, path, raws = old
    records = [orjson.loads((STUDIES / f"{n}.json").read_bytes()) for n in MANIFEST["fixtures"][name]["studies"]]
    with FakeApi(Corpus(records)) as server:
        result = cli("pull", "--api-url", server.url)
    assert result.code == 0, result
    assert "damaged" not in result.err
    outcomes = [p["outcome"] for p in json.loads(cli("pulls", "-f", "json").out) if p["kind"] == "pull"]
    assert sorted(outcomes) == ["complete", "failed", "killed"]
    assert stored(path, "PRAGMA integrity_check") == [("ok",)]
    # The API's records as they are now replace the odd ones, and everything is derived from them.
    if "NCT00415220" in MANIFEST["fixtures"][name]["odd_stored"]:
        assert stored(path, "SELECT count(*) FROM primary_outcomes WHERE nct_id = 'NCT00415220'")[0][0] == 4
    assert stored(path, "SELECT phases FROM studies WHERE nct_id = 'NCT00939406'") == [("PHASE2, PHASE3",)]
    json.loads(cli("list", "-n", "1000", "-f", "json").out)
    for table in ("studies_fts",):
        assert stored(path, f"SELECT count(*) FROM {table}")[0][0] == len(records)
    assert stored(path, "PRAGMA foreign_key_check") == []
    assert_search_index_matches(path)


def test_a_database_with_a_broken_page_is_called_damaged(cli, tmp_path):
    path = tmp_path / "cli.db"
    shutil.copyfile(FIXTURE_DIR / "v3-48f87f1.db", path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for number in range(2, len(data) // page):  # every page but the first (the header and sqlite_master)
        data[number * page:number * page + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    try:
        assert stored(path, "PRAGMA integrity_check") != [("ok",)]
    except sqlite3.DatabaseError as exc:
        assert "malformed" in str(exc)
    result = cli("status-report")
    assert result.code == 1
    assert "damaged" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_malformed_json_from_a_json_function_is_not_damage():
    from trialsync.store import describe_error

    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute("SELECT json_extract('text', '$.measure')")
    assert "damaged" not in str(describe_error(caught.value))
    assert "damaged" in str(describe_error(sqlite3.DatabaseError("database disk image is malformed")))


def test_an_upgrade_from_before_results_derives_the_results_tables_as_a_pull_would(cli, tmp_path):
    """Migration 7's frozen SQL gives every stored record (of the last release before it) the rows the live
    transform gives it; the record with odd outcome measures keeps the rest of its results."""
    from trialsync.transform import RESULT_COLUMNS, study_rows

    name = "v6-d82d80f"
    info = MANIFEST["fixtures"][name]
    path = tmp_path / "cli.db"
    shutil.copyfile(FIXTURE_DIR / f"{name}.db", path)
    raws = dict(stored(path, "SELECT nct_id, raw FROM studies"))
    assert cli("pulls").code == 0
    with_results = 0
    for nct_id, raw in raws.items():
        for table, columns in RESULT_COLUMNS.items():
            rows = stored(path, f"SELECT {', '.join(columns)} FROM {table} WHERE nct_id = '{nct_id}' ORDER BY seq")
            if nct_id == "NCT00893113" and table in EMPTY_FOR[nct_id]:
                assert rows == [], table
                continue
            expected = study_rows(orjson.loads(_fixed(nct_id, raw)), raw.encode()).results[table]
            if nct_id == "NCT00893113" and table == "result_groups":  # the outcomes' groups went with them
                expected = [row for row in expected if row[0] != "Outcome"]
                assert len(expected) == len(rows) == 7
            assert rows == expected, (nct_id, table)
        with_results += bool(stored(path, f"SELECT count(*) FROM outcomes WHERE nct_id = '{nct_id}'")[0][0])
    assert with_results == 3  # the three records with results the release stored, the odd one aside
    assert "NCT00893113" in info["odd_stored"]
    # its other results are there
    assert stored(path, "SELECT count(*) FROM reported_events WHERE nct_id = 'NCT00893113'")[0][0] > 0
    state = dict(stored(path, "SELECT nct_id, results_state FROM studies"))
    assert {n: s for n, s in state.items() if s == "posted"} == dict.fromkeys(
        ["NCT00329836", "NCT00893113", "NCT04326231", "NCT04520009"], "posted")


def _fixed(nct_id: str, raw: str) -> bytes:
    """The stored record, with an odd field put back as the real record has it (to compute the rest of it)."""
    if nct_id != "NCT00893113":
        return raw.encode()
    record = orjson.loads(raw)
    module = record["resultsSection"]["outcomeMeasuresModule"]
    module["outcomeMeasures"] = list(module["outcomeMeasures"].values())
    return orjson.dumps(record)
