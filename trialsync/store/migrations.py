"""The database's shape, created up front with explicit types and changed only through migrations.

Each migration is frozen text: it never imports live code, so the table it creates today is the table it
created for the first release. Imported only when a database is created or upgraded.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .db import APPLICATION_ID, SCHEMA_VERSION, transaction

migrations = Migrations("trialsync")

_CHILD_TABLES = {  # as the first release declared them: name -> columns after (nct_id, seq)
    "conditions": "condition TEXT",
    "interventions": "type TEXT, name TEXT",
    "sponsors": "role TEXT, name TEXT, class TEXT",
    "locations": "facility TEXT, city TEXT, state TEXT, country TEXT, status TEXT",
    "keywords": "keyword TEXT",
    "secondary_ids": "secondary_id TEXT, type TEXT, domain TEXT",
    "mesh_terms": "kind TEXT, mesh_id TEXT, term TEXT",
}


@migrations()
def m001_initial_schema(db: Database) -> None:
    db.execute("""
        CREATE TABLE topics (
            name TEXT PRIMARY KEY,
            params TEXT NOT NULL,          -- JSON object of API search parameters
            created_at TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE studies (
            nct_id TEXT PRIMARY KEY,
            brief_title TEXT, official_title TEXT, acronym TEXT,
            overall_status TEXT, last_known_status TEXT, why_stopped TEXT,
            study_type TEXT, phases TEXT, enrollment_count INTEGER, enrollment_type TEXT,
            start_date TEXT, start_date_sort TEXT,
            primary_completion_date TEXT, primary_completion_date_sort TEXT,
            completion_date TEXT, completion_date_sort TEXT,
            first_posted TEXT, last_update_posted TEXT, status_verified_date TEXT, results_first_posted TEXT,
            lead_sponsor TEXT, lead_sponsor_class TEXT, has_results INTEGER, brief_summary TEXT,
            location_count INTEGER, version_holder TEXT,
            raw TEXT NOT NULL              -- the record exactly as received, as JSON text
        )""")
    for table, columns in _CHILD_TABLES.items():
        # Clustered on (nct_id, seq): replacing one study's rows touches one contiguous range.
        db.execute(f"""
            CREATE TABLE {table} (
                nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, {columns},
                PRIMARY KEY (nct_id, seq)
            ) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE pulls (
            id INTEGER PRIMARY KEY,
            topic TEXT NOT NULL,
            kind TEXT NOT NULL,            -- pull | import
            mode TEXT,                     -- full | incremental | skipped
            started_at TEXT NOT NULL, finished_at TEXT,
            outcome TEXT NOT NULL,         -- running | complete | unchanged | failed | interrupted | killed
            error TEXT,
            data_timestamp TEXT, api_version TEXT,
            requests INTEGER NOT NULL DEFAULT 0, total_count INTEGER,
            received INTEGER NOT NULL DEFAULT 0, new INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,
            left_topic INTEGER NOT NULL DEFAULT 0, rejoined INTEGER NOT NULL DEFAULT 0,
            watermark TEXT,                -- newest last_update_posted known when the pull completed
            membership_checked INTEGER NOT NULL DEFAULT 0,  -- 1 if it compared the topic's full id list
            pid INTEGER, source TEXT
        )""")
    db.execute("CREATE INDEX pulls_topic ON pulls (topic, outcome, id)")
    db.execute("""
        CREATE TABLE topic_studies (
            topic TEXT NOT NULL, nct_id TEXT NOT NULL REFERENCES studies(nct_id),
            present INTEGER NOT NULL,      -- 1 while the API returns the study for the topic
            first_pull INTEGER, left_at TEXT, left_pull INTEGER,
            PRIMARY KEY (topic, nct_id)
        ) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            nct_id TEXT NOT NULL, pull_id INTEGER NOT NULL REFERENCES pulls(id),
            replaced_at TEXT NOT NULL, last_update_posted TEXT,
            raw_zlib BLOB NOT NULL         -- the replaced raw JSON, zlib-compressed
        )""")
    db.execute("CREATE INDEX versions_nct_id ON versions (nct_id)")
    # old/new are BLOB-affinity so each value keeps the API's own type: text stays text, counts stay integers.
    db.execute("""
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            pull_id INTEGER NOT NULL REFERENCES pulls(id), topic TEXT NOT NULL,
            nct_id TEXT NOT NULL, field TEXT NOT NULL, old BLOB, new BLOB,
            observed_at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX changes_topic ON changes (topic, observed_at)")
    db.execute("CREATE INDEX changes_nct_id ON changes (nct_id)")
    db.execute("""
        CREATE TABLE pull_status_counts (
            pull_id INTEGER NOT NULL REFERENCES pulls(id), overall_status TEXT NOT NULL,
            last_known_status TEXT NOT NULL,  -- '' when the study has none
            count INTEGER NOT NULL,
            PRIMARY KEY (pull_id, overall_status, last_known_status)
        ) WITHOUT ROWID""")
    db.execute("CREATE INDEX studies_by_status ON studies (overall_status, last_known_status, nct_id)")


# Changes at or before a topic's digest cursor that no digest has reported yet (an upgrade from the first
# release, which kept no cursor, fills it; a digest empties the topic's rows).
_DIGEST_BACKLOG = """
    CREATE TABLE IF NOT EXISTS digest_backlog (
        topic TEXT NOT NULL, change_id INTEGER NOT NULL,
        PRIMARY KEY (topic, change_id)
    ) WITHOUT ROWID"""


