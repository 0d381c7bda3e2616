"""The studies themselves: one study's facts, a topic's studies filtered and sorted, exports."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..dates import utc_today
from ..defaults import COMPLETE_OUTCOMES, DEFAULT_TOPIC_NAME
from ..errors import InvalidValue, NotFound
from ..ids import study_url
from ..results_rule import APPLICABLE, days_overdue
from ..places import AmbiguousPlace, Place, UnknownPlace, country_names, find_city, find_zip_code, parse_coordinates
from ..statuses import OPEN_STATUSES, STATUS_LABELS
from ..transform import CHILD_COLUMNS, as_values, STUDY_COLUMNS, VIRTUAL_COLUMNS, StudyRows, cell_of, virtual_value
from ..store.pulls import written_since
from .common import dicts, last_pull
from .results import due_cutoff

EARTH_RADIUS_KM = 6371.0088

_FACT_COLUMNS = [c for c in STUDY_COLUMNS if c not in ("raw", "version_holder")] + list(VIRTUAL_COLUMNS)
MAX_CELLS = 400  # beyond this many 1-degree cells, reading every site is quicker than the cell index


def distance_km(lat1, lon1, lat2, lon2) -> float | None:
    """Great-circle distance in km between two points (haversine); None if a coordinate is missing."""
    if None in (lat1, lon1, lat2, lon2):
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def add_functions(conn: sqlite3.Connection) -> None:
    """Register the SQL functions these queries use (``distance_km``) on ``conn``."""
    conn.create_function("distance_km", 4, distance_km, deterministic=True)


def resolve_place(conn: sqlite3.Connection | None, text: str) -> Place:
    """What a person typed for ``--near``, found offline: ``LAT,LON``; a US ZIP code; a city, with its state,
    region or country if given ("Chicago, IL", "Springfield, Massachusetts"), among the world's cities; else
    a city of the stored sites (``conn`` None: not looked up there). The Place's name says the state or
    region used. InvalidValue when it is none of these; AmbiguousPlace (one too) naming the candidates
    when several places fit."""
    try:
        place = parse_coordinates(text) or find_zip_code(text) or find_city(text)
    except UnknownPlace:
        place = _stored_zip_code(conn, text) if conn is not None else None
        if place is None:
            raise
    if place is not None:
        return place
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not parts:
        raise InvalidValue("place", "takes a city (e.g. 'Chicago, IL' or 'Paris, France'), a US ZIP code or LAT,LON")
    if conn is None:
        raise UnknownPlace(f"no city called {text!r} is known; give LAT,LON instead")
    return _stored_city(conn, text, parts)


def _stored_zip_code(conn: sqlite3.Connection, text: str) -> Place | None:
    """A ZIP code the data package does not know but stored sites give: the centre of those sites."""
    row = conn.execute("SELECT avg(latitude), avg(longitude), min(city), min(state), min(country) FROM locations "
                       "WHERE zip = ? AND latitude IS NOT NULL AND longitude IS NOT NULL", [text.strip()]).fetchone()
    if row is None or row[0] is None:
        return None
    return Place(row[0], row[1], f"ZIP {text.strip()} ({', '.join(p for p in row[2:] if p)})")


def _stored_city(conn: sqlite3.Connection, text: str, parts: list[str]) -> Place:
    """A city only the stored sites know: the centre of its sites; AmbiguousPlace when it lies in several
    states or countries."""
    city, rest = parts[0], parts[1:]
    rows = conn.execute(
        "SELECT city, state, country, avg(latitude), avg(longitude), count(*) FROM locations "
        "WHERE lower(city) = lower(?) AND latitude IS NOT NULL AND longitude IS NOT NULL GROUP BY city, state, country ORDER BY count(*) DESC",
        [city]).fetchall()
    if rest:
        wanted = [r.lower() for r in rest]
        rows = [r for r in rows if all(w in ((r[1] or "").lower(), (r[2] or "").lower()) for w in wanted)]
    if not rows:
        raise UnknownPlace(f"no city called {text!r} is known, nor is any stored site in one; "
                           "give LAT,LON instead")
    # by region as typed back (in any case): two spellings of one region are one place, not a choice
    regions = {((row[1] or "").lower(), (row[2] or "").lower()) for row in rows}
    if len(regions) > 1:
        raise AmbiguousPlace(text, [", ".join(p for p in row[:3] if p) for row in rows])
    weight = sum(row[5] for row in rows)
    lat = sum(row[3] * row[5] for row in rows) / weight
    lon = sum(row[4] * row[5] for row in rows) / weight
    return Place(lat, lon, ", ".join(p for p in rows[0][:3] if p))


@dataclass
class StudyQuery:
    """Which of a topic's studies to list, and in what order (None or empty: no filter)."""

    statuses: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    study_type: str | None = None
    sponsor: str | None = None
    sponsor_class: str | None = None
    country: str | None = None
    country_names: list[str] = field(default_factory=list)  # other names of that country ("USA": United States)
    near: Place | None = None
    within_km: float | None = None
    site_statuses: list[str] | None = None  # with near: the site statuses that count (None: every site)
    age: float | None = None
    sex: str | None = None
    healthy_volunteers: bool = False
    started_after: str | None = None
    started_before: str | None = None
    has_results: bool | None = None
    results_due: bool = False  # results owed and past their grace on ``today`` (results_rule)
    results_posted_since: str | None = None
    today: str | None = None  # the day results are due on (None: the current UTC day)
    changed_since: str | None = None
    search: str | None = None
    sort: str | None = None
    limit: int | None = None
    offset: int = 0  # the studies of this many places in the order are skipped (a page after the first)


