"""Metadata for browsing the database with Datasette (the stable 0.65 release's metadata.json): where the data
comes from and on what terms, what each table, view and column holds, the facets worth clicking, the column
that names a row, and the full-text index that serves the search box."""

from __future__ import annotations

from .formats import to_json

SOURCE = "ClinicalTrials.gov, U.S. National Library of Medicine"
SOURCE_URL = "https://clinicaltrials.gov/"
LICENSE = "ClinicalTrials.gov Terms and Conditions (U.S. National Library of Medicine)"
LICENSE_URL = "https://clinicaltrials.gov/about-site/terms-conditions"

_STUDY_FACETS = ["overall_status", "phases", "lead_sponsor_class"]
_SEARCH = {"fts_table": "studies_fts", "fts_pk": "rowid"}  # the index's rowid is the study row's rowid

_STUDY_COLUMNS = {
    "nct_id": "ClinicalTrials.gov identifier (NCT number)",
    "brief_title": "Short title, as registered",
    "official_title": "Full title, as registered",
    "acronym": "The study's acronym",
    "overall_status": "Recruitment status (RECRUITING, COMPLETED, ...)",
    "last_known_status": "For UNKNOWN: the status last reported before verification lapsed",
    "why_stopped": "Why a suspended, terminated or withdrawn study stopped",
    "study_type": "INTERVENTIONAL, OBSERVATIONAL or EXPANDED_ACCESS",
    "phases": "Phases, comma-separated (PHASE1, PHASE2, ..., NA)",
    "enrollment_count": "Participants, actual or anticipated (see enrollment_type)",
    "start_date": "Start date as registered (YYYY-MM or YYYY-MM-DD); start_date_sort is YYYY-MM-DD",
    "last_update_posted": "When the record was last updated on ClinicalTrials.gov",
    "lead_sponsor": "Lead sponsor's name",
    "lead_sponsor_class": "Lead sponsor's class (INDUSTRY, NIH, FED, OTHER, ...)",
    "has_results": "1 if results are posted",
    "raw": "The record exactly as the API sent it (JSON text)",
}


def _columns(*names: str, **extra: str) -> dict[str, str]:
    """Descriptions of the study columns ``names``, plus ``extra``."""
    return {**{name: _STUDY_COLUMNS[name] for name in names}, **extra}


