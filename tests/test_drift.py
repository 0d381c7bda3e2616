"""Schema drift warnings: the API's data model (/studies/metadata, recorded in tests/fixtures/spec) fetched when
its apiVersion changes, and each record a pull saves checked against it. Pure checks on the recorded model and
every recorded record first; then whole pulls through the command line against the stand-in, which serves the
13 spine records (none of which carries a field the recorded model lacks) and the recorded model."""

from __future__ import annotations

import copy
import glob
import sqlite3
from pathlib import Path

import orjson
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, with_status
from fakeapi import Corpus, FakeApi, recorded_data_model
from trialsync.transform.drift import (
    MAX_SHAPES, DataModel, NotADataModel, model_paths, unknown_statuses, vanished_paths,
)

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = recorded_data_model()
PREDICTIONS = "derivedSection.miscInfoModule.modelPredictions"  # sent by the API since the model was recorded
WARNED = "trialsync: schema drift: "


def without(tree: list[dict], path: str) -> list[dict]:
    """A copy of the data model ``tree`` without the node at the dotted ``path`` (and all below it)."""
    tree = copy.deepcopy(tree)
    *parents, name = path.split(".")
    nodes = tree
    for parent in parents:
        nodes = next(node for node in nodes if node["name"] == parent)["children"]
    nodes.remove(next(node for node in nodes if node["name"] == name))
    return tree


def with_predictions(nct_id: str, status: str | None = None, updated: str | None = None) -> dict:
    """A spine record (a later state of it, if ``status`` is given) carrying the model predictions that a real
    recorded record, NCT02560883, carries: a field the recorded data model lacks."""
    record = fixture_record(nct_id) if status is None else with_status(fixture_record(nct_id), status, updated)
    predictions = fixture_record("NCT02560883")["derivedSection"]["miscInfoModule"]["modelPredictions"]
    record["derivedSection"]["miscInfoModule"]["modelPredictions"] = predictions
    return record


# -- the data model and the records, pure ------------------------------------------------------------------------


def test_the_recorded_model_flattens_to_dotted_paths_with_a_lists_items_as_its_children():
    paths = model_paths(MODEL)
    assert len(paths) == 454
    assert list(paths)[:3] == ["protocolSection", "protocolSection.identificationModule",
                               "protocolSection.identificationModule.nctId"]
    locations = "protocolSection.contactsLocationsModule.locations"
    assert (paths[locations], paths[f"{locations}.city"], paths[f"{locations}.contacts.email"]) == (False, True, True)
    assert paths[f"{locations}.geoPoint"] is True  # a leaf: the model says nothing of lat and lon
    assert sum(paths.values()) == 454 - 112  # 112 nodes have children
    for path in paths:  # every parent comes before its children
        parent = path.rpartition(".")[0]
        assert not parent or list(paths).index(parent) < list(paths).index(path)


@pytest.mark.parametrize("tree, message", [
    ({"name": "protocolSection"}, "the API's data model has dict where a list of fields belongs"),
    ([], "the API's data model holds no field"),
    ([{"name": "protocolSection", "children": [{"title": "x"}]}],
     "the API's data model has a field without a name (under protocolSection)"),
    ([{"name": "protocolSection", "children": {"name": "x"}}],
     "the API's data model has dict where a list of fields belongs (under protocolSection)"),
    ([{"name": ""}], "the API's data model has a field without a name"),
], ids=["object", "empty", "nameless", "children-object", "empty-name"])
def test_a_tree_that_is_not_a_data_model_is_refused_saying_where(tree, message):
    with pytest.raises(NotADataModel) as caught:
        model_paths(tree)
    assert str(caught.value) == message


def every_path(value, prefix: str = "") -> list[str]:
    """Every dotted path of a record, a list's items read as its children: the slow, obvious reading."""
    found = []
    if isinstance(value, dict):
        for key, below in value.items():
            found += [prefix + key, *every_path(below, prefix + key + ".")]
    elif isinstance(value, list):
        for item in value:
            found += every_path(item, prefix)
    return found