@migrations()
def m002_sync_state_per_topic(db: Database) -> None:
    # A topic carries its own sync state: the search its last complete pull used, the watermark, the
    # API data it saw, and how far its changes have been reported. ``epoch``: the pulls with a larger id
    # belong to this topic (a topic removed and added again starts afresh).
    for column in ("epoch INTEGER NOT NULL DEFAULT 0", "synced_params TEXT", "filled INTEGER NOT NULL DEFAULT 0",
                   "watermark TEXT", "data_timestamp TEXT", "api_version TEXT",
                   "reported_through INTEGER NOT NULL DEFAULT 0"):
        db.execute(f"ALTER TABLE topics ADD COLUMN {column}")
    db.execute("""
        UPDATE topics SET
            filled = EXISTS (SELECT 1 FROM pulls p WHERE p.topic = topics.name
                             AND p.outcome IN ('complete', 'unchanged')),
            synced_params = CASE WHEN EXISTS (SELECT 1 FROM pulls p WHERE p.topic = topics.name AND p.kind = 'pull'
                                              AND p.outcome IN ('complete', 'unchanged')) THEN params END,
            data_timestamp = (SELECT p.data_timestamp FROM pulls p WHERE p.topic = topics.name AND p.kind = 'pull'
                              AND p.outcome IN ('complete', 'unchanged') ORDER BY p.id DESC LIMIT 1),
            watermark = (SELECT p.watermark FROM pulls p WHERE p.topic = topics.name AND p.kind = 'pull'
                         AND p.outcome IN ('complete', 'unchanged') ORDER BY p.id DESC LIMIT 1),
            reported_through = (SELECT coalesce(max(id), 0) FROM changes)""")
    # The first release kept no cursor: it printed the changes of a pull once the pull completed (an import
    # said in its summary line what it added and updated), and never those of a pull that failed, was
    # interrupted or killed (or still says 'running': killed). The changes such a pull saw stay owed to every
    # topic, for the next digest to report; the cursor covers the rest.
    db.execute(_DIGEST_BACKLOG)
    db.execute("""
        INSERT INTO digest_backlog (topic, change_id)
        SELECT t.name, c.id FROM changes c JOIN pulls p ON p.id = c.pull_id, topics t
        WHERE p.kind = 'pull' AND p.outcome NOT IN ('complete', 'unchanged')""")
    # A watermark the first release took from a malformed or future date is dropped: the next pull is full.
    db.execute("""
        UPDATE topics SET watermark = NULL
        WHERE watermark IS NOT NULL AND NOT (
            watermark GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' AND date(watermark) IS watermark
            AND watermark <= coalesce(substr(data_timestamp, 1, 10), date('now')))""")
    # Changes are facts about studies; only membership events belong to a topic. ``reason`` marks the
    # membership events of a changed search, which a digest sums up in one line.
    db.execute("""
        CREATE TABLE changes_v2 (
            id INTEGER PRIMARY KEY,
            pull_id INTEGER NOT NULL REFERENCES pulls(id),
            topic TEXT,                    -- membership events: the topic; NULL for a change to the study itself
            nct_id TEXT NOT NULL, field TEXT NOT NULL, old BLOB, new BLOB,
            observed_at TEXT NOT NULL,
            reason TEXT                    -- 'search': caused by a changed search
        )""")
    db.execute("""
        INSERT INTO changes_v2 (id, pull_id, topic, nct_id, field, old, new, observed_at)
        SELECT id, pull_id, CASE WHEN field = 'membership' THEN topic END, nct_id, field, old, new, observed_at
        FROM changes""")
    db.execute("DROP TABLE changes")
    db.execute("ALTER TABLE changes_v2 RENAME TO changes")
    db.execute("CREATE INDEX changes_nct_id ON changes (nct_id, id)")
    db.execute("CREATE INDEX changes_topic ON changes (topic, id)")
    # Whether the API ever returned the study for the topic: only then can it be reported as having left.
    db.execute("ALTER TABLE topic_studies ADD COLUMN api_seen INTEGER NOT NULL DEFAULT 1")
    db.execute("""
        UPDATE topic_studies SET api_seen = 0
        WHERE first_pull IN (SELECT id FROM pulls WHERE kind = 'import')""")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _age_years(column: str) -> str:
    """SQL for an age text ("18 Years") in years, as ``transform.age_in_years`` computes it."""
    number = f"substr({column}, 1, instr({column}, ' ') - 1)"
    unit = f"lower(substr({column}, instr({column}, ' ') + 1))"
    multiplier = (f"CASE {unit} WHEN 'week' THEN 7 WHEN 'weeks' THEN 7 ELSE 1 END")
    divisor = (f"CASE {unit} WHEN 'year' THEN 1.0 WHEN 'years' THEN 1.0 WHEN 'month' THEN 12.0 WHEN 'months' THEN 12.0 "
               f"WHEN 'week' THEN 365.25 WHEN 'weeks' THEN 365.25 WHEN 'day' THEN 365.25 WHEN 'days' THEN 365.25 "
               f"WHEN 'hour' THEN 8766.0 WHEN 'hours' THEN 8766.0 WHEN 'minute' THEN 525960.0 "
               f"WHEN 'minutes' THEN 525960.0 END")
    valid = (f"instr({column}, ' ') BETWEEN 2 AND 7 AND {number} NOT GLOB '*[^0-9]*' "
             f"AND substr({column}, instr({column}, ' ') + 1) NOT GLOB '*[^A-Za-z]*' "
             f"AND {unit} IN ('year', 'years', 'month', 'months', 'week', 'weeks', 'day', 'days', 'hour', 'hours', "
             f"'minute', 'minutes')")
    return f"CASE WHEN {valid} THEN CAST({number} AS INTEGER) * {multiplier} / {divisor} END"


_P = "$.protocolSection"


_SEARCH_VIEW = """
        CREATE VIEW studies_search AS
        SELECT s.rowid AS rowid, s.nct_id, s.brief_title, s.official_title, s.acronym, s.brief_summary,
               (SELECT group_concat(condition, ' ; ') FROM
                   (SELECT condition FROM conditions c WHERE c.nct_id = s.nct_id AND condition IS NOT NULL ORDER BY seq))
                   AS conditions,
               (SELECT group_concat(name, ' ; ') FROM
                   (SELECT name FROM interventions i WHERE i.nct_id = s.nct_id AND name IS NOT NULL ORDER BY seq))
                   AS interventions,
               (SELECT group_concat(keyword, ' ; ') FROM
                   (SELECT keyword FROM keywords k WHERE k.nct_id = s.nct_id AND keyword IS NOT NULL ORDER BY seq))
                   AS keywords
        FROM studies s"""
_SEARCH_INDEX = """
        CREATE VIRTUAL TABLE studies_fts USING fts5(
            brief_title, official_title, acronym, brief_summary, conditions, interventions, keywords,
            content = 'studies_search', content_rowid = 'rowid', tokenize = 'porter unicode61 remove_diacritics 2')"""


def _objects(json: str, path: str) -> str:
    """SQL: the value at ``path`` of ``json`` is a list of objects. What an earlier release stored may hold
    another shape there (a string, an object, a list of strings): nothing is derived from it then."""
    return (f"json_type({json}, '{path}') = 'array' AND NOT EXISTS "
            f"(SELECT 1 FROM json_each({json}, '{path}') x WHERE x.type <> 'object')")


def _object_or_empty(alias: str) -> str:
    """SQL: the value of json_each row ``alias`` if it is an object, else an empty one (always valid JSON)."""
    return f"CASE WHEN {alias}.type = 'object' THEN {alias}.value ELSE '{{}}' END"


def _studies_table(name: str) -> str:
    """The ``studies`` table of schema 3 (as migration 3 creates it), under ``name``."""
    return f"""
        CREATE TABLE {name} (
            nct_id TEXT PRIMARY KEY,
            brief_title TEXT, acronym TEXT,
            overall_status TEXT, last_known_status TEXT, why_stopped TEXT,
            study_type TEXT, phases TEXT, enrollment_count INTEGER, enrollment_type TEXT,
            start_date TEXT, start_date_sort TEXT,
            primary_completion_date TEXT, primary_completion_date_sort TEXT,
            completion_date TEXT, completion_date_sort TEXT,
            first_posted TEXT, last_update_posted TEXT, status_verified_date TEXT, results_first_posted TEXT,
            lead_sponsor TEXT, lead_sponsor_class TEXT, has_results INTEGER,
            location_count INTEGER, version_holder TEXT,
            min_age TEXT, min_age_years REAL, max_age TEXT, max_age_years REAL, sex TEXT, healthy_volunteers INTEGER,
            start_date_type TEXT, primary_completion_date_type TEXT, completion_date_type TEXT,
            org_study_id TEXT, allocation TEXT, masking TEXT, primary_purpose TEXT,
            raw TEXT NOT NULL,             -- the record exactly as received, as JSON text
            official_title TEXT GENERATED ALWAYS AS (json_extract(raw, '{_P}.identificationModule.officialTitle')) VIRTUAL,
            brief_summary TEXT GENERATED ALWAYS AS (json_extract(raw, '{_P}.descriptionModule.briefSummary')) VIRTUAL,
            eligibility_criteria TEXT GENERATED ALWAYS AS
                (json_extract(raw, '{_P}.eligibilityModule.eligibilityCriteria')) VIRTUAL
        )"""



def _create_study_countries(db) -> None:
    """study_countries (migration 3's shape) filled from locations: each study's countries once each, in the
    order of their first site. Frozen: migrations 3 and 4 both make it so."""
    db.execute("""
        CREATE TABLE study_countries (
            nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, country TEXT,
            PRIMARY KEY (nct_id, seq)
        ) WITHOUT ROWID""")
    db.execute("""
        INSERT INTO study_countries
        SELECT nct_id, row_number() OVER (PARTITION BY nct_id ORDER BY first) - 1, country FROM (
            SELECT nct_id, country, min(seq) AS first FROM locations WHERE country IS NOT NULL GROUP BY nct_id, country)""")


def _create_site_points(db) -> None:
    """site_points (migration 3's shape) filled from locations: the first site at each distinct point of a
    study, by its 1-degree cell and the study's rowid. Frozen: migrations 3 and 4 both make it so."""
    db.execute("""
        CREATE TABLE site_points (
            cell INTEGER NOT NULL, study INTEGER NOT NULL, seq INTEGER NOT NULL,  -- studies.rowid, locations.seq
            PRIMARY KEY (cell, study, seq)
        ) WITHOUT ROWID""")
    floor_lat = "(CAST(l.latitude AS INTEGER) - (l.latitude < CAST(l.latitude AS INTEGER)))"
    floor_lon = "(CAST(l.longitude AS INTEGER) - (l.longitude < CAST(l.longitude AS INTEGER)))"
    db.execute(f"""
        INSERT INTO site_points
        SELECT ({floor_lat} + 90) * 360 + ({floor_lon} + 180), s.rowid, min(l.seq)
        FROM locations l JOIN studies s ON s.nct_id = l.nct_id
        WHERE l.latitude IS NOT NULL AND l.longitude IS NOT NULL
        GROUP BY l.nct_id, l.latitude, l.longitude""")