_SORT_SQL = {
    "updated": "s.last_update_posted DESC, s.nct_id",
    "start": "s.start_date_sort DESC, s.nct_id",
    "title": "lower(s.brief_title), s.nct_id",
    "status": "CASE s.overall_status " + " ".join(f"WHEN '{status}' THEN {rank}" for rank, status in
                                                   enumerate(STATUS_LABELS)) + f" ELSE {len(STATUS_LABELS)} END, s.nct_id",
    "nct": "s.nct_id",
    "enrollment": "s.enrollment_count DESC, s.nct_id",
    "distance": "near.km, s.nct_id",
    "relevance": "fts.score, s.nct_id",
    "overdue": "s.results_due_date, s.nct_id",
}
LIST_COLUMNS = ("nct_id", "brief_title", "overall_status", "last_known_status", "phases", "study_type", "start_date",
                "last_update_posted", "enrollment_count", "lead_sponsor", "lead_sponsor_class", "has_results")


def list_sql(query: StudyQuery, topic: str = DEFAULT_TOPIC_NAME) -> tuple[str, dict]:
    """The SQL and parameters of ``list_studies`` (every value a parameter, never part of the text)."""
    # Membership is looked up per study (not gathered into a list first): with a selective filter only the
    # studies that pass it are looked up, and with a limit the walk stops early.
    where = ["EXISTS (SELECT 1 FROM topic_studies m WHERE m.topic = :topic AND m.nct_id = s.nct_id AND m.present = 1)"]
    params: dict = {"topic": topic}
    joins = []
    if query.statuses:
        where.append(f"s.overall_status IN ({_list_params('status', query.statuses, params)})")
    if query.phases:
        where.append("(" + " OR ".join(f"(',' || replace(s.phases, ' ', '') || ',') LIKE :phase{i}"
                                       for i in range(len(query.phases))) + ")")
        params.update({f"phase{i}": f"%,{phase},%" for i, phase in enumerate(query.phases)})
    if query.study_type:
        where.append("s.study_type = :study_type")
        params["study_type"] = query.study_type
    if query.sponsor:
        where.append("EXISTS (SELECT 1 FROM sponsors sp WHERE sp.nct_id = s.nct_id "
                     "AND instr(lower(sp.name), lower(:sponsor)) > 0)")
        params["sponsor"] = query.sponsor
    if query.sponsor_class:
        where.append("s.lead_sponsor_class = :sponsor_class")
        params["sponsor_class"] = query.sponsor_class
    if query.country:
        names = [query.country] + [name for name in query.country_names if name != query.country]
        marks = ", ".join(f"lower(:country{i})" for i in range(len(names)))
        params.update({f"country{i}": name for i, name in enumerate(names)})
        where.append(f"EXISTS (SELECT 1 FROM study_countries c WHERE c.nct_id = s.nct_id AND lower(c.country) IN ({marks}))")
    if query.age is not None:
        where.append("(s.min_age_years IS NULL OR s.min_age_years <= :age) AND "
                     "(s.max_age_years IS NULL OR s.max_age_years >= :age)")
        params["age"] = query.age
    if query.sex:
        where.append("(s.sex IS NULL OR s.sex = 'ALL' OR s.sex = :sex)" if query.sex != "ALL" else "s.sex = 'ALL'")
        params["sex"] = query.sex
    if query.healthy_volunteers:
        where.append("s.healthy_volunteers = 1")
    if query.started_after:
        where.append("s.start_date_sort >= :started_after")
        params["started_after"] = query.started_after
    if query.started_before:
        where.append("s.start_date_sort < :started_before")
        params["started_before"] = query.started_before
    if query.has_results is not None:
        where.append("s.has_results = :has_results")
        params["has_results"] = int(query.has_results)
    if query.results_due:
        where.append(f"s.results_state = '{APPLICABLE}' AND s.results_due_date < :due_cutoff")
    if query.results_posted_since:
        where.append("s.results_first_posted >= :results_posted_since "
                     "AND s.results_first_posted GLOB '[0-9][0-9][0-9][0-9]-*'")
        params["results_posted_since"] = query.results_posted_since
    if query.changed_since:
        where.append("s.last_update_posted >= :changed_since AND s.last_update_posted GLOB '[0-9][0-9][0-9][0-9]-*'")
        params["changed_since"] = query.changed_since
    if query.near is not None:
        joins.append(_near_join(query.near, query.within_km, query.site_statuses, params))
    if query.search:
        joins.append("JOIN (SELECT rowid AS fts_rowid, bm25(studies_fts) AS score FROM studies_fts "
                     "WHERE studies_fts MATCH :search) fts ON fts.fts_rowid = s.rowid")
        params["search"] = query.search
    sort = query.sort or ("relevance" if query.search else "distance" if query.near else
                          "overdue" if query.results_due else "updated")
    if sort == "overdue" and not query.results_due:
        raise InvalidValue("sort", "sorting by how long results are overdue needs results that are due")
    if sort == "distance" and query.near is None:
        raise InvalidValue("sort", "sorting by distance needs a place to measure from")
    if sort == "relevance" and not query.search:
        raise InvalidValue("sort", "sorting by relevance needs words to search for")
    distance = ", near.km AS distance_km, near.site_seq AS site_seq" if query.near is not None else ""
    if query.results_due:
        distance += ", s.results_due_date, s.fdaaa801_violation"
        params["due_cutoff"] = due_cutoff(query.today or utc_today())
    sql = (f"SELECT {', '.join('s.' + c for c in LIST_COLUMNS)}{distance} FROM studies s {' '.join(joins)} "
           f"WHERE {' AND '.join(where)} ORDER BY {_SORT_SQL[sort]}")
    if query.limit is not None or query.offset:
        sql += " LIMIT :limit OFFSET :offset"
        params.update({"limit": -1 if query.limit is None else query.limit, "offset": query.offset})
    return sql, params


