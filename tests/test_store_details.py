"""The store's save path where mutation testing (mutmut on store/studies.py, from a helper session) found it
untested: a reformatted record in a new data release, an import older only by its data release, dates that
are not dates, sites without a name, references without a type, the site points and full-text rows of
replaced studies, api_seen, and id lists longer than two chunks. Every record is a real fixture record or a
copy derived from one here."""

from __future__ import annotations

import orjson

from conftest import SPINE_CONDITION_IDS, fixture_record, table_dump, with_status
from trialsync import store
from trialsync.store.studies import (
    API, CHANGED, FILE, OLDER, REFRESHED, SAME, SaveContext, StoredStudy, diff_study, save_studies,
    stored_raw_and_date,
)
from trialsync.topics import Topic
from trialsync.transform import TRACKED_FIELDS, study_rows


def context(db, topic="spine", log_membership=False, source=API) -> SaveContext:
    if store.topic_state(db, topic) is None:
        store.save_topic(db, Topic(topic, {"query.cond": topic}))
    return SaveContext(topic, store.start_pull(db, topic), source, log_membership, "2026-11-24")


def stored_of(record) -> StoredStudy:
    rows = study_rows(record)
    return StoredStudy(rows.value("raw"), rows.value("last_update_posted"), rows.value("version_holder"),
                       tuple(rows.value(name) for name in TRACKED_FIELDS))


def pretty(record):
    return study_rows(record, orjson.dumps(record, option=orjson.OPT_INDENT_2))


def logged(db):
    return db.execute("SELECT nct_id, field, old, new, item FROM changes ORDER BY id").fetchall()


def test_a_reformatted_record_in_a_new_data_release_is_refreshed_not_changed():
    original = fixture_record("NCT05489822")
    release = fixture_record("NCT05489822")
    release["derivedSection"]["miscInfoModule"]["versionHolder"] = "2026-11-24"
    assert diff_study(stored_of(original), pretty(release), API).verdict == REFRESHED
    assert diff_study(stored_of(original), pretty(release), FILE).verdict == SAME


def test_a_reformatted_record_whose_other_misc_info_moved_is_changed():
    record = fixture_record("NCT00668135")  # its misc info lists a removed country besides the release
    later = fixture_record("NCT00668135")
    later["derivedSection"]["miscInfoModule"]["removedCountries"] = []
    diff = diff_study(stored_of(record), pretty(later), API)
    assert (diff.verdict, diff.changes) == (CHANGED, ())


def test_an_import_older_only_by_its_data_release_is_skipped(db):
    original = fixture_record("NCT05489822")
    later = with_status(original, "COMPLETED")  # the same last update posted date, a later data release
    later["derivedSection"]["miscInfoModule"]["versionHolder"] = "2026-11-24"
    assert diff_study(stored_of(later), study_rows(original), FILE).verdict == OLDER
    assert diff_study(stored_of(later), study_rows(original), API).verdict == CHANGED
    save_studies(db, [study_rows(later)], context(db))
    before = table_dump(db)
    counts = save_studies(db, [study_rows(original)], context(db, source=FILE))
    assert (counts.older, counts.updated, counts.unchanged) == (1, 0, 1)
    after = table_dump(db)
    before["pulls"] = after["pulls"] = None
    assert after == before


def test_a_last_update_that_is_not_a_date_decides_nothing_on_either_side():
    original = fixture_record("NCT05489822")
    undated = with_status(original, "COMPLETED", updated="Jan 2024")
    # new release is the same: neither record is older, so an import's copy is a change, whichever is stored
    diff = diff_study(stored_of(original), study_rows(undated), FILE)
    assert (diff.verdict, diff.changes) == (CHANGED, (("overall_status", "RECRUITING", "COMPLETED"),))
    diff = diff_study(stored_of(undated), study_rows(original), FILE)
    assert (diff.verdict, diff.changes) == (CHANGED, (("overall_status", "COMPLETED", "RECRUITING"),))