@migrations()
def m003_derived_fields_and_search(db: Database) -> None:
    # More of each record, derived from raw: existing databases are backfilled here, without a download. The
    # longest texts (official title, summary, eligibility criteria) become columns the database reads from
    # raw when asked, so that they are not stored twice: the table is rebuilt.
    db.execute(_studies_table("studies_v3"))
    kept = ("nct_id, brief_title, acronym, overall_status, last_known_status, why_stopped, study_type, phases, "
            "enrollment_count, enrollment_type, start_date, start_date_sort, primary_completion_date, "
            "primary_completion_date_sort, completion_date, completion_date_sort, first_posted, last_update_posted, "
            "status_verified_date, results_first_posted, lead_sponsor, lead_sponsor_class, has_results, "
            "location_count, version_holder, raw")
    db.execute(f"""
        INSERT INTO studies_v3 (rowid, {kept}, min_age, max_age, sex, healthy_volunteers, start_date_type,
                                primary_completion_date_type, completion_date_type, org_study_id, allocation, masking,
                                primary_purpose)
        SELECT rowid, {kept},
            json_extract(raw, '{_P}.eligibilityModule.minimumAge'),
            json_extract(raw, '{_P}.eligibilityModule.maximumAge'),
            json_extract(raw, '{_P}.eligibilityModule.sex'),
            json_extract(raw, '{_P}.eligibilityModule.healthyVolunteers'),
            json_extract(raw, '{_P}.statusModule.startDateStruct.type'),
            json_extract(raw, '{_P}.statusModule.primaryCompletionDateStruct.type'),
            json_extract(raw, '{_P}.statusModule.completionDateStruct.type'),
            json_extract(raw, '{_P}.identificationModule.orgStudyIdInfo.id'),
            json_extract(raw, '{_P}.designModule.designInfo.allocation'),
            json_extract(raw, '{_P}.designModule.designInfo.maskingInfo.masking'),
            json_extract(raw, '{_P}.designModule.designInfo.primaryPurpose')
        FROM studies""")
    db.execute("DROP TABLE studies")
    db.execute("ALTER TABLE studies_v3 RENAME TO studies")
    # Counting by status reads only this index; listing one status newest first walks it in order and stops
    # at the limit, reading just the rows it prints.
    db.execute("CREATE INDEX studies_by_status ON studies (overall_status, last_update_posted, last_known_status, "
               "nct_id)")
    # A study's row is large (it holds the record): breakdowns read its status and one-valued dimensions
    # from this index, in NCT id order, as they walk a topic's members.
    db.execute("CREATE INDEX studies_facts ON studies (nct_id, overall_status, study_type, lead_sponsor_class, "
               "phases, start_date_sort, lead_sponsor)")
    db.execute(f"UPDATE studies SET min_age_years = {_age_years('min_age')}, max_age_years = {_age_years('max_age')}")

    # Locations gain zip code and coordinates (geoPoint): the table is derived again from raw.
    db.execute("""
        CREATE TABLE locations_v3 (
            nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL,
            facility TEXT, city TEXT, state TEXT, country TEXT, status TEXT,
            zip TEXT, latitude REAL, longitude REAL,
            PRIMARY KEY (nct_id, seq)
        ) WITHOUT ROWID""")
    db.execute(f"""
        INSERT INTO locations_v3
        SELECT s.nct_id, CAST(l.key AS INTEGER), json_extract(l.value, '$.facility'), json_extract(l.value, '$.city'),
               json_extract(l.value, '$.state'), json_extract(l.value, '$.country'), json_extract(l.value, '$.status'),
               json_extract(l.value, '$.zip'), json_extract(l.value, '$.geoPoint.lat'),
               json_extract(l.value, '$.geoPoint.lon')
        FROM studies s, json_each(s.raw, '{_P}.contactsLocationsModule.locations') l
        WHERE {_objects("s.raw", f"{_P}.contactsLocationsModule.locations")}""")
    db.execute("DROP TABLE locations")
    db.execute("ALTER TABLE locations_v3 RENAME TO locations")
    # Each study's countries, once each, and the 1-degree cells its sites are in: small tables that answer
    # "by country" and "near" without reading every site.
    _create_study_countries(db)
    # Where a study's sites are, for searches by distance: the first site at each distinct point, by its 1-degree
    # cell and the study's rowid (an integer, where the NCT id would cost twice the space).
    _create_site_points(db)

    new_tables = {
        "primary_outcomes": ("measure TEXT", f"{_P}.outcomesModule.primaryOutcomes", "json_extract(j.value, '$.measure')"),
        "central_contacts": ("name TEXT, role TEXT, phone TEXT, email TEXT",
                             f"{_P}.contactsLocationsModule.centralContacts",
                             "json_extract(j.value, '$.name'), json_extract(j.value, '$.role'), "
                             "json_extract(j.value, '$.phone'), json_extract(j.value, '$.email')"),
        "study_references": ("pmid TEXT, type TEXT", f"{_P}.referencesModule.references",
                             "json_extract(j.value, '$.pmid'), json_extract(j.value, '$.type')"),
    }
    for table, (columns, path, values) in new_tables.items():
        db.execute(f"""
            CREATE TABLE {table} (
                nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, {columns},
                PRIMARY KEY (nct_id, seq)
            ) WITHOUT ROWID""")
        db.execute(f"INSERT INTO {table} SELECT s.nct_id, CAST(j.key AS INTEGER), {values} "
                   f"FROM studies s, json_each(s.raw, '{path}') j WHERE {_objects('s.raw', path)}")
    db.execute("""
        CREATE TABLE location_contacts (
            nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL,
            location_seq INTEGER NOT NULL, name TEXT, role TEXT, phone TEXT, email TEXT,
            PRIMARY KEY (nct_id, seq)
        ) WITHOUT ROWID""")
    db.execute(f"""
        INSERT INTO location_contacts
        SELECT s.nct_id, row_number() OVER (PARTITION BY s.nct_id ORDER BY CAST(l.key AS INTEGER), CAST(c.key AS INTEGER)) - 1,
               CAST(l.key AS INTEGER), json_extract(c.value, '$.name'), json_extract(c.value, '$.role'),
               json_extract(c.value, '$.phone'), json_extract(c.value, '$.email')
        FROM studies s, json_each(s.raw, '{_P}.contactsLocationsModule.locations') l,
             json_each({_object_or_empty("l")}, '$.contacts') c
        WHERE {_objects("s.raw", f"{_P}.contactsLocationsModule.locations")}
          AND {_objects(_object_or_empty("l"), "$.contacts")}""")

    # Which site or publication a change is about (a site added, removed or changing its status).
    db.execute("ALTER TABLE changes ADD COLUMN item TEXT")
    # A topic's membership events by study, to tell whether a study was a member when a change was seen.
    db.execute("CREATE INDEX changes_membership ON changes (topic, nct_id, pull_id, id) WHERE topic IS NOT NULL")

    # Full-text search over titles, summary, conditions, interventions and keywords: an index whose text is
    # read from a view over the tables (no second copy of it), kept in step by each page's writes.
    db.execute(_SEARCH_VIEW)
    db.execute(_SEARCH_INDEX)
    db.execute("INSERT INTO studies_fts (studies_fts) VALUES ('rebuild')")