def _as_stored(conn: sqlite3.Connection, query: StudyQuery) -> StudyQuery:
    """``query`` in the terms the store holds: its search as full-text syntax, its country under every name
    the stored sites may give it ("USA", "UK", "South Korea"). InvalidValue for a search that holds no word."""
    if query.search:
        query = replace(query, search=full_text_query(conn, query.search))
    if query.country and not conn.execute("SELECT 1 FROM study_countries WHERE lower(country) = lower(?) LIMIT 1",
                                          [query.country]).fetchone():
        query = replace(query, country_names=country_names(query.country))
    if query.near is not None:
        add_functions(conn)
    return query


def count_studies(conn: sqlite3.Connection, topic: str, query: StudyQuery) -> int:
    """How many of the topic's present studies pass ``query``, whatever its limit and offset."""
    sql, params = list_sql(replace(_as_stored(conn, query), limit=None, offset=0), topic)
    return conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]


def list_studies(conn: sqlite3.Connection, topic: str, query: StudyQuery) -> list[dict]:
    """The topic's present studies that pass ``query``, in its order (from its ``offset``, at most its
    ``limit``). Each row carries LIST_COLUMNS with ``phases`` as a list, ``url``, and ``distance_km`` to the
    nearest site when ``query.near`` is set. A search that holds no word raises InvalidValue."""
    query = _as_stored(conn, query)
    sql, params = list_sql(query, topic)
    rows = dicts(conn.execute(sql, params))
    for row in rows:
        as_values(row)
        row["url"] = study_url(row["nct_id"])
        if query.results_due:
            row["days_overdue"] = days_overdue(row["results_due_date"], query.today or utc_today())
        if query.near is not None:
            row["nearest_site"] = nearest_site(conn, row["nct_id"], row.pop("site_seq"), row["distance_km"])
            if row["distance_km"] is not None:
                row["distance_km"] = round(row["distance_km"], 1)
    return rows


