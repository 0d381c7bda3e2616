"""Bulk jobs run with the cycle collector's first generation raised, and put it back however they end."""

from __future__ import annotations

import gc

import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record
from fakeapi import Corpus, FakeApi
from trialsync import store
from trialsync.sync import saving as saving_module
from trialsync.api import ApiClient
from trialsync.errors import TrialsyncError
from trialsync.sync import files, pull as pull_module
from trialsync.sync.collector import BULK_THRESHOLD, fewer_collections
from trialsync.sync.pull import PullOptions, pull_topic
from trialsync.topics import BUILTIN_TOPICS

TOPIC = BUILTIN_TOPICS["stem-cell-spine"]


@pytest.fixture(autouse=True)
def default_threshold():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_the_threshold_is_raised_inside_and_restored_after():
    with fewer_collections():
        assert gc.get_threshold() == (BULK_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_is_restored_when_the_body_fails():
    with pytest.raises(ValueError), fewer_collections():
        raise ValueError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_set_by_the_caller_is_kept():
    gc.set_threshold(BULK_THRESHOLD * 2, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == BULK_THRESHOLD * 2


def _record_thresholds(monkeypatch, module) -> list[int]:
    seen: list[int] = []
    real = module.save_studies

    def save(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "save_studies", save)
    return seen


def test_a_pull_saves_its_pages_with_the_raised_threshold_and_restores_it(db, monkeypatch):
    seen = _record_thresholds(monkeypatch, saving_module)
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as api:
        store.save_topic(db, TOPIC)
        pull_topic(db, ApiClient(base_url=api.url, rate=0), TOPIC.name, PullOptions())
    assert seen and set(seen) == {BULK_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)


def test_a_failed_pull_restores_the_threshold(db, monkeypatch):
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as api:
        store.save_topic(db, TOPIC)
        monkeypatch.setattr(saving_module, "save_studies", lambda *a, **k: (_ for _ in ()).throw(TrialsyncError("x")))
        with pytest.raises(TrialsyncError):
            pull_topic(db, ApiClient(base_url=api.url, rate=0), TOPIC.name, PullOptions())
    assert gc.get_threshold() == (700, 10, 10)


def test_an_import_saves_with_the_raised_threshold_and_restores_it(db, monkeypatch):
    seen = _record_thresholds(monkeypatch, saving_module)
    files.import_records(db, [fixture_record(i) for i in SPINE_CONDITION_IDS], TOPIC.name, source="ctg-studies.json")
    assert seen and set(seen) == {BULK_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)