_STUDY_COLUMNS_3 = (  # the stored columns of schema 3's studies table, raw last
    "nct_id, brief_title, acronym, overall_status, last_known_status, why_stopped, study_type, phases, "
    "enrollment_count, enrollment_type, start_date, start_date_sort, primary_completion_date, "
    "primary_completion_date_sort, completion_date, completion_date_sort, first_posted, last_update_posted, "
    "status_verified_date, results_first_posted, lead_sponsor, lead_sponsor_class, has_results, location_count, "
    "version_holder, min_age, min_age_years, max_age, max_age_years, sex, healthy_volunteers, start_date_type, "
    "primary_completion_date_type, completion_date_type, org_study_id, allocation, masking, primary_purpose, raw")


@migrations()
def m004_one_shape_of_schema_3(db: Database) -> None:
    # Migration 3 was changed after the release that first shipped it (8deebb8) and again before the next ones, so
    # a database stamped 3 has one of several shapes. Each difference is found and brought to the last one; a
    # database already of that shape is left as it is. Everything added is derived from what is stored.
    def columns(table: str) -> list[tuple]:
        return [(row[1], row[6]) for row in db.execute(f"PRAGMA table_xinfo({table})").fetchall()]

    def exists(name: str) -> bool:
        return db.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", [name]).fetchone()[0] > 0

    def index_columns(name: str) -> list[str]:
        return [row[2] for row in db.execute(f"PRAGMA index_info({name})").fetchall()]

    def same(sql_a: str | None, sql_b: str) -> bool:
        return " ".join((sql_a or "").split()) == " ".join(sql_b.split())

    view = db.execute("SELECT sql FROM sqlite_master WHERE name = 'studies_search'").fetchone()
    index = db.execute("SELECT sql FROM sqlite_master WHERE name = 'studies_fts'").fetchone()
    rebuild_studies = ("official_title", 2) not in columns("studies")  # 8deebb8: stored, not read from raw
    rebuild_search = (rebuild_studies or not view or not same(view[0], _SEARCH_VIEW)
                      or not index or not same(index[0], _SEARCH_INDEX))
    if rebuild_search:
        db.execute("DROP TABLE IF EXISTS studies_fts")
        db.execute("DROP VIEW IF EXISTS studies_search")
    if rebuild_studies:
        db.execute(_studies_table("studies_v4"))
        db.execute(f"INSERT INTO studies_v4 (rowid, {_STUDY_COLUMNS_3}) SELECT rowid, {_STUDY_COLUMNS_3} FROM studies")
        db.execute("DROP TABLE studies")
        db.execute("ALTER TABLE studies_v4 RENAME TO studies")
    if index_columns("studies_by_status") != ["overall_status", "last_update_posted", "last_known_status", "nct_id"]:
        db.execute("DROP INDEX IF EXISTS studies_by_status")
        db.execute("CREATE INDEX studies_by_status ON studies (overall_status, last_update_posted, last_known_status, "
                   "nct_id)")
    if not exists("studies_facts"):
        db.execute("CREATE INDEX studies_facts ON studies (nct_id, overall_status, study_type, lead_sponsor_class, "
                   "phases, start_date_sort, lead_sponsor)")
    db.execute("DROP INDEX IF EXISTS locations_by_city")  # 8deebb8's; nothing reads it since
    if not exists("study_countries"):
        _create_study_countries(db)
    db.execute("DROP TABLE IF EXISTS study_cells")  # replaced by site_points
    if not exists("site_points"):
        _create_site_points(db)
    for table, kept in (("primary_outcomes", "measure TEXT"), ("study_references", "pmid TEXT, type TEXT")):
        names = [name for name, _ in columns(table)]
        wanted = ["nct_id", "seq", *(column.split()[0] for column in kept.split(", "))]
        if names != wanted:  # 8deebb8 also kept time_frame and citation, which nothing reads
            db.execute(f"""
                CREATE TABLE {table}_v4 (
                    nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, {kept},
                    PRIMARY KEY (nct_id, seq)
                ) WITHOUT ROWID""")
            db.execute(f"INSERT INTO {table}_v4 SELECT {', '.join(wanted)} FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_v4 RENAME TO {table}")
    if not exists("changes_membership"):
        db.execute("CREATE INDEX changes_membership ON changes (topic, nct_id, pull_id, id) WHERE topic IS NOT NULL")
    if rebuild_search:
        db.execute(_SEARCH_VIEW)
        db.execute(_SEARCH_INDEX)
        db.execute("INSERT INTO studies_fts (studies_fts) VALUES ('rebuild')")


@migrations()
def m005_digest_backlog(db: Database) -> None:
    # Migration 2 makes the backlog since this release; a database it upgraded before gets it empty.
    db.execute(_DIGEST_BACKLOG)


# Each list the search text joins, as the view ``studies_search`` joins it: table, column, the view's column.
_SEARCH_LISTS = (("conditions", "condition", "conditions"), ("interventions", "name", "interventions"),
                 ("keywords", "keyword", "keywords"))
_SEARCH_COLUMNS = "brief_title, official_title, acronym, brief_summary, conditions, interventions, keywords"


def _search_text_of_old() -> str:
    """SQL: the text the index holds for the study row ``old`` of a trigger, as the view gives it (its lists
    read from the child tables by ``old.nct_id``)."""
    lists = [f"(SELECT group_concat({column}, ' ; ') FROM (SELECT {column} FROM {table} c "
             f"WHERE c.nct_id = old.nct_id AND {column} IS NOT NULL ORDER BY seq))"
             for table, column, _ in _SEARCH_LISTS]
    return ", ".join(["old.brief_title", "old.official_title", "old.acronym", "old.brief_summary", *lists])


def forget_search_text(where: str) -> str:
    """SQL: the index forgets the text of the studies of the view ``studies_search`` matching ``where``."""
    return (f"INSERT INTO studies_fts (studies_fts, rowid, {_SEARCH_COLUMNS}) "
            f"SELECT 'delete', rowid, {_SEARCH_COLUMNS} FROM studies_search WHERE {where};")


def index_search_text(where: str) -> str:
    """SQL: the index takes the text of the studies of the view ``studies_search`` matching ``where``."""
    return (f"INSERT INTO studies_fts (rowid, {_SEARCH_COLUMNS}) "
            f"SELECT rowid, {_SEARCH_COLUMNS} FROM studies_search WHERE {where};")


def _create_search_triggers(db, unless: str | None = None) -> None:
    """The triggers that keep ``studies_fts`` equal to the view ``studies_search``, whatever writes the tables
    it reads. A study's text leaves the index while its row is deleted, with the lists as they still are; a
    change to a list of a stored study re-indexes that study; while a study has no row (the writer deletes
    it, replaces its lists, then inserts it) its lists change without touching the index, so that a saved
    study is indexed once, not once per list item. With ``unless`` (SQL), every trigger stands aside while
    it holds."""
    when = f"WHEN NOT ({unless})" if unless else ""
    db.execute(f"""
        CREATE TRIGGER studies_fts_insert AFTER INSERT ON studies {when} BEGIN
            {index_search_text("rowid = new.rowid")}
        END""")
    db.execute(f"""
        CREATE TRIGGER studies_fts_delete AFTER DELETE ON studies {when} BEGIN
            INSERT INTO studies_fts (studies_fts, rowid, {_SEARCH_COLUMNS})
            VALUES ('delete', old.rowid, {_search_text_of_old()});
        END""")
    # A refreshed record (only versionHolder moved) changes no indexed text: the index is left alone.
    changed = " OR ".join(f"old.{column} IS NOT new.{column}" for column in
                          ("rowid", "nct_id", "brief_title", "official_title", "acronym", "brief_summary"))
    db.execute(f"""
        CREATE TRIGGER studies_fts_update AFTER UPDATE ON studies
            WHEN ({changed}){f" AND NOT ({unless})" if unless else ""} BEGIN
            INSERT INTO studies_fts (studies_fts, rowid, {_SEARCH_COLUMNS})
            VALUES ('delete', old.rowid, {_search_text_of_old()});
            {index_search_text("rowid = new.rowid")}
        END""")
    for table, _, _ in _SEARCH_LISTS:
        for event, studies in (("INSERT", "new.nct_id"), ("DELETE", "old.nct_id"),
                               ("UPDATE", "old.nct_id, new.nct_id")):
            where = f"nct_id IN ({studies})"
            db.execute(f"""
                CREATE TRIGGER {table}_fts_before_{event.lower()} BEFORE {event} ON {table} {when} BEGIN
                    {forget_search_text(where)}
                END""")
            db.execute(f"""
                CREATE TRIGGER {table}_fts_after_{event.lower()} AFTER {event} ON {table} {when} BEGIN
                    {index_search_text(where)}
                END""")