def full_text_query(conn: sqlite3.Connection, text: str) -> str:
    """The FTS5 query for what a person typed: ``text`` itself when it is valid full-text syntax, else its
    words as plain quoted strings, all of which must appear (``covid-19`` -> ``"covid-19"``, ``Crohn's`` ->
    ``"Crohn's"``). InvalidValue when it holds no word at all."""
    words = [word for word in text.split() if any(ch.isalnum() for ch in word)]
    if not words:
        raise InvalidValue("search", f"{text!r} holds no words to look for")
    if search_syntax_error(conn, text) is None:
        return text
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def search_syntax_error(conn: sqlite3.Connection, text: str) -> str | None:
    """Why ``text`` is not a query the full-text index accepts (SQLite's own words), or None when it is.

    The query runs against an empty in-memory copy of ``studies_fts`` (same columns), so any error is the
    query's own and never the store's, whatever the wording of this SQLite's messages."""
    columns = [row[0] for row in conn.execute("SELECT name FROM pragma_table_info('studies_fts')")]
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute(f"CREATE VIRTUAL TABLE studies_fts USING fts5({', '.join(columns)})")
        probe.execute("SELECT rowid FROM studies_fts WHERE studies_fts MATCH ?", [text]).fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        probe.close()
    return None


def _list_params(name: str, values: list, params: dict) -> str:
    marks = []
    for index, value in enumerate(values):
        params[f"{name}{index}"] = value
        marks.append(f":{name}{index}")
    return ", ".join(marks)


