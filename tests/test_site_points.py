"""Searches by distance read the sites at points in the cells around a place (``site_points``, keyed by the
study's rowid): the points follow a study's sites through every change, and the answers equal an exhaustive
measurement of every site. Expected values are computed here from the real record."""

from __future__ import annotations

import copy
import math

from conftest import fixture_record
from trialsync.reports.studies import Place, StudyQuery, list_studies
from trialsync.sync.files import import_records
from trialsync.transform import site_points, study_rows

MANY_SITES = "NCT03180268"  # 208 sites in the United States, at 174 distinct points


def sites(record: dict) -> list[dict]:
    return record["protocolSection"]["contactsLocationsModule"]["locations"]


def km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def nearest(record: dict, lat: float, lon: float) -> float | None:
    found = [km(lat, lon, s["geoPoint"]["lat"], s["geoPoint"]["lon"]) for s in sites(record) if s.get("geoPoint")]
    return min(found) if found else None


def test_each_distinct_point_is_kept_once_with_its_first_site_and_its_cell():
    record = fixture_record(MANY_SITES)
    first: dict = {}
    for seq, site in enumerate(sites(record)):
        if site.get("geoPoint"):
            first.setdefault((site["geoPoint"]["lat"], site["geoPoint"]["lon"]), seq)
    expected = sorted(((math.floor(lat) + 90) * 360 + math.floor(lon) + 180, seq) for (lat, lon), seq in first.items())
    points = study_rows(record).site_points
    assert points == expected
    assert len(points) == 174 < len(sites(record)) == 208
    assert site_points([]) == []


def _stored_points(db, nct_id: str) -> list[tuple]:
    return db.execute("SELECT cell, seq FROM site_points WHERE study = (SELECT rowid FROM studies WHERE nct_id = ?) "
                      "ORDER BY cell, seq", [nct_id]).fetchall()


def test_a_study_whose_sites_change_is_found_near_its_new_sites_only(db):
    record = fixture_record(MANY_SITES)
    import_records(db, [record], "watch", source="one.json")
    here = sites(record)[0]["geoPoint"]
    place = Place(here["lat"], here["lon"], "the first site")

    def found(within: float) -> list[tuple]:
        return [(row["nct_id"], row["distance_km"]) for row in
                list_studies(db, "watch", StudyQuery(near=place, within_km=within))]

    assert found(5) == [(MANY_SITES, 0.0)]
    assert _stored_points(db, MANY_SITES) == study_rows(record).site_points

    # A later state of the record: every site within 100 km of the first one closed down and was removed.
    later = copy.deepcopy(record)
    later["protocolSection"]["contactsLocationsModule"]["locations"] = [
        s for s in sites(record) if not s.get("geoPoint") or km(here["lat"], here["lon"], s["geoPoint"]["lat"],
                                                                 s["geoPoint"]["lon"]) > 100]
    later["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2099-01-01"
    assert len(sites(later)) < len(sites(record))
    import_records(db, [later], "watch", source="later.json")

    assert found(100) == []
    remaining = nearest(later, here["lat"], here["lon"])
    assert found(remaining + 1) == [(MANY_SITES, round(remaining, 1))]
    assert _stored_points(db, MANY_SITES) == study_rows(later).site_points
    # The replaced row's points are gone, whichever rowid the new row has (it may take the old one's): every
    # stored point is one of the new row's.
    assert db.execute("SELECT count(*) FROM site_points").fetchone()[0] == len(study_rows(later).site_points)


def test_within_a_distance_the_cells_give_the_same_answer_as_measuring_every_site(db):
    records = [fixture_record(MANY_SITES), fixture_record("NCT05827016"), fixture_record("NCT05317416")]
    import_records(db, records, "all", source="three.json")
    for lat, lon, within in ((41.85, -87.65, 50), (51.5, -0.12, 300), (40.7, -74.0, 20), (-33.9, 151.2, 2000)):
        got = {row["nct_id"]: row["distance_km"] for row in
               list_studies(db, "all", StudyQuery(near=Place(lat, lon, "x"), within_km=within))}
        expected = {}
        for record in records:
            distance = nearest(record, lat, lon)
            if distance is not None and distance <= within:
                expected[record["protocolSection"]["identificationModule"]["nctId"]] = round(distance, 1)
        assert got == expected, (lat, lon, within)