_VIEWS = {
    # The counts of status-report: a topic's present studies by overall status ('NONE': a record without one).
    "topic_status_counts": """
        SELECT ts.topic, coalesce(s.overall_status, 'NONE') AS overall_status, count(*) AS studies
        FROM topic_studies ts JOIN studies s ON s.nct_id = ts.nct_id
        WHERE ts.present = 1
        GROUP BY ts.topic, coalesce(s.overall_status, 'NONE')""",
    "studies_with_topics": """
        SELECT s.nct_id, s.brief_title, s.overall_status, s.phases, s.study_type, s.lead_sponsor,
               s.lead_sponsor_class, s.enrollment_count, s.start_date, s.last_update_posted,
               (SELECT group_concat(topic, ', ') FROM
                   (SELECT topic FROM topic_studies ts WHERE ts.nct_id = s.nct_id AND ts.present = 1 ORDER BY topic))
                   AS topics,
               'https://clinicaltrials.gov/study/' || s.nct_id AS url
        FROM studies s""",
    # Newest first; a warning may name a study the registry does not have (no title then).
    "recent_changes": """
        SELECT c.id, c.observed_at, c.nct_id, s.brief_title, c.field, c.item, c.old, c.new, c.topic, c.reason,
               c.pull_id
        FROM changes c LEFT JOIN studies s ON s.nct_id = c.nct_id
        ORDER BY c.id DESC""",
    "sites": """
        SELECT l.nct_id, l.seq, s.brief_title, s.overall_status, l.facility, l.city, l.state, l.zip, l.country,
               l.status AS site_status, l.latitude, l.longitude
        FROM locations l JOIN studies s ON s.nct_id = l.nct_id""",
}

# Tables that gain the foreign keys Datasette follows (and PRAGMA foreign_key_check checks), as rebuilt here.
_WITH_FOREIGN_KEYS = {
    "versions": ("""
        CREATE TABLE versions_v6 (
            id INTEGER PRIMARY KEY,
            nct_id TEXT NOT NULL REFERENCES studies(nct_id), pull_id INTEGER NOT NULL REFERENCES pulls(id),
            replaced_at TEXT NOT NULL, last_update_posted TEXT,
            raw_zlib BLOB NOT NULL         -- the replaced raw JSON, zlib-compressed
        )""", "id, nct_id, pull_id, replaced_at, last_update_posted, raw_zlib",
        ["CREATE INDEX versions_nct_id ON versions (nct_id)"]),
    "topic_studies": ("""
        CREATE TABLE topic_studies_v6 (
            topic TEXT NOT NULL REFERENCES topics(name), nct_id TEXT NOT NULL REFERENCES studies(nct_id),
            present INTEGER NOT NULL,      -- 1 while the API returns the study for the topic
            first_pull INTEGER REFERENCES pulls(id), left_at TEXT, left_pull INTEGER REFERENCES pulls(id),
            api_seen INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (topic, nct_id)
        ) WITHOUT ROWID""", "topic, nct_id, present, first_pull, left_at, left_pull, api_seen", []),
    "digest_backlog": ("""
        CREATE TABLE digest_backlog_v6 (
            topic TEXT NOT NULL REFERENCES topics(name), change_id INTEGER NOT NULL REFERENCES changes(id),
            PRIMARY KEY (topic, change_id)
        ) WITHOUT ROWID""", "topic, change_id", []),
}


@migrations()
def m006_browsable_database(db: Database) -> None:
    # A database people browse (Datasette's conventions): foreign keys declared wherever the data keeps them,
    # the full-text index kept in step by triggers, and views for the common questions. Not declared:
    # changes.nct_id (a warning names an id the registry does not have), changes.topic and pulls.topic (a
    # removed topic's history stays), site_points.study (a rowid). Tables are rebuilt SQLite's way (create,
    # copy every row, drop, rename) inside the upgrade's transaction; foreign keys are not enforced, so a row
    # whose reference has gone (none that trialsync writes) is kept as it is, for foreign_key_check to show.
    for table, (create, columns, indexes) in _WITH_FOREIGN_KEYS.items():
        db.execute(create)
        db.execute(f"INSERT INTO {table}_v6 ({columns}) SELECT {columns} FROM {table}")
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE {table}_v6 RENAME TO {table}")
        for index in indexes:
            db.execute(index)
    _create_search_triggers(db)
    for name, select in _VIEWS.items():
        db.execute(f"CREATE VIEW {name} AS {select}")


_R = "$.resultsSection"


def _count(text: str) -> str:
    """SQL: ``text`` as an integer when it is a count of 1 to 18 digits, else NULL (``transform.as_count``)."""
    return (f"CASE WHEN {text} GLOB '[0-9]*' AND {text} NOT GLOB '*[^0-9]*' AND length({text}) <= 18 "
            f"THEN CAST({text} AS INTEGER) END")


def _number(text: str) -> str:
    """SQL: ``text`` as a real when it is a plain finite decimal ("-.5", "30."), else NULL
    (``transform.as_number``): digits, at most one point, a minus sign only in front."""
    return (f"CASE WHEN {text} NOT GLOB '*[^0-9.-]*' AND {text} GLOB '*[0-9]*' AND instr(substr({text}, 2), '-') = 0 "
            f"AND length({text}) - length(replace({text}, '.', '')) <= 1 "
            f"AND abs(CAST({text} AS REAL)) <= 1.7976931348623157e308 THEN CAST({text} AS REAL) END")


def _without(text: str, characters: str) -> str:
    """SQL: ``text`` with every one of ``characters`` taken out."""
    for character in characters:
        text = f"replace({text}, '{character}', '')"
    return text


def _of(alias: str, key: str) -> str:
    return f"json_extract({alias}.value, '$.{key}')"


def _each(parent: str, alias: str, path: str) -> tuple[str, str]:
    """SQL: (the json_each of the list of objects at ``path`` under json_each row ``parent`` (or the study's
    raw record), and the condition that it is one)."""
    source = "s.raw" if parent == "s" else _object_or_empty(parent)
    return f"json_each({source}, '{path}') {alias}", _objects(source, path)


def _numbered(table: str, columns: str, select: str, lists: list[tuple[str, str, str]], order: str,
              where: str = "") -> str:
    """SQL: insert into ``table`` the rows ``select`` picks from each study's nested lists ``lists`` (parent,
    alias, path), numbered in each study by ``order``."""
    joins, checks = [], []
    for parent, alias, path in lists:
        join, check = _each(parent, alias, path)
        joins.append(join)
        checks.append(check)
    return (f"INSERT INTO {table} (nct_id, seq, {columns}) SELECT s.nct_id, "
            f"row_number() OVER (PARTITION BY s.nct_id ORDER BY {order}) - 1, {select} "
            f"FROM studies s, {', '.join(joins)} WHERE {' AND '.join(checks)}{where}")


def _key(alias: str) -> str:
    return f"CAST({alias}.key AS INTEGER)"