def _near_join(place: Place, within_km: float | None, site_statuses: list[str] | None, params: dict) -> str:
    """The join giving each study its nearest counting site (``site_seq``) and that site's distance (``km``).
    A site counts when ``site_statuses`` is None, or its status is one of them, or it has none (and open
    statuses are asked for). Within a distance, only the sites at points in the 1-degree cells around the
    place are read (``site_points``), then measured exactly; without one, every site is measured."""
    params.update({"near_lat": place.latitude, "near_lon": place.longitude})
    # SQLite gives the bare column l.seq from the row holding the min() of the group: the nearest site.
    distance = "l.seq AS site_seq, min(distance_km(:near_lat, :near_lon, l.latitude, l.longitude)) AS km"
    counting = ""
    if site_statuses is not None:
        marks = _list_params("site_status", site_statuses, params)
        unstated = " OR l.status IS NULL" if set(site_statuses) & set(OPEN_STATUSES) else ""
        counting = f" AND (l.status IN ({marks}){unstated})"
    if within_km is None:
        return (f"JOIN (SELECT l.nct_id, {distance} FROM locations l WHERE l.latitude IS NOT NULL{counting} "
                "GROUP BY l.nct_id) near ON near.nct_id = s.nct_id")
    params["within_km"] = within_km
    dlat = within_km / 111.0 + 0.01
    lat_low, lat_high = max(place.latitude - dlat, -90.0), min(place.latitude + dlat, 90.0)
    where = "l.latitude BETWEEN :lat_low AND :lat_high"
    params.update({"lat_low": lat_low, "lat_high": lat_high})
    cos_lat = math.cos(math.radians(min(max(abs(lat_low), abs(lat_high)), 89.9)))
    dlon = within_km / (111.0 * cos_lat) + 0.01
    lon_low, lon_high = place.longitude - dlon, place.longitude + dlon
    if lon_low > -180 and lon_high < 180:
        where += " AND l.longitude BETWEEN :lon_low AND :lon_high"
        params.update({"lon_low": lon_low, "lon_high": lon_high})
        lats = range(math.floor(lat_low), math.floor(lat_high) + 1)
        lons = range(math.floor(lon_low), math.floor(lon_high) + 1)
        if len(lats) * len(lons) <= MAX_CELLS:
            cells = [cell_of(lat, lon) for lat in lats for lon in lons]
            params.update({f"cell{i}": cell for i, cell in enumerate(cells)})
            marks = ", ".join(f":cell{i}" for i in range(len(cells)))
            # site_points keeps the first site at each point; with statuses to tell apart, every site at
            # that point is read.
            sites = ("JOIN locations l ON l.nct_id = st.nct_id AND l.seq = p.seq" if site_statuses is None else
                     "JOIN locations first ON first.nct_id = st.nct_id AND first.seq = p.seq "
                     "JOIN locations l ON l.nct_id = st.nct_id AND l.latitude = first.latitude "
                     "AND l.longitude = first.longitude")
            return (f"JOIN (SELECT st.nct_id, {distance} FROM site_points p JOIN studies st ON st.rowid = p.study "
                    f"{sites} WHERE p.cell IN ({marks}) AND {where}{counting} GROUP BY st.nct_id "
                    "HAVING km <= :within_km) near ON near.nct_id = s.nct_id")
    return (f"JOIN (SELECT l.nct_id, {distance} FROM locations l WHERE l.latitude IS NOT NULL AND {where}{counting} "
            "GROUP BY l.nct_id HAVING km <= :within_km) near ON near.nct_id = s.nct_id")


def sites_by_distance(sites: list[dict], place: Place, site_statuses: list[str] | None = None) -> list[dict]:
    """A study's sites, each given ``distance_km`` from ``place``: those that count first (by the rule of
    ``list --near``: an open status or none given, unless ``site_statuses`` says otherwise), nearest first, then
    the others, nearest first; sites without a point last in each group."""
    counting = set(site_statuses if site_statuses is not None else OPEN_STATUSES)
    measured = [{**site, "distance_km": distance_km(place.latitude, place.longitude, site.get("latitude"),
                                                    site.get("longitude"))} for site in sites]
    return sorted(measured, key=lambda site: (
        not (site.get("status") in counting or (site.get("status") is None and counting & set(OPEN_STATUSES))),
        site["distance_km"] is None, site["distance_km"] or 0.0))


def nearest_site(conn: sqlite3.Connection, nct_id: str, seq: int | None, km: float | None) -> dict | None:
    """The site ``seq`` of a study as ``list --near`` names it: facility, city, state, country, status,
    ``distance_km``, and its first contact when the record gives one."""
    if seq is None:
        return None
    found = dicts(conn.execute("SELECT facility, city, state, country, status FROM locations "
                               "WHERE nct_id = ? AND seq = ?", [nct_id, seq]))
    if not found:
        return None
    site = found[0]
    site["distance_km"] = None if km is None else round(km, 1)
    contacts = dicts(conn.execute("SELECT name, role, phone, email FROM location_contacts WHERE nct_id = ? "
                                  "AND location_seq = ? ORDER BY seq LIMIT 1", [nct_id, seq]))
    site["contact"] = contacts[0] if contacts else None
    return site


