"""Results: the tables derived from each record's resultsSection (AACT's model), the rule for results that are
due, and where people see them (show, list, status-report --by results, export --results, the digest).

Every record with results in the shared set (95: tests/fixtures/results and 9 in tests/fixtures/studies) is
used; records with dates moved around the rule's boundaries are built here from real ones."""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

from conftest import FIXTURES, error_path, fixture_record, import_as, record_containers, record_leaves
from fakeapi import Corpus, FakeApi
from trialsync.results_rule import category
from trialsync.transform import RESULT_COLUMNS, study_rows

TODAY = date.today()


def results_records() -> list[dict]:
    """Every recorded record with results, by NCT id."""
    paths = sorted(FIXTURES.joinpath("results").glob("NCT*.json"))
    paths += [p for p in sorted(FIXTURES.joinpath("studies").glob("NCT*.json")) if b'"resultsSection"' in p.read_bytes()]
    return sorted((orjson.loads(p.read_bytes()) for p in paths), key=lambda r: r["protocolSection"]["identificationModule"]["nctId"])


def record_of(nct_id: str) -> dict:
    for folder in ("results", "studies"):
        path = FIXTURES / folder / f"{nct_id}.json"
        if path.exists():
            return orjson.loads(path.read_bytes())
    raise KeyError(nct_id)


def items_in(record: dict) -> dict[str, int]:
    """How many rows each results table should hold for ``record``, counted from its resultsSection by hand."""
    results = record.get("resultsSection", {})
    flow = results.get("participantFlowModule", {})
    baseline = results.get("baselineCharacteristicsModule", {})
    outcomes = results.get("outcomeMeasuresModule", {}).get("outcomeMeasures", [])
    events = results.get("adverseEventsModule", {})

    def measurements(measure):
        return sum(len(cat.get("measurements", [])) for cls in measure.get("classes", []) for cat in cls.get("categories", []))

    totals = 0
    for group in events.get("eventGroups", []):
        for kind in ("serious", "other", "deaths"):
            totals += group.get(f"{kind}NumAffected") is not None or group.get(f"{kind}NumAtRisk") is not None
    return {
        "result_groups": len(flow.get("groups", [])) + len(baseline.get("groups", []))
        + sum(len(o.get("groups", [])) for o in outcomes) + len(events.get("eventGroups", [])),
        "milestones": sum(len(m.get("achievements", [])) for p in flow.get("periods", []) for m in p.get("milestones", [])),
        "drop_withdrawals": sum(len(d.get("reasons", [])) for p in flow.get("periods", [])
                                for d in p.get("dropWithdraws", [])),
        "baseline_counts": sum(len(d.get("counts", [])) for d in baseline.get("denoms", [])),
        "baseline_measurements": sum(measurements(m) for m in baseline.get("measures", [])),
        "outcomes": len(outcomes),
        "outcome_counts": sum(len(d.get("counts", [])) for o in outcomes for d in o.get("denoms", [])),
        "outcome_measurements": sum(measurements(o) for o in outcomes),
        "outcome_analyses": sum(len(o.get("analyses", [])) for o in outcomes),
        "reported_events": sum(len(e.get("stats", [])) for kind in ("seriousEvents", "otherEvents")
                               for e in events.get(kind, [])),
        "reported_event_totals": totals,
        "result_contacts": int(results.get("moreInfoModule", {}).get("pointOfContact") is not None),
    }


@pytest.fixture(scope="module")
def results_db(tmp_path_factory) -> Path:
    """Every record with results (and every other fixture record), imported into one database."""
    from trialsync.store import open_for_writing
    from trialsync.sync.files import import_records

    path = tmp_path_factory.mktemp("results") / "results.db"
    records = results_records() + [r for r in (orjson.loads(p.read_bytes()) for p in
                                               sorted(FIXTURES.joinpath("studies").glob("NCT*.json")))
                                   if "resultsSection" not in r] + edge_records()
    with open_for_writing(path) as conn:
        import_records(conn, records, "all", "fixtures")
    return path