_RESULT_TABLES = {  # as migration 7 creates them: name -> columns after (nct_id, seq)
    "result_groups": "result_type TEXT, outcome_seq INTEGER, ctgov_group_code TEXT, title TEXT, description TEXT",
    "milestones": "period TEXT, title TEXT, ctgov_group_code TEXT, count INTEGER, description TEXT, "
                  "milestone_description TEXT, count_units TEXT",
    "drop_withdrawals": "period TEXT, reason TEXT, ctgov_group_code TEXT, count INTEGER, reason_comment TEXT, "
                        "drop_withdraw_comment TEXT, count_units TEXT",
    "baseline_counts": "ctgov_group_code TEXT, units TEXT, scope TEXT, count INTEGER",
    "baseline_measurements": "measure_seq INTEGER, ctgov_group_code TEXT, classification TEXT, category TEXT, title TEXT, "
                             "description TEXT, units TEXT, param_type TEXT, param_value TEXT, param_value_num REAL, "
                             "dispersion_type TEXT, dispersion_value TEXT, dispersion_value_num REAL, "
                             "dispersion_lower_limit REAL, dispersion_upper_limit REAL, explanation_of_na TEXT, "
                             "population_description TEXT",
    "outcomes": "outcome_type TEXT, title TEXT, description TEXT, time_frame TEXT, population TEXT, "
                "anticipated_posting_date TEXT, units TEXT, units_analyzed TEXT, dispersion_type TEXT, param_type TEXT, "
                "reporting_status TEXT",
    "outcome_counts": "outcome_seq INTEGER, ctgov_group_code TEXT, scope TEXT, units TEXT, count INTEGER",
    "outcome_measurements": "outcome_seq INTEGER, ctgov_group_code TEXT, classification TEXT, category TEXT, "
                            "param_value TEXT, param_value_num REAL, dispersion_value TEXT, dispersion_value_num REAL, "
                            "dispersion_lower_limit REAL, dispersion_upper_limit REAL, explanation_of_na TEXT",
    "outcome_analyses": "outcome_seq INTEGER, groups TEXT, non_inferiority_type TEXT, non_inferiority_description TEXT, "
                        "param_type TEXT, param_value TEXT, dispersion_type TEXT, dispersion_value TEXT, "
                        "p_value_modifier TEXT, p_value REAL, p_value_raw TEXT, p_value_description TEXT, "
                        "ci_n_sides TEXT, ci_percent REAL, ci_lower_limit REAL, ci_upper_limit REAL, "
                        "ci_upper_limit_na_comment TEXT, method TEXT, method_description TEXT, "
                        "estimate_description TEXT, groups_description TEXT, other_analysis_description TEXT",
    "reported_events": "event_type TEXT, ctgov_group_code TEXT, organ_system TEXT, adverse_event_term TEXT, vocab TEXT, "
                       "assessment TEXT, event_count INTEGER, subjects_affected INTEGER, subjects_at_risk INTEGER",
    "reported_event_totals": "ctgov_group_code TEXT, event_type TEXT, classification TEXT, subjects_affected INTEGER, "
                             "subjects_at_risk INTEGER",
    "result_contacts": "organization TEXT, name TEXT, phone TEXT, extension TEXT, email TEXT",
}


def _column_names(table: str) -> str:
    return ", ".join(column.split()[0] for column in _RESULT_TABLES[table].split(", "))


def _fill_result_tables(db) -> None:
    """Every results table derived from the stored records, as ``transform.results`` derives them."""
    flow, baseline = f"{_R}.participantFlowModule", f"{_R}.baselineCharacteristicsModule"
    outcomes, events = f"{_R}.outcomeMeasuresModule.outcomeMeasures", f"{_R}.adverseEventsModule"
    parts = [
        (0, "'Participant Flow'", "NULL", [("s", "g", f"{flow}.groups")]),
        (1, "'Baseline'", "NULL", [("s", "g", f"{baseline}.groups")]),
        (2, "'Outcome'", _key("o"), [("s", "o", outcomes), ("o", "g", "$.groups")]),
        (3, "'Reported Event'", "NULL", [("s", "g", f"{events}.eventGroups")]),
    ]
    selects = []
    for part, kind, outcome, lists in parts:
        joins, checks = zip(*(_each(parent, alias, path) for parent, alias, path in lists))
        selects.append(f"SELECT s.nct_id AS nct_id, {part} AS part, {outcome} AS outcome_seq, {_key('g')} AS item, "
                       f"{kind} AS result_type, {_of('g', 'id')} AS code, {_of('g', 'title')} AS title, "
                       f"{_of('g', 'description')} AS description FROM studies s, {', '.join(joins)} "
                       f"WHERE {' AND '.join(checks)}")
    db.execute(f"""
        INSERT INTO result_groups (nct_id, seq, {_column_names('result_groups')})
        SELECT nct_id, row_number() OVER (PARTITION BY nct_id ORDER BY part, outcome_seq, item) - 1,
               result_type, outcome_seq, code, title, description
        FROM ({' UNION ALL '.join(selects)})""")
    for table, lists_key, stats_key in (("milestones", "milestones", "achievements"),
                                        ("drop_withdrawals", "dropWithdraws", "reasons")):
        select = (f"{_of('p', 'title')}, {_of('m', 'type')}, {_of('a', 'groupId')}, {_count(_of('a', 'numSubjects'))}, "
                  f"{_of('a', 'comment')}, {_of('m', 'comment')}, {_of('a', 'numUnits')}")
        db.execute(_numbered(table, _column_names(table), select,
                             [("s", "p", f"{flow}.periods"), ("p", "m", f"$.{lists_key}"), ("m", "a", f"$.{stats_key}")],
                             f"{_key('p')}, {_key('m')}, {_key('a')}"))
    db.execute(_numbered("baseline_counts", _column_names("baseline_counts"),
                         f"{_of('c', 'groupId')}, {_of('d', 'units')}, 'overall', {_count(_of('c', 'value'))}",
                         [("s", "d", f"{baseline}.denoms"), ("d", "c", "$.counts")], f"{_key('d')}, {_key('c')}"))
    measured = [("c", "k", "$.classes"), ("k", "g", "$.categories"), ("g", "x", "$.measurements")]
    values = (f"{_of('x', 'value')}, {_number(_of('x', 'value'))}")
    spread = (f"{_of('x', 'spread')}, {_number(_of('x', 'spread'))}, {_number(_of('x', 'lowerLimit'))}, "
              f"{_number(_of('x', 'upperLimit'))}, {_of('x', 'comment')}")
    where_in = f"{_of('x', 'groupId')}, {_of('k', 'title')}, {_of('g', 'title')}"
    db.execute(_numbered(
        "baseline_measurements", _column_names("baseline_measurements"),
        f"{_key('c')}, {where_in}, {_of('c', 'title')}, {_of('c', 'description')}, {_of('c', 'unitOfMeasure')}, "
        f"{_of('c', 'paramType')}, {values}, {_of('c', 'dispersionType')}, {spread}, {_of('c', 'populationDescription')}",
        [("s", "c", f"{baseline}.measures"), *measured], f"{_key('c')}, {_key('k')}, {_key('g')}, {_key('x')}"))
    outcome_columns = ", ".join(_of("c", key) for key in (
        "type", "title", "description", "timeFrame", "populationDescription", "anticipatedPostingDate",
        "unitOfMeasure", "typeUnitsAnalyzed", "dispersionType", "paramType", "reportingStatus"))
    db.execute(_numbered("outcomes", _column_names("outcomes"), outcome_columns, [("s", "c", outcomes)], _key("c")))
    db.execute(_numbered("outcome_counts", _column_names("outcome_counts"),
                         f"{_key('c')}, {_of('n', 'groupId')}, 'Measure', {_of('d', 'units')}, {_count(_of('n', 'value'))}",
                         [("s", "c", outcomes), ("c", "d", "$.denoms"), ("d", "n", "$.counts")],
                         f"{_key('c')}, {_key('d')}, {_key('n')}"))
    db.execute(_numbered("outcome_measurements", _column_names("outcome_measurements"),
                         f"{_key('c')}, {where_in}, {values}, {spread}",
                         [("s", "c", outcomes), *measured], f"{_key('c')}, {_key('k')}, {_key('g')}, {_key('x')}"))
    p_value = _of("a", "pValue")
    groups = ("(SELECT group_concat(value, ',') FROM (SELECT i.value FROM json_each(a.value, '$.groupIds') i "
              "ORDER BY CAST(i.key AS INTEGER)))")
    analysis = ", ".join([
        _key("c"), groups, _of("a", "nonInferiorityType"), _of("a", "nonInferiorityComment"), _of("a", "paramType"),
        _of("a", "paramValue"), _of("a", "dispersionType"), _of("a", "dispersionValue"),
        f"nullif(trim({_without(p_value, '0123456789.-')}, ' '), '')", _number(_without(p_value, "<> =")), p_value,
        _of("a", "pValueComment"), _of("a", "ciNumSides"), _number(_of("a", "ciPctValue")),
        _number(_of("a", "ciLowerLimit")), _number(_of("a", "ciUpperLimit")), _of("a", "ciUpperLimitComment"),
        _of("a", "statisticalMethod"), _of("a", "statisticalComment"), _of("a", "estimateComment"),
        _of("a", "groupDescription"), _of("a", "otherAnalysisDescription")])
    db.execute(_numbered("outcome_analyses", _column_names("outcome_analyses"), analysis,
                         [("s", "c", outcomes), ("c", "a", "$.analyses")], f"{_key('c')}, {_key('a')}"))
    selects = []
    for part, (event_type, key) in enumerate((("serious", "seriousEvents"), ("other", "otherEvents"))):
        joins, checks = zip(*(_each(parent, alias, path) for parent, alias, path in
                              (("s", "e", f"{events}.{key}"), ("e", "x", "$.stats"))))
        selects.append(
            f"SELECT s.nct_id AS nct_id, {part} AS part, {_key('e')} AS event, {_key('x')} AS stat, "
            f"'{event_type}' AS event_type, {_of('x', 'groupId')} AS code, {_of('e', 'organSystem')} AS organ_system, "
            f"{_of('e', 'term')} AS term, {_of('e', 'sourceVocabulary')} AS vocab, "
            f"{_of('e', 'assessmentType')} AS assessment, {_of('x', 'numEvents')} AS events, "
            f"{_of('x', 'numAffected')} AS affected, {_of('x', 'numAtRisk')} AS at_risk "
            f"FROM studies s, {', '.join(joins)} WHERE {' AND '.join(checks)}")
    db.execute(f"""
        INSERT INTO reported_events (nct_id, seq, {_column_names('reported_events')})
        SELECT nct_id, row_number() OVER (PARTITION BY nct_id ORDER BY part, event, stat) - 1, event_type, code,
               organ_system, term, vocab, assessment, events, affected, at_risk
        FROM ({' UNION ALL '.join(selects)})""")
    join, check = _each("s", "g", f"{events}.eventGroups")
    db.execute(f"""
        INSERT INTO reported_event_totals (nct_id, seq, {_column_names('reported_event_totals')})
        SELECT nct_id, row_number() OVER (PARTITION BY nct_id ORDER BY item, kind) - 1, code, event_type,
               classification, affected, at_risk FROM (
            SELECT s.nct_id, {_key('g')} AS item, t.kind, {_of('g', 'id')} AS code, t.event_type, t.classification,
                   json_extract(g.value, '$.' || t.event_type || 'NumAffected') AS affected,
                   json_extract(g.value, '$.' || t.event_type || 'NumAtRisk') AS at_risk
            FROM studies s, {join},
                 (SELECT 0 AS kind, 'serious' AS event_type, 'Total, serious adverse events' AS classification
                  UNION ALL SELECT 1, 'other', 'Total, other adverse events'
                  UNION ALL SELECT 2, 'deaths', 'Total, all-cause mortality') t
            WHERE {check})
        WHERE affected IS NOT NULL OR at_risk IS NOT NULL""")
    contact = f"{_R}.moreInfoModule.pointOfContact"
    db.execute(f"""
        INSERT INTO result_contacts (nct_id, seq, {_column_names('result_contacts')})
        SELECT nct_id, 0, json_extract(raw, '{contact}.organization'), json_extract(raw, '{contact}.title'),
               json_extract(raw, '{contact}.phone'), json_extract(raw, '{contact}.phoneExt'),
               json_extract(raw, '{contact}.email')
        FROM studies WHERE json_type(raw, '{contact}') = 'object'""")


