"""Places only the stored sites know (a city no data package lists, a ZIP code the package lacks), checked
against a brute-force reading of the real fixture records' sites: the centre of every matching site, the
region the most sites give, and each region named when there are several."""

from __future__ import annotations

import math

import pytest

from fakeapi import load_fixture_records
from trialsync import store
from trialsync.places import AmbiguousPlace, Place, UnknownPlace
from trialsync.reports.studies import _stored_city, _stored_zip_code
from trialsync.store.studies import API, SaveContext, save_studies
from trialsync.topics import Topic
from trialsync.transform import study_rows


@pytest.fixture(scope="module")
def sites_db(tmp_path_factory):
    """Every real fixture record stored, and every site of theirs with a point, as (city, state, country, lat,
    lon, zip) read straight from the records."""
    records = load_fixture_records()
    with store.open_for_writing(tmp_path_factory.mktemp("places") / "t.db") as db:
        store.save_topic(db, Topic("all", {"query.cond": "all"}))
        save_studies(db, [study_rows(r) for r in records], SaveContext("all", store.start_pull(db, "all"), API, False,
                                                                       "2026-11-24"))
        sites = [(s.get("city"), s.get("state"), s.get("country"), s["geoPoint"]["lat"], s["geoPoint"]["lon"], s.get("zip"))
                 for r in records for s in r["protocolSection"].get("contactsLocationsModule", {}).get("locations", [])
                 if s.get("geoPoint", {}).get("lat") is not None]
        yield db, sites


def _region(site) -> tuple[str, str]:
    """A site's state and country as a person types them back: in any case."""
    return (site[1] or "").lower(), (site[2] or "").lower()


@pytest.mark.parametrize("text", ["Springfield", "Madrid", "madrid", "Seoul", "Houston", "Barcelona", "São Paulo",
                                  "Sao Paulo", "Beijing", "Porto Alegre"])
def test_a_stored_city_is_the_centre_of_its_sites_or_names_each_region_it_lies_in(sites_db, text):
    db, sites = sites_db
    matching = [s for s in sites if s[0] and s[0].lower() == text.lower()]
    assert matching, text
    regions = {_region(s) for s in matching}
    if len(regions) > 1:
        with pytest.raises(AmbiguousPlace) as caught:
            _stored_city(db, text, [text])
        groups = {(s[0], s[1] or "", s[2] or "") for s in matching}
        named = [", ".join(p for p in group if p) for group in groups]
        message = str(caught.value)
        assert message.startswith(f"{text!r} fits {len(groups)} places; say which: ") and message.endswith(" (or give LAT,LON)")
        assert sorted(message.split(": ", 1)[1].removesuffix(" (or give LAT,LON)").split("; ")) == sorted(f"'{n}'" for n in named)
        return
    place = _stored_city(db, text, [text])
    counts = {}
    for s in matching:
        counts[(s[0], s[1] or "", s[2] or "")] = counts.get((s[0], s[1] or "", s[2] or ""), 0) + 1
    most = max(counts.values())
    assert place.name in {", ".join(p for p in group if p) for group, n in counts.items() if n == most}
    assert math.isclose(place.latitude, sum(s[3] for s in matching) / len(matching), abs_tol=1e-9)
    assert math.isclose(place.longitude, sum(s[4] for s in matching) / len(matching), abs_tol=1e-9)


def test_a_qualifier_keeps_the_sites_in_that_state_or_country_only(sites_db):
    db, sites = sites_db
    seoul = [s for s in sites if (s[0] or "").lower() == "seoul"]
    state, country = max({_region(s) for s in seoul if s[1]}, key=lambda region: sum(_region(s) == region for s in seoul))
    wanted = [s for s in seoul if _region(s) == (state, country)]
    spelled = [(s[1], s[2]) for s in wanted]
    state, country = max(set(spelled), key=spelled.count)  # the spelling most of its sites give
    place = _stored_city(db, f"Seoul, {state}", ["Seoul", state.upper()])
    assert math.isclose(place.latitude, sum(s[3] for s in wanted) / len(wanted), abs_tol=1e-9)
    assert place.name.lower() == ", ".join(p for p in ("Seoul", state, country) if p).lower()
    with pytest.raises(UnknownPlace) as caught:
        _stored_city(db, "Seoul, Atlantis", ["Seoul", "Atlantis"])
    assert str(caught.value) == ("no city called 'Seoul, Atlantis' is known, nor is any stored site in one; give "
                                 "LAT,LON instead")
    springfield = _stored_city(db, "Springfield, united states", ["Springfield", "united states"])
    assert springfield == Place(39.80172, -89.64371, "Springfield, Illinois, United States")