def study_facts(conn: sqlite3.Connection, nct_id: str) -> dict:
    """Everything stored about one study: its columns, child rows, topics and change history; NotFound
    if it is not stored."""
    rows = dicts(conn.execute(f"SELECT {', '.join(_FACT_COLUMNS)} FROM studies WHERE nct_id = ?", [nct_id]))
    if not rows:
        raise _not_stored(nct_id)
    facts = rows[0]
    for table, columns in CHILD_COLUMNS.items():
        facts[table] = dicts(conn.execute(
            f"SELECT seq, {', '.join(columns)} FROM {table} WHERE nct_id = ? ORDER BY seq", [nct_id]))
    facts["topics"] = study_topics(conn, nct_id)
    facts["changes"] = dicts(conn.execute(
        "SELECT field, old, new, item, observed_at, topic FROM changes WHERE nct_id = ? ORDER BY id DESC LIMIT 30",
        [nct_id]))
    return facts


def study_topics(conn: sqlite3.Connection, nct_id: str) -> list[dict]:
    """The topics that hold or held one study, by name: ``[{"topic", "present", "left_at"}]`` (``present``
    true while the API returns the study for the topic; once it left, false and when)."""
    rows = dicts(conn.execute("SELECT topic, present, left_at FROM topic_studies WHERE nct_id = ? ORDER BY topic",
                              [nct_id]))
    return [{**row, "present": bool(row["present"])} for row in rows]


def facts_from_rows(rows: StudyRows, record: dict) -> dict:
    """The facts of a study that is not stored (``show --fetch``), from its flattened rows and record."""
    facts = {column: rows.value(column) for column in _FACT_COLUMNS if column not in VIRTUAL_COLUMNS}
    facts.update({column: virtual_value(record, column) for column in VIRTUAL_COLUMNS})
    for table, columns in CHILD_COLUMNS.items():
        facts[table] = [{"seq": seq, **dict(zip(columns, child))} for seq, child in enumerate(rows.children[table])]
    facts["topics"], facts["changes"] = [], []
    return facts


def study_raw(conn: sqlite3.Connection, nct_id: str) -> str:
    """The stored raw JSON text of one study, exactly as received; NotFound if it is not stored."""
    row = conn.execute("SELECT raw FROM studies WHERE nct_id = ?", [nct_id]).fetchone()
    if row is None:
        raise _not_stored(nct_id)
    return row[0]


# The sections of a study record (API v2) and the modules each holds; any of them may be absent from a record.
RECORD_SECTIONS: dict[str, tuple[str, ...]] = {
    "protocolSection": (
        "identificationModule", "statusModule", "sponsorCollaboratorsModule", "oversightModule", "descriptionModule",
        "conditionsModule", "designModule", "armsInterventionsModule", "outcomesModule", "eligibilityModule",
        "contactsLocationsModule", "referencesModule", "ipdSharingStatementModule"),
    "resultsSection": ("participantFlowModule", "baselineCharacteristicsModule", "outcomeMeasuresModule",
                       "adverseEventsModule", "moreInfoModule"),
    "annotationSection": ("annotationModule",),
    "documentSection": ("largeDocumentModule",),
    "derivedSection": ("miscInfoModule", "conditionBrowseModule", "interventionBrowseModule"),
}
_SECTION_OF = {module: section for section, modules in RECORD_SECTIONS.items() for module in modules}


def record_parts(record: dict, names: list[str]) -> tuple[dict, list[str]]:
    """The parts of a study record that ``names`` name (sections such as ``resultsSection``, or modules of
    ``RECORD_SECTIONS`` such as ``statusModule``), each where the record has it (``{"protocolSection":
    {"statusModule": ...}}``), and the names this record has no part for, in the order asked."""
    parts: dict = {}
    absent = []
    for name in dict.fromkeys(names):
        section = _SECTION_OF.get(name)
        if section is None and name in record:
            parts[name] = record[name]
        elif section is not None and isinstance(record.get(section), dict) and name in record[section]:
            if section not in names:  # else the whole section is given
                parts.setdefault(section, {})[name] = record[section][name]
        else:
            absent.append(name)
    return parts, absent


def _not_stored(nct_id: str) -> NotFound:
    return NotFound(f"{nct_id} is not in the database (pull a topic that holds it, `trialsync import` it, "
                    "or `trialsync show --fetch` it)")