def _period_end(date: str) -> str:
    """SQL: the last day a date as the API writes it stands for (``results_rule.period_end``), else NULL."""
    return (f"CASE WHEN {date} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' AND {date} >= '0001' "
            f"AND date({date}) = {date} THEN {date} "
            f"WHEN {date} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]' AND {date} >= '0001' AND date({date} || '-01') = {date} || '-01' "
            f"THEN date({date} || '-01', '+1 month', '-1 day') END")


def _results_state() -> str:
    """SQL: the ``results_state`` and ``results_due_date`` of each study (``results_rule.results_state``), as a
    query giving (nct_id, state, due date)."""
    tracking = "$.derivedSection.miscInfoModule.submissionTracking.submissionInfos"
    # the submission released last (the later one in the list among equals), as results_rule picks it
    newest = (f"(SELECT i.value FROM json_each(raw, '{tracking}') i ORDER BY json_extract(i.value, '$.releaseDate') DESC, "
              f"CAST(i.key AS INTEGER) DESC LIMIT 1)")
    under_review = (f"coalesce(json_type(raw, '{tracking}') = 'array' AND json_array_length(raw, '{tracking}') > 0 "
                    f"AND json_extract({newest}, '$.releaseDate') IS NOT NULL "
                    f"AND json_extract({newest}, '$.resetDate') IS NULL "
                    f"AND json_extract({newest}, '$.unreleaseDate') IS NULL "
                    f"AND coalesce(json_extract({newest}, '$.unreleaseDateUnknown'), 0) = 0, 0)")
    oversight = f"{_P}.oversightModule"
    phases = f"{_P}.designModule.phases"
    early_only = (f"coalesce(json_type(raw, '{phases}') = 'array' AND json_array_length(raw, '{phases}') > 0 AND NOT EXISTS "
                  f"(SELECT 1 FROM json_each(raw, '{phases}') p WHERE p.value NOT IN ('PHASE1', 'EARLY_PHASE1')), 0)")
    fda = (f"coalesce(json_extract(raw, '{oversight}.isFdaRegulatedDrug') = 1 "
           f"OR json_extract(raw, '{oversight}.isFdaRegulatedDevice') = 1, 0)")
    locations = f"{_P}.contactsLocationsModule.locations"
    us = (f"coalesce(EXISTS (SELECT 1 FROM json_each(raw, '{locations}') l WHERE json_type(raw, '{locations}') = 'array' "
          f"AND json_extract({_object_or_empty('l')}, '$.country') = 'United States') "
          f"OR json_extract(raw, '{oversight}.isUsExport') = 1, 0)")
    return f"""
        SELECT nct_id,
            CASE WHEN posted THEN 'posted' WHEN under_review THEN 'under review'
                 WHEN NOT applicable OR (completion IS NOT NULL AND completion < '2017-01-18') THEN 'not applicable'
                 WHEN certified THEN 'delayed by certification' ELSE 'applicable' END AS state,
            CASE WHEN NOT posted AND NOT under_review AND applicable AND completion >= '2017-01-18' AND NOT certified
                 AND completion_type = 'ACTUAL' THEN date(completion, '+365 days') END AS due
        FROM (
            SELECT nct_id, coalesce(has_results = 1 OR results_first_posted IS NOT NULL, 0) AS posted,
                   {under_review} AS under_review,
                   (coalesce(study_type = 'INTERVENTIONAL', 0) AND NOT {early_only} AND {fda} AND {us}) AS applicable,
                   {_period_end('primary_completion_date')} AS completion,
                   primary_completion_date_type AS completion_type,
                   json_extract(raw, '{_P}.statusModule.dispFirstSubmitDate') IS NOT NULL AS certified
            FROM studies)"""