def test_a_site_that_loses_its_name_is_logged_as_an_unnamed_site(db):
    original = fixture_record("NCT05489822")
    save_studies(db, [study_rows(original)], context(db))
    later = with_status(original, "RECRUITING")
    site = later["protocolSection"]["contactsLocationsModule"]["locations"][0]
    for key in ("facility", "city", "state", "country"):
        del site[key]
    save_studies(db, [study_rows(later)], context(db))
    assert logged(db) == [
        ("NCT05489822", "site_added", None, "RECRUITING", "unnamed site"),
        ("NCT05489822", "site_removed", "RECRUITING", None,
         "University of Illinois Hospital and Health Sciences System - UI Health, Chicago, Illinois, United States"),
    ]


def test_a_stored_reference_without_a_type_is_not_reported_again(db):
    original = fixture_record("NCT05489822")
    del original["protocolSection"]["referencesModule"]["references"][0]["type"]
    save_studies(db, [study_rows(original)], context(db))
    later = with_status(original, "COMPLETED", updated="2026-11-20")
    save_studies(db, [study_rows(later)], context(db))
    assert logged(db) == [("NCT05489822", "overall_status", "RECRUITING", "COMPLETED", None)]


def test_the_site_points_of_every_study_changed_in_one_page_are_replaced(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    assert sum(bool(study_rows(r).site_points) for r in records) >= 2  # at least two with mapped sites
    save_studies(db, [study_rows(r) for r in records], context(db))
    later = [with_status(r, "COMPLETED", updated="2026-11-20") for r in records]
    save_studies(db, [study_rows(r) for r in later], context(db))
    expected = sorted((cell, rowid, seq) for r in later
                      for rowid in [db.execute("SELECT rowid FROM studies WHERE nct_id = ?",
                                               [study_rows(r).nct_id]).fetchone()[0]]
                      for cell, seq in study_rows(r).site_points)
    assert db.execute("SELECT cell, study, seq FROM site_points ORDER BY 1, 2, 3").fetchall() == expected


def test_a_changed_study_leaves_no_trace_of_its_old_text_in_the_full_text_index(db):
    original = fixture_record("NCT05489822")
    save_studies(db, [study_rows(original)], context(db))
    later = with_status(original, "COMPLETED", updated="2026-11-20")
    later["protocolSection"]["conditionsModule"]["conditions"] = ["Cartilage Wear"]
    save_studies(db, [study_rows(later)], context(db))
    rowid = db.execute("SELECT rowid FROM studies WHERE nct_id = 'NCT05489822'").fetchone()[0]
    assert db.execute("SELECT rowid FROM studies_fts WHERE studies_fts MATCH 'cartilage'").fetchall() == [(rowid,)]
    assert db.execute("SELECT rowid FROM studies_fts WHERE studies_fts MATCH 'conditions: instabilities'").fetchall() == []


def test_a_study_only_files_have_sent_is_not_marked_seen_by_the_api_until_the_api_sends_it(db):
    record = fixture_record("NCT05489822")
    save_studies(db, [study_rows(record)], context(db, source=FILE))
    save_studies(db, [study_rows(record)], context(db, source=FILE))
    assert db.execute("SELECT api_seen FROM topic_studies").fetchall() == [(0,)]
    save_studies(db, [study_rows(record)], context(db))
    assert db.execute("SELECT api_seen FROM topic_studies").fetchall() == [(1,)]
    left = store.start_pull(db, "spine")
    assert store.mark_left(db, "spine", {"NCT05489822"}, left) == 1  # now its leaving is news


def test_a_record_without_misc_info_compares_by_content_whatever_its_formatting():
    record = fixture_record("NCT05489822")
    del record["derivedSection"]["miscInfoModule"]
    assert diff_study(stored_of(record), pretty(record), API).verdict == REFRESHED
    assert diff_study(stored_of(record), pretty(record), FILE).verdict == SAME


def test_stored_studies_are_found_among_more_ids_than_two_chunks_hold(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS[:3]]
    save_studies(db, [study_rows(r) for r in records], context(db))
    absent = [f"NCT9{n:07d}" for n in range(1100)]  # ids of no stored study, ahead of the stored ones
    found = stored_raw_and_date(db, absent + SPINE_CONDITION_IDS[:3])
    assert sorted(found) == sorted(SPINE_CONDITION_IDS[:3])
    assert {nct_id: orjson.loads(raw) for nct_id, (raw, _) in found.items()} == {
        r["protocolSection"]["identificationModule"]["nctId"]: r for r in records}