def _tables() -> dict[str, dict]:
    """The metadata of each table and view, by name."""
    return {
        "studies": {
            "description": "One row per study: the record's main fields, and the record itself in raw",
            "label_column": "brief_title", "facets": _STUDY_FACETS, "sort_desc": "last_update_posted",
            "columns": _STUDY_COLUMNS, **_SEARCH,
        },
        "studies_search": {
            "description": "The text the search box searches: titles, acronym, summary, conditions, interventions "
                           "and keywords (lists joined with ' ; ')",
            **_SEARCH,
        },
        "studies_with_topics": {
            "description": "One row per study with the topics that hold it now and its ClinicalTrials.gov page",
            "label_column": "brief_title", "facets": [*_STUDY_FACETS, "study_type"],
            "columns": _columns("nct_id", "brief_title", "overall_status", "phases", "lead_sponsor_class",
                                topics="The topics whose search returns the study now, comma-separated",
                                url="The study's page on ClinicalTrials.gov"),
        },
        "topic_status_counts": {
            "description": "How many of each topic's studies are in each overall status (as status-report counts "
                           "them; NONE: a record without a status)",
            "facets": ["topic"],
            "columns": {"topic": "Topic name", "overall_status": "Recruitment status",
                        "studies": "Studies of the topic in that status"},
        },
        "recent_changes": {
            "description": "What changed, newest first, with the study's title",
            "facets": ["field", "topic"],
            "columns": {"observed_at": "When trialsync saw the change (UTC)",
                        "field": "The field that changed, or membership (a study joining or leaving a topic), "
                                 "a site's or publication's event, or warning",
                        "item": "The site or PubMed id the change is about", "old": "Value before",
                        "new": "Value after", "topic": "For a membership event: its topic; empty for a change to "
                                                      "the study itself"},
        },
        "sites": {
            "description": "Each study's sites with the study's title and status; latitude and longitude are the "
                           "API's geoPoint (a city centre), for map plugins",
            "facets": ["country", "site_status", "overall_status"],
            "columns": {"site_status": "The site's recruitment status", "latitude": "Latitude of the site's city",
                        "longitude": "Longitude of the site's city"},
        },
        "topics": {"description": "The topics followed: each one's API search and sync state", "label_column": "name"},
        "topic_studies": {
            "description": "Which studies each topic's search returned; present = 0 once a study left the topic",
            "facets": ["topic", "present"],
        },
        "pulls": {"description": "One row per pull or import: when, its outcome, and what it received",
                  "facets": ["topic", "kind", "outcome"], "sort_desc": "id"},
        "changes": {"description": "The change log (recent_changes adds the study's title)",
                    "facets": ["field", "topic"], "sort_desc": "id"},
        "versions": {"description": "Each earlier record of a study (zlib-compressed JSON), kept when it changed"},
        "locations": {"description": "Each study's sites, in the record's order (sites adds the study)",
                      "facets": ["country", "status"]},
        "conditions": {"description": "Each study's conditions, in the record's order", "facets": ["condition"]},
        "interventions": {"description": "Each study's interventions", "facets": ["type"]},
        "sponsors": {"description": "Each study's lead sponsor and collaborators", "facets": ["role", "class"]},
        "study_countries": {"description": "The countries of each study's sites, each once", "facets": ["country"]},
        "location_contacts": {"description": "The contacts of each site (location_seq is its locations.seq)"},
        "central_contacts": {"description": "Each study's central contacts, for all of its sites"},
        "keywords": {"description": "Each study's keywords, as registered", "facets": ["keyword"]},
        "mesh_terms": {"description": "The MeSH terms the registry derived for each study's conditions and "
                                      "interventions", "facets": ["kind", "term"]},
        "primary_outcomes": {"description": "Each study's primary outcome measures, as registered"},
        "secondary_ids": {"description": "Each study's other identifiers (registry, grant, sponsor numbers)",
                          "facets": ["type"]},
        "study_references": {"description": "Each study's publications by PubMed id (BACKGROUND, RESULT or DERIVED)",
                             "facets": ["type"]},
        "studies_fts": {"description": "Internal: the full-text index of studies_search (SQLite FTS5)", "hidden": True},
        "pull_status_counts": {"description": "Each complete pull's counts by status (the trend in status-report)"},
        "site_points": {"description": "Internal: the 1-degree cells of each study's sites, for list --near",
                        "hidden": True},
        "digest_backlog": {"description": "Internal: changes a topic's digest still owes", "hidden": True},
        "search_index_deferred": {"description": "Internal: holds a row only while trialsync's writer indexes the "
                                                 "studies it saves itself", "hidden": True},
        "study_fetches": {"description": "Internal: when each study was last received from the API", "hidden": True},
        "results_due_noted": {"description": "Internal: studies the change log has called due, once each",
                              "hidden": True},
        "data_models": {"description": "Internal: the API's data model (/studies/metadata) as pulls fetched it, "
                                       "by apiVersion, flattened to dotted paths", "hidden": True},
        "drift_notes": {"description": "Schema drift, noted once each: fields records carry that the API's data "
                                       "model lacks, fields that left the model, statuses outside the 14 known",
                        "facets": ["kind"]},
        "result_groups": {"description": "Each study's results groups (AACT's result_groups)",
                          "facets": ["result_type"]},
        "milestones": {"description": "Participants starting and completing each period, per group (AACT's milestones)",
                       "facets": ["title"]},
        "drop_withdrawals": {"description": "Why participants left, per period and group", "facets": ["reason"]},
        "baseline_counts": {"description": "Participants per group at baseline"},
        "baseline_measurements": {"description": "Baseline measures per group, class and category"},
        "outcomes": {"description": "One row per outcome measure of a study's results", "facets": ["outcome_type"]},
        "outcome_counts": {"description": "Participants analysed per outcome and group"},
        "outcome_measurements": {"description": "Each outcome's values per group, class and category"},
        "outcome_analyses": {"description": "Each outcome's statistical analyses (p-value, method)",
                             "facets": ["method"]},
        "reported_events": {"description": "Adverse events: one row per term and group",
                            "facets": ["event_type", "organ_system"]},
        "reported_event_totals": {"description": "Adverse events in all, per group: serious, other, deaths",
                                  "facets": ["event_type"]},
        "result_contacts": {"description": "The point of contact for a study's results"},
        "_sqlite_migrations": {"description": "Internal: the schema migrations applied", "hidden": True},
    }


def datasette_metadata(database: str) -> dict:
    """Datasette metadata (0.65's metadata.json) for a trialsync database that Datasette names ``database``
    (the file's name without its extension)."""
    return {
        "title": "trialsync: ClinicalTrials.gov studies",
        "description": "A local mirror of the ClinicalTrials.gov studies of the topics trialsync follows",
        "source": SOURCE, "source_url": SOURCE_URL, "license": LICENSE, "license_url": LICENSE_URL,
        "databases": {database: {"tables": _tables()}},
    }


def datasette_metadata_json(database: str) -> str:
    """``datasette_metadata(database)`` as indented JSON text."""
    return to_json(datasette_metadata(database))