@migrations()
def m007_results(db: Database) -> None:
    # Results, derived from raw (no download): AACT's results tables, whether a study owes results (and since
    # when), the registry's own FDAAA 801 violation flag, and the limitations of the results (read from raw).
    for table in _RESULT_TABLES:
        db.execute(f"""
            CREATE TABLE {table} (
                nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, {_RESULT_TABLES[table]},
                PRIMARY KEY (nct_id, seq)
            ) WITHOUT ROWID""")
    _fill_result_tables(db)
    for column in ("results_state TEXT", "results_due_date TEXT", "fdaaa801_violation INTEGER",
                   "limitations_and_caveats TEXT GENERATED ALWAYS AS "
                   f"(json_extract(raw, '{_R}.moreInfoModule.limitationsAndCaveats.description')) VIRTUAL"):
        db.execute(f"ALTER TABLE studies ADD COLUMN {column}")
    db.execute(f"""
        UPDATE studies SET results_state = d.state, results_due_date = d.due,
            fdaaa801_violation = json_extract(studies.raw, '{_P}.oversightModule.fdaaa801Violation')
        FROM ({_results_state()}) AS d WHERE d.nct_id = studies.nct_id""")
    # Which studies' results are due (list --results-due) is read from this index; a topic's studies by results
    # (status-report --by results) from the covering index of breakdowns, which gains the two columns.
    db.execute("CREATE INDEX studies_results ON studies (results_state, results_due_date)")
    db.execute("DROP INDEX studies_facts")
    db.execute("CREATE INDEX studies_facts ON studies (nct_id, overall_status, study_type, lead_sponsor_class, "
               "phases, start_date_sort, lead_sponsor, results_state, results_due_date)")
    # Studies whose results the change log has called due, with the due date it named: a study is called due
    # once, whatever its due date becomes later. Those due already are noted now, so that an upgrade does not call every one of them newly due.
    db.execute("""
        CREATE TABLE results_due_noted (
            nct_id TEXT PRIMARY KEY REFERENCES studies(nct_id), due_date TEXT NOT NULL
        ) WITHOUT ROWID""")
    db.execute("""
        INSERT INTO results_due_noted SELECT nct_id, results_due_date FROM studies
        WHERE results_state = 'applicable' AND date(results_due_date, '+30 days') < date('now')""")


@migrations()
def m008_membership_ways_and_fetch_times(db: Database) -> None:
    # How each pull settled its topic's membership (full, listing, changed), and when each study was last
    # received from the API, for the rolling refresh of the studies fetched longest ago. A study with no row
    # has not been fetched since this migration (or only imported): it counts as the oldest.
    db.execute("ALTER TABLE pulls ADD COLUMN reconciled TEXT")
    db.execute("""
        CREATE TABLE study_fetches (
            nct_id TEXT PRIMARY KEY REFERENCES studies(nct_id), fetched_at TEXT NOT NULL
        ) WITHOUT ROWID""")
    db.execute("CREATE INDEX study_fetches_by_age ON study_fetches (fetched_at, nct_id)")


@migrations()
def m009_schema_drift(db: Database) -> None:
    # The API's data model (/studies/metadata) as each pull that saw a new apiVersion fetched it, flattened to
    # dotted paths (JSON object: path -> 1 for a leaf, 0 for a field with fields below it); and what drifted
    # from it, noted once each: a field records carry that the model lacks, a field that left the model, a
    # status outside the 14 known.
    db.execute("""
        CREATE TABLE data_models (
            id INTEGER PRIMARY KEY,
            api_version TEXT NOT NULL,
            fetched_at TEXT NOT NULL,
            pull_id INTEGER REFERENCES pulls(id),
            paths TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE drift_notes (
            kind TEXT NOT NULL,            -- unknown field | vanished field | unknown status
            value TEXT NOT NULL,           -- the dotted path, or the status
            nct_id TEXT,                   -- the first study seen with it (none for a vanished field); no foreign
                                           -- key: noted when read, before the page holding it is written
            api_version TEXT,              -- of the data model it was checked against
            pull_id INTEGER REFERENCES pulls(id),
            noted_at TEXT NOT NULL,
            PRIMARY KEY (kind, value)
        ) WITHOUT ROWID""")


@migrations()
def m010_search_index_deferred_by_the_writer(db: Database) -> None:
    # While the writer holds a row here (only inside its own transaction, so no other connection ever sees one),
    # the full-text triggers stand aside and the writer indexes a page's studies in one statement: FTS5 writes its
    # pending text out at every statement that touches it, so a trigger per row costs a segment per row, and a
    # pull spent more time merging those than storing the studies. The triggers of migration 6 (every trigger
    # that writes the index) are made again with that condition.
    db.execute("CREATE TABLE search_index_deferred (deferred INTEGER PRIMARY KEY)")
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%studies_fts%'"
                              ).fetchall():
        db.execute(f"DROP TRIGGER {name}")
    _create_search_triggers(db, unless="EXISTS (SELECT 1 FROM search_index_deferred)")


# The lists a study record holds and the type of their items, as the API's spec gives them: an earlier release
# accepted a record with another shape there, and nothing is derived from such a list (see ``odd_records``).
_LISTS = (
    ("protocolSection.identificationModule.secondaryIdInfos", "object"),
    ("protocolSection.sponsorCollaboratorsModule.collaborators", "object"),
    ("protocolSection.conditionsModule.conditions", "text"),
    ("protocolSection.conditionsModule.keywords", "text"),
    ("protocolSection.designModule.phases", "text"),
    ("protocolSection.armsInterventionsModule.interventions", "object"),
    ("protocolSection.outcomesModule.primaryOutcomes", "object"),
    ("protocolSection.contactsLocationsModule.centralContacts", "object"),
    ("protocolSection.contactsLocationsModule.locations", "object"),
    ("protocolSection.referencesModule.references", "object"),
    ("derivedSection.conditionBrowseModule.meshes", "object"),
    ("derivedSection.interventionBrowseModule.meshes", "object"),
)


# The lists of a record's results that migration 7 derives tables from; a release before it stored a record
# whatever its results held.
_RESULT_LISTS = tuple((f"resultsSection.{path}", "object") for path in (
    "participantFlowModule.groups", "participantFlowModule.periods", "baselineCharacteristicsModule.groups",
    "baselineCharacteristicsModule.denoms", "baselineCharacteristicsModule.measures",
    "outcomeMeasuresModule.outcomeMeasures", "adverseEventsModule.eventGroups", "adverseEventsModule.seriousEvents",
    "adverseEventsModule.otherEvents"))


def _odd_lists(conn: sqlite3.Connection, lists: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """(NCT id, path) of each stored record whose list at a path of ``lists`` is not a list of the item type
    given beside it."""
    found = []
    for path, item in lists:
        json_path = f"$.{path}"
        found += [(row[0], path) for row in conn.execute(f"""
            SELECT nct_id FROM studies
            WHERE json_type(raw, '{json_path}') NOT IN ('null') AND (json_type(raw, '{json_path}') <> 'array'
                OR EXISTS (SELECT 1 FROM json_each(raw, '{json_path}') x WHERE x.type <> '{item}'))""")]
    return found


def odd_records(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(NCT id, field) of each stored record with a list of another shape than the API's spec gives (an object
    where a list belongs, strings where objects belong): what is derived from that field is left empty."""
    found = _odd_lists(conn, _LISTS)
    locations = f"{_P}.contactsLocationsModule.locations"
    found += [(row[0], "protocolSection.contactsLocationsModule.locations.contacts") for row in conn.execute(f"""
        SELECT DISTINCT s.nct_id FROM studies s, json_each(s.raw, '{locations}') l
        WHERE {_objects("s.raw", locations)} AND json_type(l.value, '$.contacts') NOT IN ('null')
          AND NOT ({_objects(_object_or_empty("l"), "$.contacts")})""")]
    return sorted(set(found))


def odd_results(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(NCT id, field) of each stored record whose results hold a list of another shape than the API's spec
    gives: the results tables derived from that field are left empty."""
    return sorted(set(_odd_lists(conn, _RESULT_LISTS)))


def migrate(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Apply every pending migration and stamp the schema version, all in one transaction. Harmless twice.

    Returns (NCT id, field) of each stored record whose field had a shape nothing could be derived from, of the
    fields this upgrade derived tables from (the protocol's lists from a schema before 3, the results' from a
    schema before 7); else nothing."""
    with transaction(conn):
        before = conn.execute("PRAGMA user_version").fetchone()[0]
        migrations.apply(Database(conn, execute_plugins=False))
        applied = len(migrations.applied(Database(conn, execute_plugins=False)))
        assert applied == SCHEMA_VERSION, f"{applied} migrations applied, schema version is {SCHEMA_VERSION}"
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return sorted(set((odd_records(conn) if before < 3 else []) + (odd_results(conn) if before < 7 else [])))