EXPORT_COLUMNS = tuple(c for c in STUDY_COLUMNS if c != "raw") + tuple(VIRTUAL_COLUMNS)
# The lists an export gives each study, in the record's order: name -> the query of one study's values.
EXPORT_LISTS = {
    "conditions": "SELECT condition AS value FROM conditions WHERE nct_id = s.nct_id ORDER BY seq",
    "interventions": "SELECT name AS value FROM interventions WHERE nct_id = s.nct_id ORDER BY seq",
    "collaborators": "SELECT name AS value FROM sponsors WHERE nct_id = s.nct_id AND role = 'collaborator' ORDER BY seq",
    "countries": "SELECT country AS value FROM study_countries WHERE nct_id = s.nct_id ORDER BY seq",
    "keywords": "SELECT keyword AS value FROM keywords WHERE nct_id = s.nct_id ORDER BY seq",
}


def export_rows(conn: sqlite3.Connection, topic: str) -> Iterator[dict]:
    """The topic's present studies, by NCT id: every ``studies`` column but ``raw`` (the official title,
    summary and eligibility criteria included), the lists of ``EXPORT_LISTS`` (conditions, interventions,
    collaborators, countries, keywords) as lists, and the study's ``url``; flags as True/False, phases as a
    list."""
    return _export_rows(conn, "s.nct_id IN (SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1)", topic)


def study_summary(conn: sqlite3.Connection, nct_id: str) -> dict:
    """One stored study as ``export`` gives each (its ``studies`` columns but ``raw``, its lists, its ``url``),
    whatever topics hold it; NotFound if it is not stored."""
    for row in _export_rows(conn, "s.nct_id = ?", nct_id):
        return row
    raise _not_stored(nct_id)


def _export_rows(conn: sqlite3.Connection, where: str, value: str) -> Iterator[dict]:
    import orjson

    lists = ", ".join(f"(SELECT json_group_array(value) FROM ({query})) AS {name}"
                      for name, query in EXPORT_LISTS.items())
    cursor = conn.execute(
        f"SELECT {', '.join('s.' + c for c in EXPORT_COLUMNS)}, {lists} FROM studies s WHERE {where} "
        "ORDER BY s.nct_id", [value])
    columns = [d[0] for d in cursor.description]
    for values in cursor:
        row = as_values(dict(zip(columns, values)))
        for name in EXPORT_LISTS:
            row[name] = orjson.loads(row[name])
        row["url"] = study_url(row["nct_id"])
        yield row


def export_raw(conn: sqlite3.Connection, topic: str) -> Iterator[str]:
    """The topic's present studies' raw records, exactly as stored, by NCT id."""
    for (raw,) in conn.execute("SELECT raw FROM studies WHERE nct_id IN "
                               "(SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1) ORDER BY nct_id",
                               [topic]):
        yield raw


def topic_rows(conn: sqlite3.Connection) -> list[dict]:
    """Each stored topic with how many studies it holds, its last complete pull or import, and its search."""
    import orjson

    rows = []
    for name, params, epoch in conn.execute("SELECT name, params, epoch FROM topics ORDER BY name").fetchall():
        latest = last_pull(conn, name)
        if latest is not None and not written_since(conn, latest["id"]):  # its snapshot: no count of every member
            studies = conn.execute("SELECT coalesce(sum(count), 0) FROM pull_status_counts WHERE pull_id = ?",
                                   [latest["id"]]).fetchone()[0]
        else:
            studies = conn.execute("SELECT count(*) FROM topic_studies WHERE topic = ? AND present = 1",
                                   [name]).fetchone()[0]
        last = conn.execute("SELECT max(finished_at) FROM pulls WHERE topic = ? AND id > ? AND outcome IN "
                            f"({', '.join('?' * len(COMPLETE_OUTCOMES))})",
                            [name, epoch, *COMPLETE_OUTCOMES]).fetchone()[0]
        search = orjson.loads(params)
        rows.append({"name": name, "studies": studies, "last_pull": last,
                     "search": " ".join(f"{k}={v}" for k, v in search.items() if v)})
    return rows