def test_every_recorded_record_is_checked_as_the_slow_reading_checks_it():
    paths = model_paths(MODEL)
    model = DataModel(paths)

    def known(path: str) -> bool:  # in the model, or below a leaf of it
        parts = path.split(".")
        return any(".".join(parts[:i]) in paths and (i == len(parts) or paths[".".join(parts[:i])])
                   for i in range(1, len(parts) + 1))

    records = [orjson.loads(Path(p).read_bytes()) for p in sorted(glob.glob(str(FIXTURES / "*" / "NCT*.json")))]
    assert len(records) == 226
    found = set()
    for _ in range(2):  # the second time, every shape is one the model has seen
        for record in records:
            unknown = [p for p in dict.fromkeys(every_path(record)) if not known(p)]
            topmost = [p for p in unknown if p.rpartition(".")[0] not in unknown]
            assert model.unknown_paths(record) == topmost
            found.update(topmost)
    assert found == {PREDICTIONS, "protocolSection.armsInterventionsModule.interventions.interventionMappedName",
                     "protocolSection.contactsLocationsModule.locations_nested"}


def test_a_new_section_is_named_at_the_root_and_a_leaf_covers_what_is_below_it():
    model = DataModel(model_paths(MODEL))
    record = fixture_record("NCT05489822")
    record["aiSection"] = {"summary": "x"}
    assert model.unknown_paths(record) == ["aiSection"]
    locations = "protocolSection.contactsLocationsModule.locations"
    assert model.covers(f"{locations}.geoPoint.lat") and model.covers(f"{locations}.city")
    assert not model.covers(f"{locations}.cityCode") and not model.covers("aiSection.summary")


def test_the_shapes_remembered_are_bounded_and_each_record_still_checked():
    model = DataModel(model_paths(MODEL))
    record = fixture_record("NCT05489822")
    module = record["protocolSection"]["statusModule"]
    for i in range(MAX_SHAPES + 10):  # an odd record whose keys differ each time
        module[f"x{i}"] = i
        assert model.unknown_paths(record) == [f"protocolSection.statusModule.x{i}"]
        del module[f"x{i}"]
    shapes = model._root.fields["protocolSection"].fields["statusModule"].shapes
    assert len(shapes) == MAX_SHAPES
    # each shape remembered carries its verdict: the keys the model lacks, and the objects to look inside
    first = shapes[(*module, "x0")]
    assert first[0] == ("x0",)
    assert [key for key, _ in first[1]] == [key for key, value in module.items() if isinstance(value, dict)]
    assert model.unknown_paths(record) == []


def test_a_field_gone_from_the_model_is_named_once_at_its_top():
    before = model_paths(MODEL)
    after = model_paths(without(without(MODEL, "resultsSection"), "protocolSection.statusModule.whyStopped"))
    assert len(before) - len(after) == 1 + sum(p.startswith("resultsSection.") for p in before) + 1
    assert vanished_paths(before, after) == ["protocolSection.statusModule.whyStopped", "resultsSection"]
    assert vanished_paths(after, before) == []


def test_a_status_outside_the_14_is_found_in_either_status_field():
    record = fixture_record("NCT00282477")  # UNKNOWN, last known ACTIVE_NOT_RECRUITING
    assert unknown_statuses(record) == []
    record["protocolSection"]["statusModule"]["lastKnownStatus"] = "ON_HOLD"
    assert unknown_statuses(with_status(record, "PAUSED")) == ["PAUSED", "ON_HOLD"]
    assert unknown_statuses(with_status(record, "ON_HOLD")) == ["ON_HOLD"]
    assert unknown_statuses({}) == unknown_statuses({"protocolSection": "odd"}) == []


# -- pulls against the stand-in ------------------------------------------------------------------------------


@pytest.fixture
def server():
    with FakeApi(Corpus([fixture_record(nct_id) for nct_id in SPINE_CONDITION_IDS])) as api:
        yield api


@pytest.fixture
def spine(cli):
    assert cli("topics", "add", "spine", "--condition", "spine").code == 0
    return lambda server, *args: cli("pull", "spine", "--api-url", server.url, *args)


def drift_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(WARNED)]