def rows_of(path: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_every_record_with_results_gives_one_row_per_item_of_each_results_module(results_db):
    records = results_records()
    assert len(records) == 95
    for table in RESULT_COLUMNS:
        stored = dict(rows_of(results_db, f"SELECT nct_id, count(*) FROM {table} GROUP BY nct_id"))
        for record in records:
            nct_id = record["protocolSection"]["identificationModule"]["nctId"]
            assert stored.get(nct_id, 0) == items_in(record)[table], (nct_id, table)
        # nothing for studies without results
        assert set(stored) <= {r["protocolSection"]["identificationModule"]["nctId"] for r in records}, table
    assert rows_of(results_db, "SELECT count(*) FROM reported_events")[0][0] == 13977
    assert rows_of(results_db, "SELECT count(*) FROM outcome_measurements")[0][0] == 6110


def test_values_follow_aacts_mapping_of_the_same_fields(results_db):
    """NCT02210780 (dupilumab and vaccine responses), column by column as AACT maps the API's fields."""
    def one(sql):
        found = rows_of(results_db, sql + " AND nct_id = 'NCT02210780'")
        assert len(found) == 1, sql
        return found[0]

    record = record_of("NCT02210780")["resultsSection"]
    first = record["outcomeMeasuresModule"]["outcomeMeasures"][0]
    assert one("SELECT outcome_type, title, time_frame, units, param_type, population, reporting_status FROM outcomes "
               "WHERE seq = 0") == (
        "PRIMARY", first["title"], "Week 16", "Percentage of participants", "NUMBER", first["populationDescription"],
        "POSTED")
    assert one("SELECT ctgov_group_code, param_value, param_value_num, classification, category "
               "FROM outcome_measurements WHERE outcome_seq = 0 AND seq = 0") == ("OG000", "83.7", 83.7, None, None)
    assert one("SELECT count FROM outcome_counts WHERE outcome_seq = 0 AND ctgov_group_code = 'OG000'") == (92,)
    assert one("SELECT result_type, title FROM result_groups WHERE outcome_seq = 0 AND ctgov_group_code = 'OG001'") == (
        "Outcome", "Dupilumab 300 mg qw")
    # AACT splits a p-value as sent into its modifier and its number, and keeps the method
    iga = one("SELECT seq FROM outcomes WHERE title LIKE 'Percentage of Participants Achieving an Investigator%'")[0]
    assert one(f"SELECT p_value_raw, p_value_modifier, p_value, method, groups FROM outcome_analyses "
               f"WHERE outcome_seq = {iga}") == ("<0.0001", "<", 0.0001, "Cochran-Mantel-Haenszel", "OG000,OG001")
    assert one("SELECT period, count FROM milestones WHERE title = 'STARTED' AND ctgov_group_code = 'FG000'") == (
        "Overall Study", 97)
    assert one("SELECT count FROM drop_withdrawals WHERE reason = 'Adverse Event' AND ctgov_group_code = 'FG001'") == (5,)
    assert one("SELECT classification, subjects_affected, subjects_at_risk FROM reported_event_totals "
               "WHERE event_type = 'serious' AND ctgov_group_code = 'EG001'") == ("Total, serious adverse events", 3, 97)
    contact = record["moreInfoModule"]["pointOfContact"]
    assert one("SELECT organization, name, email FROM result_contacts WHERE seq = 0") == (
        contact["organization"], contact["title"], contact.get("email"))
    event = record["adverseEventsModule"]["seriousEvents"][0]
    assert one("SELECT adverse_event_term, organ_system, vocab, assessment, subjects_affected, subjects_at_risk "
               "FROM reported_events WHERE seq = 0") == (
        event["term"], event["organSystem"], event.get("sourceVocabulary"), event["assessmentType"],
        event["stats"][0]["numAffected"], event["stats"][0]["numAtRisk"])


def expected_results(record: dict) -> dict[str, list[tuple]]:
    """Each results table's rows for ``record``, read field by field from its resultsSection as AACT maps the
    fields (written out here apart from the transform, so a field read under a wrong name shows)."""
    from trialsync.transform.results import as_count, as_number, p_value_parts

    results = record.get("resultsSection", {})
    flow = results.get("participantFlowModule", {})
    baseline = results.get("baselineCharacteristicsModule", {})
    outcomes = results.get("outcomeMeasuresModule", {}).get("outcomeMeasures", [])
    events = results.get("adverseEventsModule", {})
    tables: dict[str, list[tuple]] = {name: [] for name in RESULT_COLUMNS}

    def group(kind, seq, g):
        return (kind, seq, g.get("id"), g.get("title"), g.get("description"))

    def measurements(measure):
        for cls in measure.get("classes", []):
            for cat in cls.get("categories", []):
                for m in cat.get("measurements", []):
                    yield cls.get("title"), cat.get("title"), m

    tables["result_groups"] += [group("Participant Flow", None, g) for g in flow.get("groups", [])]
    for period in flow.get("periods", []):
        for milestone in period.get("milestones", []):
            tables["milestones"] += [(period.get("title"), milestone.get("type"), a.get("groupId"),
                                      as_count(a.get("numSubjects")), a.get("comment"), milestone.get("comment"),
                                      a.get("numUnits")) for a in milestone.get("achievements", [])]
        for drop in period.get("dropWithdraws", []):
            tables["drop_withdrawals"] += [(period.get("title"), drop.get("type"), r.get("groupId"),
                                            as_count(r.get("numSubjects")), r.get("comment"), drop.get("comment"),
                                            r.get("numUnits")) for r in drop.get("reasons", [])]
    tables["result_groups"] += [group("Baseline", None, g) for g in baseline.get("groups", [])]
    for denom in baseline.get("denoms", []):
        tables["baseline_counts"] += [(c.get("groupId"), denom.get("units"), "overall", as_count(c.get("value")))
                                      for c in denom.get("counts", [])]
    for seq, measure in enumerate(baseline.get("measures", [])):
        tables["baseline_measurements"] += [
            (seq, m.get("groupId"), cls, cat, measure.get("title"), measure.get("description"),
             measure.get("unitOfMeasure"), measure.get("paramType"), m.get("value"), as_number(m.get("value")),
             measure.get("dispersionType"), m.get("spread"), as_number(m.get("spread")), as_number(m.get("lowerLimit")),
             as_number(m.get("upperLimit")), m.get("comment"), measure.get("populationDescription"))
            for cls, cat, m in measurements(measure)]
    for seq, o in enumerate(outcomes):
        tables["outcomes"].append(tuple(o.get(field) for field in (
            "type", "title", "description", "timeFrame", "populationDescription", "anticipatedPostingDate",
            "unitOfMeasure", "typeUnitsAnalyzed", "dispersionType", "paramType", "reportingStatus")))
        tables["result_groups"] += [group("Outcome", seq, g) for g in o.get("groups", [])]
        for denom in o.get("denoms", []):
            tables["outcome_counts"] += [(seq, c.get("groupId"), "Measure", denom.get("units"), as_count(c.get("value")))
                                         for c in denom.get("counts", [])]
        tables["outcome_measurements"] += [
            (seq, m.get("groupId"), cls, cat, m.get("value"), as_number(m.get("value")), m.get("spread"),
             as_number(m.get("spread")), as_number(m.get("lowerLimit")), as_number(m.get("upperLimit")), m.get("comment"))
            for cls, cat, m in measurements(o)]
        for a in o.get("analyses", []):
            tables["outcome_analyses"].append((
                seq, ",".join(a["groupIds"]) if a.get("groupIds") else None, a.get("nonInferiorityType"),
                a.get("nonInferiorityComment"), a.get("paramType"), a.get("paramValue"), a.get("dispersionType"),
                a.get("dispersionValue"), *p_value_parts(a.get("pValue")), a.get("pValue"), a.get("pValueComment"),
                a.get("ciNumSides"), as_number(a.get("ciPctValue")), as_number(a.get("ciLowerLimit")),
                as_number(a.get("ciUpperLimit")), a.get("ciUpperLimitComment"), a.get("statisticalMethod"),
                a.get("statisticalComment"), a.get("estimateComment"), a.get("groupDescription"),
                a.get("otherAnalysisDescription")))
    tables["result_groups"] += [group("Reported Event", None, g) for g in events.get("eventGroups", [])]
    for kind, key in (("serious", "seriousEvents"), ("other", "otherEvents")):
        for e in events.get(key, []):
            tables["reported_events"] += [
                (kind, s.get("groupId"), e.get("organSystem"), e.get("term"), e.get("sourceVocabulary"),
                 e.get("assessmentType"), s.get("numEvents"), s.get("numAffected"), s.get("numAtRisk"))
                for s in e.get("stats", [])]
    for g in events.get("eventGroups", []):
        for kind, words in (("serious", "Total, serious adverse events"), ("other", "Total, other adverse events"),
                            ("deaths", "Total, all-cause mortality")):
            if g.get(f"{kind}NumAffected") is not None or g.get(f"{kind}NumAtRisk") is not None:
                tables["reported_event_totals"].append(
                    (g.get("id"), kind, words, g.get(f"{kind}NumAffected"), g.get(f"{kind}NumAtRisk")))
    contact = results.get("moreInfoModule", {}).get("pointOfContact")
    if contact is not None:
        tables["result_contacts"].append(tuple(contact.get(field) for field in (
            "organization", "title", "phone", "phoneExt", "email")))
    return tables


def with_every_results_field(record: dict) -> dict:
    """A copy of a real record carrying the results fields no recorded record has, each with its own text."""
    derived = copy.deepcopy(record)
    results = derived["resultsSection"]
    outcome = results["outcomeMeasuresModule"]["outcomeMeasures"][0]
    outcome["anticipatedPostingDate"] = "2027-03"
    outcome["typeUnitsAnalyzed"] = "Eyes"
    analysis = next(o for o in results["outcomeMeasuresModule"]["outcomeMeasures"] if o.get("analyses"))["analyses"][0]
    analysis["ciUpperLimitComment"] = "Not estimable"
    analysis["otherAnalysisDescription"] = "Post hoc"
    analysis["nonInferiorityComment"] = "Margin of 10 points"
    analysis["estimateComment"] = "Difference in means"
    group = results["adverseEventsModule"]["eventGroups"][0]
    group["deathsNumAffected"], group["deathsNumAtRisk"] = 1, 97
    period = results["participantFlowModule"]["periods"][0]
    period["milestones"][0]["achievements"][0]["numUnits"] = "194"
    drop = period["dropWithdraws"][0]
    drop["comment"] = "Withdrawn before the first dose"
    drop["reasons"][0].update(comment="Moved away", numUnits="2")
    # a second baseline denominator, counted in other units (two eyes a participant)
    denoms = results["baselineCharacteristicsModule"]["denoms"]
    denoms.append({"units": "Eyes", "counts": [{"groupId": c["groupId"], "value": str(2 * int(c["value"]))}
                                               for c in denoms[0]["counts"]]})
    return derived


def test_every_results_column_holds_its_own_field_in_every_record_with_results():
    """Every column of every results table, on all 95 recorded records and on a copy of one that carries the
    fields none of them has, against the fields read one by one apart from the transform."""
    records = results_records() + [with_every_results_field(record_of("NCT02210780"))]
    filled: dict[str, set[str]] = {table: set() for table in RESULT_COLUMNS}
    for record in records:
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        made, expected = study_rows(record).results, expected_results(record)
        for table, columns in RESULT_COLUMNS.items():
            assert made[table] == expected[table], (nct_id, table)
            filled[table] |= {c for row in expected[table] for c, v in zip(columns, row) if v is not None}
    # each column was held to a value at least once, so no column passes by being empty everywhere
    empty = {table: set(columns) - filled[table] for table, columns in RESULT_COLUMNS.items()}
    assert {table: columns for table, columns in empty.items() if columns} == {}


def test_each_results_field_of_a_wrong_type_is_refused_under_its_own_path():
    """Every scalar, object and list of the resultsSection of the record carrying all of them, each in turn given
    a wrong type as test_transform does for the rest of a record: the record is refused naming that field's path
    and the type it held; only the fields the results tables do not take pass."""
    from trialsync.errors import RecordError

    record = with_every_results_field(record_of("NCT02210780"))
    section = {"resultsSection": record["resultsSection"]}
    wrong = [(path, ("seven", "a string") if not isinstance(value, str) else (7, "an integer"))
             for path, value in record_leaves(section)]
    wrong += [(path, ("seven", "a string")) for path in record_containers(section)]
    not_taken = set()
    for path, (value, held) in wrong:
        broken = copy.deepcopy(record)
        parent = broken
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value
        try:
            study_rows(broken)
        except RecordError as error:
            assert str(error).startswith(f"NCT02210780: {error_path(path)} is {held}, where the API's spec has "), (
                path, str(error))
        else:
            not_taken.add(error_path(path))
    # the fields the results tables leave to ``raw`` (a class's own denominators among them)
    base, outcome = "resultsSection.baselineCharacteristicsModule", "resultsSection.outcomeMeasuresModule.outcomeMeasures"
    agreement = "resultsSection.moreInfoModule.certainAgreement"
    assert not_taken == {
        "resultsSection.participantFlowModule.recruitmentDetails",
        "resultsSection.participantFlowModule.preAssignmentDetails",
        f"{base}.populationDescription",
        *(f"{measure}.classes.{field}" for measure in (f"{base}.measures", outcome)
          for field in ("denoms", "denoms[0]", "denoms.units", "denoms.counts", "denoms.counts[0]",
                        "denoms.counts.groupId", "denoms.counts.value")),
        "resultsSection.adverseEventsModule.frequencyThreshold",
        "resultsSection.adverseEventsModule.timeFrame",
        "resultsSection.adverseEventsModule.description",
        agreement, *(f"{agreement}.{field}" for field in (
            "piSponsorEmployee", "restrictionType", "restrictiveAgreement", "otherDetails")),
    }
    assert len(wrong) == 181


def test_numbers_sent_as_text_are_numbers_only_when_plain_decimals():
    from trialsync.transform.results import as_count, as_number, p_value_parts

    assert [as_number(t) for t in ("12", "-.90", ".05", "30.", "NA", "26,300", "", "-", ".", "1.2.3", "5-", None)] == [
        12.0, -0.9, 0.05, 30.0, None, None, None, None, None, None, None, None]
    assert as_number("9" * 400) is None  # past a double's range
    assert [as_count(t) for t in ("0", "97", "007", "1" * 19, "-1", "1.0", " 1")] == [0, 97, 7, None, None, None, None]
    assert [p_value_parts(t) for t in ("<0.001", "< 0.0001", "=0.247", "0.575", ">0.1", "NS", None)] == [
        ("<", 0.001), ("<", 0.0001), ("=", 0.247), (None, 0.575), (">", 0.1), ("NS", None), (None, None)]


def test_a_results_field_of_the_wrong_type_is_refused_under_its_own_path():
    from trialsync.errors import RecordError

    record = record_of("NCT02210780")
    record["resultsSection"]["adverseEventsModule"]["seriousEvents"][0]["stats"][0]["numAffected"] = "3"
    with pytest.raises(RecordError, match=r"NCT02210780: resultsSection\.adverseEventsModule\.seriousEvents\.stats\."
                                          r"numAffected is a string, where the API's spec has an integer"):
        study_rows(record)
    record = record_of("NCT02210780")
    record["resultsSection"]["outcomeMeasuresModule"]["outcomeMeasures"] = {"0": "x"}
    with pytest.raises(RecordError, match=r"resultsSection\.outcomeMeasuresModule\.outcomeMeasures is an object"):
        study_rows(record)


def test_migration_7_derives_every_record_as_the_live_transform_does(results_db, tmp_path):
    """The frozen SQL of the upgrade against the live transform, on every record with results and every other
    fixture record: the database is taken back to schema 6 (results tables, columns and indexes removed) and
    opened, which upgrades it again."""
    from trialsync.store import open_for_writing
    from trialsync.sync.files import import_records

    path = tmp_path / "again.db"
    with sqlite3.connect(results_db) as source, sqlite3.connect(path) as copy_:
        source.backup(copy_)
    # Two fields no recorded record carries, set on a copy of a real one, so the upgrade is held to them too
    derived = record_of("NCT02210780")
    derived["protocolSection"]["identificationModule"]["nctId"] = "NCT98000001"
    outcomes = derived["resultsSection"]["outcomeMeasuresModule"]["outcomeMeasures"]
    outcomes[0]["typeUnitsAnalyzed"] = "Eyes"
    next(o for o in outcomes if o.get("analyses"))["analyses"][0]["ciUpperLimitComment"] = "Not estimable"
    with open_for_writing(path) as conn:
        import_records(conn, [derived], "all", "fixtures")
    assert rows_of(path, "SELECT units_analyzed FROM outcomes WHERE nct_id = 'NCT98000001' AND seq = 0") == [("Eyes",)]
    assert rows_of(path, "SELECT ci_upper_limit_na_comment FROM outcome_analyses WHERE nct_id = 'NCT98000001' "
                         "AND ci_upper_limit_na_comment IS NOT NULL") == [("Not estimable",)]
    tables = {table: rows_of(path, f"SELECT * FROM {table} ORDER BY nct_id, seq") for table in RESULT_COLUMNS}
    state = rows_of(path, "SELECT nct_id, results_state, results_due_date, fdaaa801_violation, limitations_and_caveats "
                          "FROM studies ORDER BY nct_id")
    assert {row[1] for row in state} == {"posted", "under review", "delayed by certification", "applicable",
                                          "not applicable"}
    conn = sqlite3.connect(path, isolation_level=None)
    for table in [*RESULT_COLUMNS, "results_due_noted"]:
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DROP INDEX studies_results")
    conn.execute("DROP INDEX studies_facts")
    conn.execute("CREATE INDEX studies_facts ON studies (nct_id, overall_status, study_type, lead_sponsor_class, "
                 "phases, start_date_sort, lead_sponsor)")
    for column in ("limitations_and_caveats", "results_state", "results_due_date", "fdaaa801_violation"):
        conn.execute(f"ALTER TABLE studies DROP COLUMN {column}")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_results'")
    conn.execute("PRAGMA user_version = 6")
    conn.close()
    with open_for_writing(path):
        pass
    for table in RESULT_COLUMNS:
        assert rows_of(path, f"SELECT * FROM {table} ORDER BY nct_id, seq") == tables[table], table
    assert rows_of(path, "SELECT nct_id, results_state, results_due_date, fdaaa801_violation, limitations_and_caveats "
                         "FROM studies ORDER BY nct_id") == state
    assert rows_of(path, "PRAGMA foreign_key_check") == []


# -- the rule ------------------------------------------------------------------------------------------------

def applicable(pcd: str, kind: str = "ACTUAL") -> dict:
    """NCT04970355 (phase 2, an FDA-regulated drug, exported from the US, no results) with its primary
    completion moved to ``pcd``."""
    record = fixture_record("NCT04970355")
    record["protocolSection"]["statusModule"]["primaryCompletionDateStruct"] = {"date": pcd, "type": kind}
    return record


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def category_of(record: dict) -> str:
    rows = study_rows(record)
    return category(rows.value("results_state"), rows.value("results_due_date"), TODAY.isoformat())


def variants() -> dict[str, tuple[dict, str]]:
    """Records built from real ones around each edge of the rule, with the category each must get today."""
    found: dict[str, tuple[dict, str]] = {}
    for days, expected in ((394, "not yet due"), (395, "not yet due"), (396, "due")):
        found[f"actual {days} days ago"] = (applicable(days_ago(days)), expected)
    found["estimated 900 days ago"] = (applicable(days_ago(900), "ESTIMATED"), "not yet due")
    record = applicable(days_ago(900))
    record["derivedSection"]["miscInfoModule"]["submissionTracking"] = {
        "submissionInfos": [{"releaseDate": days_ago(10)}]}
    found["submitted, under review"] = (record, "under review")
    record = applicable(days_ago(900))
    record["derivedSection"]["miscInfoModule"]["submissionTracking"] = {
        "submissionInfos": [{"releaseDate": days_ago(60), "resetDate": days_ago(30)}]}
    found["submitted and returned"] = (record, "due")
    record = applicable(days_ago(900))
    record["derivedSection"]["miscInfoModule"]["submissionTracking"] = {"submissionInfos": [
        {"releaseDate": days_ago(10)}, {"releaseDate": days_ago(90), "resetDate": days_ago(60)}]}
    found["the newest submission listed first, under review"] = (record, "under review")
    record = applicable(days_ago(900))
    record["protocolSection"]["statusModule"]["dispFirstSubmitDate"] = days_ago(500)
    found["certified"] = (record, "delayed by certification")
    record = applicable(days_ago(900))
    record["protocolSection"]["designModule"]["phases"] = ["PHASE1"]
    found["phase 1 only"] = (record, "not applicable")
    record = applicable(days_ago(900))
    record["protocolSection"]["designModule"]["phases"] = ["PHASE1", "PHASE2"]
    found["phase 1 and 2"] = (record, "due")
    record = applicable(days_ago(900))
    record["protocolSection"]["oversightModule"]["isUsExport"] = False
    found["no US site, not exported"] = (record, "not applicable")
    record = applicable(days_ago(900))
    record["protocolSection"]["oversightModule"]["isFdaRegulatedDrug"] = False
    found["not FDA-regulated"] = (record, "not applicable")
    found["before the Final Rule"] = (applicable("2017-01-17"), "not applicable")
    found["on the Final Rule's day"] = (applicable("2017-01-18"), "due")
    record = applicable(days_ago(900))
    record["hasResults"] = True
    record["protocolSection"]["statusModule"]["resultsFirstPostDateStruct"] = {"date": days_ago(30), "type": "ACTUAL"}
    found["results posted"] = (record, "posted")
    record = applicable(days_ago(900))
    record["protocolSection"]["designModule"]["studyType"] = "OBSERVATIONAL"
    found["observational"] = (record, "not applicable")
    return found


def test_the_rule_around_each_of_its_edges():
    for name, (record, expected) in variants().items():
        assert category_of(record) == expected, name


def test_a_month_only_completion_counts_as_the_months_last_day():
    from trialsync.results_rule import period_end

    assert period_end("2024-02") == date(2024, 2, 29) and period_end("2023-12") == date(2023, 12, 31)
    assert period_end("2024-13") is None and period_end("2024-02-30") is None and period_end("2024") is None
    # a month that ended 396 days ago is due; one whose last day was 395 days ago is not
    end = TODAY.replace(day=1) - timedelta(days=1)  # the last day of last month
    age = (TODAY - end).days
    month = end.strftime("%Y-%m")
    assert category(*_state(applicable(month)), (end + timedelta(days=396)).isoformat()) == "due"
    assert category(*_state(applicable(month)), (end + timedelta(days=395)).isoformat()) == "not yet due"
    assert age >= 1


def _state(record: dict) -> tuple:
    rows = study_rows(record)
    return rows.value("results_state"), rows.value("results_due_date")


def edge_records(with_expected: bool = False) -> list:
    """The records of ``variants``, each under an NCT id of the reserved range (no real study has one)."""
    records = []
    for index, (record, expected) in enumerate(variants().values()):
        record = copy.deepcopy(record)
        record["protocolSection"]["identificationModule"]["nctId"] = f"NCT9{index:07d}"
        records.append((record, expected) if with_expected else record)
    return records


def test_list_results_due_and_the_breakdown_agree_with_the_rule(cli, tmp_path):
    records = edge_records(with_expected=True)
    import_as(cli, tmp_path, [r for r, _ in records], "edges")
    due = {r["protocolSection"]["identificationModule"]["nctId"] for r, expected in records if expected == "due"}
    listed = json.loads(cli("list", "edges", "--results-due", "-f", "json").out)
    assert {row["nct_id"] for row in listed} == due
    for row in listed:
        assert row["days_overdue"] == (TODAY - date.fromisoformat(row["results_due_date"])).days
        assert row["days_overdue"] >= 31 and row["fdaaa801_violation"] is None
    assert [row["results_due_date"] for row in listed] == sorted(row["results_due_date"] for row in listed)
    report = json.loads(cli("status-report", "edges", "--by", "results", "-f", "json").out)
    counts = {row["value"]: row["total"] for row in report["rows"]}
    expected_counts: dict[str, int] = {}
    for _, expected in records:
        expected_counts[expected] = expected_counts.get(expected, 0) + 1
    assert counts == expected_counts
    assert [row["value"] for row in report["rows"]] == [c for c in ("posted", "under review", "delayed by certification",
                                                                     "due", "not yet due", "not applicable")
                                                        if c in counts]
    table = cli("list", "edges", "--results-due")
    assert table.code == 0 and f"{len(due)} studies of edges owing overdue results" in table.out
    header = next(line for line in table.out.splitlines() if line.lstrip().startswith("NCT ID"))
    assert header.split()[:3] == ["NCT", "ID", "Overdue"], header
    for row in listed:
        line = next(line for line in table.out.splitlines() if line.lstrip().startswith(row["nct_id"]))
        assert line.split()[1:3] == [str(row["days_overdue"]), "d"], line
    assert cli("list", "edges", "--sort", "overdue").code == 2


def test_the_registrys_own_violation_flag_is_shown(cli, tmp_path):
    record = applicable(days_ago(900))
    record["protocolSection"]["oversightModule"]["fdaaa801Violation"] = True
    import_as(cli, tmp_path, [record], "flagged")
    listed = json.loads(cli("list", "flagged", "--results-due", "-f", "json").out)
    assert [(row["nct_id"], row["fdaaa801_violation"]) for row in listed] == [("NCT04970355", True)]
    shown = cli("show", "NCT04970355")
    assert "the registry flags an FDAAA 801 violation" in shown.out
    assert f"due since {(TODAY - timedelta(days=900 - 365)).isoformat()}" in shown.out


# -- where people see results ------------------------------------------------------------------------------

def test_show_prints_the_primary_outcomes_with_their_values_and_results_prints_every_outcome(cli, tmp_path):
    import_as(cli, tmp_path, [record_of("NCT02210780")], "dupilumab")
    short = cli("show", "NCT02210780")
    assert short.code == 0, short
    assert "Placebo qw: 97 started, 92 completed" in short.out
    assert "Placebo qw (n=92): 83.7 Percentage of participants" in short.out
    assert "Dupilumab 300 mg qw: 3 of 97 (3.1%)" in short.out  # serious adverse events
    assert short.out.count("outcome:") == 1 and "10 more outcome measures" in short.out
    full = cli("show", "NCT02210780", "--results")
    assert full.out.count("outcome:") == 11 and "Analysis: p <0.0001; Cochran-Mantel-Haenszel" in full.out
    assert "Other adverse events:" in full.out


def test_list_results_posted_since(cli, tmp_path):
    records = [record_of(n) for n in ("NCT02210780", "NCT04326231", "NCT00329836")]
    import_as(cli, tmp_path, records, "posted")
    posted = {r["protocolSection"]["identificationModule"]["nctId"]:
              r["protocolSection"]["statusModule"]["resultsFirstPostDateStruct"]["date"] for r in records}
    cutoff = sorted(posted.values())[1]
    listed = json.loads(cli("list", "posted", "--results-posted-since", cutoff, "-f", "json").out)
    assert {row["nct_id"] for row in listed} == {n for n, d in posted.items() if d >= cutoff}
    assert cli("list", "posted", "--results-posted-since", "yesterday").code == 2


def test_export_results_writes_one_csv_file_per_table_or_one_json_document(cli, tmp_path):
    records = [record_of(n) for n in ("NCT02210780", "NCT04326231")]
    import_as(cli, tmp_path, records, "exported")
    expected = {table: sum(items_in(r)[table] for r in records) for table in RESULT_COLUMNS}
    folder = tmp_path / "results"
    done = cli("export", "exported", "--results", "-o", str(folder))
    assert done.code == 0, done
    import csv

    for table, count in expected.items():
        with open(folder / f"{table}.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["nct_id", "seq", *RESULT_COLUMNS[table]]
        assert len(rows) - 1 == count, table
    document = json.loads(cli("export", "exported", "--results", "-f", "json").out)
    assert {table: len(rows) for table, rows in document.items()} == expected
    lines = cli("export", "exported", "--results", "-f", "nl").out.splitlines()
    assert len(lines) == sum(expected.values()) and json.loads(lines[0])["table"] == "result_groups"
    # refused: CSV without a folder; a folder with files there without --force; the database itself
    assert cli("export", "exported", "--results").code == 2
    assert cli("export", "exported", "--results", "-o", str(folder)).code == 2
    # all the files or none: one file in the way (here a folder of that name) and nothing else is written
    other = tmp_path / "other"
    (other / "outcomes.csv").mkdir(parents=True)
    refused = cli("export", "exported", "--results", "-o", str(other), "--force")
    assert refused.code == 2 and "outcomes.csv is a directory" in refused.err
    assert sorted(p.name for p in other.iterdir()) == ["outcomes.csv"]
    assert cli("export", "exported", "--results", "-o", str(folder), "--force").code == 0
    db = tmp_path / "cli.db"
    before = db.read_bytes()
    assert cli("export", "exported", "--results", "-f", "json", "-o", str(db), "--force").code == 2
    assert db.read_bytes() == before
    assert cli("export", "exported", "--results", "--raw").code == 2


def test_the_digest_says_results_became_due_and_were_posted_once_each(cli):
    record = applicable(days_ago(900), "ESTIMATED")
    status = record["protocolSection"]["statusModule"]
    status["lastUpdatePostDateStruct"]["date"] = "2026-11-01"
    with FakeApi(Corpus([record]), data_timestamp="2026-11-02T09:00:00") as server:
        assert cli("topics", "add", "owed", "--condition", "anything").code == 0
        first = cli("pull", "owed", "--api-url", server.url, "--quiet")
        assert first.code == 0 and "results due" not in first.out
        # the primary completion becomes actual, 900 days ago: results are due
        later = copy.deepcopy(record)
        later["protocolSection"]["statusModule"]["primaryCompletionDateStruct"]["type"] = "ACTUAL"
        later["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-11-03"
        server.corpus.put(later)
        server.data_timestamp = "2026-11-03T09:00:00"
        second = cli("pull", "owed", "--api-url", server.url, "--quiet")
        due_since = (TODAY - timedelta(days=900 - 365)).isoformat()
        assert second.out.count(f"NCT04970355 results due since {due_since}") == 1, second.out
        assert "Results:" in second.out
        # its primary completion moves: the results were due already, so that is no news again
        moved = copy.deepcopy(later)
        moved["protocolSection"]["statusModule"]["primaryCompletionDateStruct"]["date"] = days_ago(800)
        moved["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-11-04"
        server.corpus.put(moved)
        server.data_timestamp = "2026-11-04T09:00:00"
        third = cli("pull", "owed", "--api-url", server.url, "--quiet")
        assert "results due" not in third.out and "primary completion date" in third.out
        later = moved
        # results are posted
        posted = copy.deepcopy(later)
        posted["hasResults"] = True
        posted["protocolSection"]["statusModule"]["resultsFirstPostDateStruct"] = {"date": "2026-11-05", "type": "ACTUAL"}
        posted["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-11-05"
        assert posted["protocolSection"]["statusModule"]["primaryCompletionDateStruct"]["date"] == days_ago(800)
        server.corpus.put(posted)
        server.data_timestamp = "2026-11-05T09:00:00"
        fourth = cli("pull", "owed", "--api-url", server.url, "--quiet")
        assert fourth.out.count("NCT04970355 results posted on 2026-11-05") == 1, fourth.out
        server.data_timestamp = "2026-11-06T09:00:00"
        assert "results" not in cli("pull", "owed", "--api-url", server.url, "--quiet").out
    changes = json.loads(cli("changes", "owed", "-f", "json").out)
    assert [c["field"] for c in changes].count("results_due") == 1


def test_a_study_already_due_when_first_stored_is_not_called_newly_due(cli, tmp_path):
    import_as(cli, tmp_path, [applicable(days_ago(900))], "old")
    assert json.loads(cli("changes", "-f", "json").out) == []
    listed = json.loads(cli("list", "old", "--results-due", "-f", "json").out)
    assert [row["nct_id"] for row in listed] == ["NCT04970355"]


def test_results_text_breaking_lines_or_turning_text_around_keeps_shows_indentation_and_is_shown_visibly(cli, tmp_path):
    record = record_of("NCT02210780")
    record["resultsSection"]["moreInfoModule"]["limitationsAndCaveats"] = {"description": "Line one\nLine two"}
    outcome = record["resultsSection"]["outcomeMeasuresModule"]["outcomeMeasures"][0]
    outcome["title"] = "Tetanus \u202ereversed\u202c \x1b[2J response\r\nat week 16"
    import_as(cli, tmp_path, [record], "odd-text")
    shown = cli("show", "NCT02210780").out
    assert "\n    Line one Line two\n" in shown
    assert "  Primary outcome: Tetanus \\u202ereversed\\u202c \\x1b[2J response at week 16" in shown
    assert "\x1b" not in shown and "\u202e" not in shown and "\r" not in shown


def test_what_show_says_of_results_owed():
    from trialsync.render.results import obligation_line

    assert obligation_line({"results_category": "not yet due", "results_due_date": "2026-11-04"}) == (
        "not yet due, due 2026-11-04 (counted overdue from 2026-12-05, after 30 days of grace)")
    assert obligation_line({"results_category": "due", "results_due_date": "2025-01-01", "days_overdue": 700,
                            "fdaaa801_violation": True}) == (
        "due since 2025-01-01 (700 days overdue) by trialsync's reading of FDAAA 801, not a legal determination; "
        "the registry flags an FDAAA 801 violation")
    assert obligation_line({"results_category": "posted"}) is None
    assert obligation_line({"results_category": "not applicable"}) is None
    assert obligation_line({"results_category": "under review"}) == "under review"