def test_a_stored_zip_code_is_the_centre_of_its_sites_named_by_their_place(sites_db):
    db, sites = sites_db
    zips = {}
    for s in sites:
        if s[5]:
            zips.setdefault(s[5], []).append(s)
    code, at = max(zips.items(), key=lambda item: len(item[1]))
    place = _stored_zip_code(db, f" {code} ")
    assert math.isclose(place.latitude, sum(s[3] for s in at) / len(at), abs_tol=1e-9)
    assert math.isclose(place.longitude, sum(s[4] for s in at) / len(at), abs_tol=1e-9)
    first = (min(s[0] for s in at), min(s[1] for s in at if s[1]), min(s[2] for s in at))
    assert place.name == f"ZIP {code} ({', '.join(first)})"
    assert _stored_zip_code(db, "00000") is None


def test_a_site_whose_point_lacks_a_longitude_is_no_place_to_measure_from(tmp_path):
    # A record may give geoPoint {"lat": ...} alone: such a site has no point, so it neither centres a city
    # or a ZIP code nor breaks the sum (it raised TypeError once). NCT03180268 has two sites at Tucson 85719.
    record = next(r for r in load_fixture_records()
                  if r["protocolSection"]["identificationModule"]["nctId"] == "NCT03180268")
    tucson = [s for s in record["protocolSection"]["contactsLocationsModule"]["locations"]
              if s.get("city") == "Tucson" and s.get("zip") == "85719" and s.get("geoPoint")]
    assert len(tucson) == 2
    del tucson[0]["geoPoint"]["lon"]
    kept = tucson[1]["geoPoint"]
    with store.open_for_writing(tmp_path / "t.db") as db:
        store.save_topic(db, Topic("all", {"query.cond": "all"}))
        save_studies(db, [study_rows(record)], SaveContext("all", store.start_pull(db, "all"), API, False, "2026-11-24"))
        for place in (_stored_city(db, "Tucson", ["Tucson"]), _stored_zip_code(db, "85719")):
            assert (place.latitude, place.longitude) == (kept["lat"], kept["lon"])
        del kept["lon"]
        save_studies(db, [study_rows(record)], SaveContext("all", store.start_pull(db, "all"), API, False, "2026-11-25"))
        assert _stored_zip_code(db, "85719") is None
        elsewhere = [s["geoPoint"] for s in record["protocolSection"]["contactsLocationsModule"]["locations"]
                     if s.get("city") == "Tucson" and s.get("geoPoint", {}).get("lon") is not None]
        assert len(elsewhere) == 1  # the site at 85704 now stands for Tucson alone
        place = _stored_city(db, "Tucson", ["Tucson"])
        assert (place.latitude, place.longitude) == (elsewhere[0]["lat"], elsewhere[0]["lon"])


@pytest.mark.parametrize("within", [30.0, 500.0])
@pytest.mark.parametrize("bearing", ["north", "south", "east", "west"])
def test_a_site_just_within_the_distance_is_listed_whichever_way_it_lies(sites_db, within, bearing):
    """The bounding box read before measuring exactly must hold every site closer than ``within``."""
    from trialsync.reports.studies import StudyQuery, distance_km, list_studies

    db, sites = sites_db
    site = max((s for s in sites if abs(s[3]) < 60), key=lambda s: abs(s[3]))  # far from the equator: narrow degrees
    lat, lon = site[3], site[4]
    sign = {"north": -1, "south": 1, "east": -1, "west": 1}[bearing]

    def place_at(offset):
        return (lat + sign * offset, lon) if bearing in ("north", "south") else (lat, lon + sign * offset)

    low, high = 0.0, 20.0  # degrees: bisect for the place ``within - 0.3`` km from the site
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if distance_km(*place_at(mid), lat, lon) < within - 0.3 else (low, mid)
    place = Place(*place_at(low), "test point")
    listed = {row["nct_id"]: row["distance_km"] for row in list_studies(db, "all", StudyQuery(near=place, within_km=within))}
    nct_id = db.execute("SELECT nct_id FROM locations WHERE latitude = ? AND longitude = ?", [lat, lon]).fetchone()[0]
    assert nct_id in listed and listed[nct_id] <= within - 0.3 + 1e-6