def stored(tmp_path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        rows = conn.execute(sql, params).fetchall()
    conn.close()
    return rows


def refresh(server: FakeApi, day: int, *records: dict) -> None:
    """The registry's data of 2026-11-``day``, with ``records`` served in their place."""
    server.data_timestamp = f"2026-11-{day:02d}T09:00:00"
    for record in records:
        server.corpus.put(record)


def test_a_field_the_model_lacks_is_warned_once_and_the_record_stored_byte_for_byte(spine, server, tmp_path):
    refresh(server, 24, with_predictions("NCT05489822"))

    first = spine(server)

    assert first.code == 0 and "13 studies received (13 new" in first.out, first
    assert first.err.splitlines() == [
        f"{WARNED}NCT05489822 carries {PREDICTIONS}, a field the API's data model (apiVersion 2.0.5) lacks; "
        "stored as sent (raw keeps it)"]
    assert stored(tmp_path, "SELECT CAST(raw AS BLOB) FROM studies WHERE nct_id = 'NCT05489822'") == [
        (server.corpus.body["NCT05489822"],)]
    assert stored(tmp_path, "SELECT kind, value, nct_id, api_version, pull_id FROM drift_notes") == [
        ("unknown field", PREDICTIONS, "NCT05489822", "2.0.5", 1)]
    assert stored(tmp_path, "SELECT api_version, pull_id FROM data_models") == [("2.0.5", 1)]

    # Two more records carry it, one of them the same study in a new state: stored, not warned again.
    refresh(server, 25, with_predictions("NCT05489822", "COMPLETED", "2026-11-25"),
            with_predictions("NCT06589271", "COMPLETED", "2026-11-25"))
    second = spine(server)
    assert second.code == 0 and "2 updated" in second.out and second.err == "", second
    for nct_id in ("NCT05489822", "NCT06589271"):
        assert stored(tmp_path, "SELECT CAST(raw AS BLOB) FROM studies WHERE nct_id = ?", nct_id) == [
            (server.corpus.body[nct_id],)]
    assert server.kinds.count("metadata") == 1


def test_a_status_outside_the_14_is_warned_once_however_many_records_hold_it(spine, server, tmp_path):
    refresh(server, 24, with_status(fixture_record("NCT05305430"), "PAUSED"),
            with_status(fixture_record("NCT05508360"), "PAUSED"))

    first = spine(server)

    assert first.code == 0, first
    assert drift_lines(first.err) == [
        f"{WARNED}NCT05305430 has status PAUSED, not one of the 14 known; stored as sent (counted under its own name)"]
    refresh(server, 25, with_status(fixture_record("NCT06589271"), "PAUSED", "2026-11-25"))
    second = spine(server)
    assert second.code == 0 and "1 updated" in second.out and second.err == "", second
    assert stored(tmp_path, "SELECT count(*) FROM studies WHERE overall_status = 'PAUSED'") == [(3,)]
    assert stored(tmp_path, "SELECT kind, value, nct_id, pull_id FROM drift_notes") == [
        ("unknown status", "PAUSED", "NCT05305430", 1)]


def test_the_model_is_fetched_once_per_api_version(cli, spine, server):
    assert cli("topics", "add", "more", "--condition", "spine").code == 0
    assert spine(server).code == 0
    assert server.kinds == ["version", "metadata", "page:only", "version"]

    server.reset_log()
    refresh(server, 25, with_status(fixture_record("NCT05489822"), "COMPLETED", "2026-11-25"))
    assert spine(server).code == 0
    assert "metadata" not in server.kinds

    # A new apiVersion: the first pull of the run fetches its model; the second topic's pull finds it stored.
    server.reset_log()
    server.api_version = "2.0.6"
    result = cli("pull", "spine", "more", "--api-url", server.url)
    assert result.code == 0 and result.err == "", result
    assert server.kinds.count("metadata") == 1 and server.kinds.index("metadata") == 1
    assert server.requests[1] == ("/api/v2/studies/metadata", {})

    server.reset_log()
    assert cli("pull", "--api-url", server.url).code == 0
    assert server.kinds == ["version", "version"]  # both skipped: nothing moved, not even the model


def test_a_field_gone_from_the_model_is_warned_once_and_settled_when_it_comes_back(cli, spine, server, tmp_path):
    assert spine(server).code == 0
    server.api_version, server.metadata = "2.0.6", without(MODEL, "resultsSection")

    unchanged = spine(server)  # the data did not move, but the model did

    assert unchanged.code == 0 and "nothing fetched (2 requests)" in unchanged.out, unchanged
    assert unchanged.err.splitlines() == [
        f"{WARNED}resultsSection left the API's data model of apiVersion 2.0.6 (apiVersion 2.0.5 had it)"]
    server.api_version = "2.0.7"  # still without it: gone since 2.0.6, said then
    assert spine(server).err == ""
    assert stored(tmp_path, "SELECT kind, value, nct_id, api_version, pull_id FROM drift_notes") == [
        ("vanished field", "resultsSection", None, "2.0.6", 2)]
    doctor = cli("doctor", "--api-url", server.url, "--quiet")
    assert doctor.out.splitlines()[0] == (
        "warn drift: 1 field left the data model: resultsSection -- nothing was dropped (`raw` keeps each record as "
        "sent), but trialsync does not read these; a newer trialsync may")

    server.api_version, server.metadata = "2.0.8", MODEL
    assert spine(server).err == ""
    assert stored(tmp_path, "SELECT count(*) FROM drift_notes") == [(0,)]
    assert stored(tmp_path, "SELECT api_version FROM data_models ORDER BY id") == [
        ("2.0.5",), ("2.0.6",), ("2.0.7",), ("2.0.8",)]


def test_a_field_records_carry_is_settled_by_a_model_that_has_it(cli, spine, server, tmp_path):
    us_export = "protocolSection.oversightModule.isUsExport"
    server.metadata = without(MODEL, us_export)
    first = spine(server)
    assert first.err.splitlines() == [  # NCT04056520 is the first of the three served that carry it
        f"{WARNED}NCT04056520 carries {us_export}, a field the API's data model (apiVersion 2.0.5) lacks; "
        "stored as sent (raw keeps it)"]

    server.api_version, server.metadata = "2.0.6", MODEL
    assert spine(server).err == ""
    assert stored(tmp_path, "SELECT count(*) FROM drift_notes") == [(0,)]
    doctor = cli("doctor", "--api-url", server.url)
    assert "ok   drift: the records pulled match the API's data model (apiVersion 2.0.6, fetched " \
        f"{stored(tmp_path, 'SELECT max(fetched_at) FROM data_models')[0][0][:10]})" in doctor.out.splitlines()


def test_a_model_that_cannot_be_fetched_is_said_in_one_line_and_the_pull_completes(cli, spine, server, tmp_path):
    server.inject("metadata", "500", times=5)  # every try of the pull's one request (--retries defaults to 5)

    first = spine(server)

    assert first.code == 0 and "13 studies received (13 new" in first.out, first
    assert first.err.splitlines() == [
        f"{WARNED}could not fetch the API's data model for apiVersion 2.0.5 (GET {server.url}/studies/metadata: "
        "HTTP 500: upstream error (gave up after 5 tries)); records are not checked against a data model until a "
        "pull fetches it (the next pull asks again)"]
    assert server.kinds.count("metadata") == 5 and server.injected.count("500") == 5
    assert stored(tmp_path, "SELECT outcome FROM pulls") == [("complete",)]
    assert stored(tmp_path, "SELECT count(*) FROM data_models") == [(0,)]

    server.reset_log()
    assert spine(server).err == ""  # the data did not move: skipped, but the model is asked for again
    assert server.kinds == ["version", "metadata"]
    assert stored(tmp_path, "SELECT api_version FROM data_models") == [("2.0.5",)]

    # A model that is no tree of fields is not asked again within the pull; the stored one stays in use.
    server.reset_log()
    server.api_version, server.metadata = "2.0.6", [{"title": "Protocol Section"}]
    refresh(server, 25, with_predictions("NCT05489822", "COMPLETED", "2026-11-25"))
    broken = spine(server)
    assert broken.code == 0 and "1 updated" in broken.out, broken
    assert broken.err.splitlines() == [
        f"{WARNED}could not fetch the API's data model for apiVersion 2.0.6 (the API's data model has a field "
        "without a name); records are checked against the data model of apiVersion 2.0.5 until a pull fetches it "
        "(the next pull asks again)",
        f"{WARNED}NCT05489822 carries {PREDICTIONS}, a field the API's data model (apiVersion 2.0.5) lacks; "
        "stored as sent (raw keeps it)"]
    assert server.kinds.count("metadata") == 1


def test_doctor_lists_each_drift_in_one_check(cli, spine, server):
    refresh(server, 24, with_predictions("NCT05489822"), with_status(fixture_record("NCT05305430"), "PAUSED"))
    assert spine(server).code == 0
    server.api_version, server.metadata = "2.0.6", without(MODEL, "resultsSection")
    assert spine(server).code == 0

    result = cli("doctor", "--api-url", server.url, "--format", "json")

    assert result.code == 1
    check = next(c for c in orjson.loads(result.out)["checks"] if c["name"] == "drift")
    assert check == {
        "name": "drift", "state": "warn",
        "message": f"records carry 1 field the API's data model (apiVersion 2.0.6) lacks: {PREDICTIONS} "
                   "(NCT05489822); 1 field left the data model: resultsSection; 1 status outside the 14 known: "
                   "PAUSED (NCT05305430)",
        "advice": "nothing was dropped (`raw` keeps each record as sent), but trialsync does not read these; a newer "
                  "trialsync may"}
