"""The operator's list of stores a visitor may open (T3VIS_ALLOWED_STORES), on resolved paths."""

from __future__ import annotations

import os

import pytest

from t3vis.errors import StoreError
from t3vis.store.allowed_stores import check_store_allowed, store_allowed
from t3vis.store.database import DEFAULT_DEMO_PATH


@pytest.fixture()
def disk(tmp_path, monkeypatch):
    """An allowed folder and a store file beside it that is not allowed; no default store set."""
    (tmp_path / "allowed" / "deep").mkdir(parents=True)
    (tmp_path / "allowed-secret").mkdir()
    (tmp_path / "private").mkdir()
    for name in ("allowed/a.duckdb", "allowed/deep/b.duckdb", "allowed-secret/s.duckdb", "private/p.duckdb"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.delenv("T3VIS_STORE", raising=False)
    monkeypatch.setenv("T3VIS_ALLOWED_STORES", str(tmp_path / "allowed"))
    return tmp_path


def test_every_store_is_allowed_when_the_operator_lists_none(disk, monkeypatch):
    monkeypatch.delenv("T3VIS_ALLOWED_STORES")
    assert store_allowed(disk / "private" / "p.duckdb") and store_allowed("/etc/passwd")


def test_a_folder_allows_every_store_under_it_and_nothing_beside_it(disk):
    assert store_allowed(disk / "allowed" / "a.duckdb")
    assert store_allowed(disk / "allowed" / "deep" / "b.duckdb")
    assert store_allowed(disk / "allowed" / "new.duckdb")  # not there yet: the app then offers to record into it
    assert not store_allowed(disk / "private" / "p.duckdb")
    assert not store_allowed(disk / "allowed-secret" / "s.duckdb")  # a name that merely starts the same
    assert not store_allowed("/etc/passwd")


def test_dot_dot_and_links_cannot_leave_an_allowed_folder(disk):
    assert not store_allowed(disk / "allowed" / ".." / "private" / "p.duckdb")
    assert not store_allowed(f"{disk}/allowed/deep/../../private/p.duckdb")
    (disk / "allowed" / "link.duckdb").symlink_to(disk / "private" / "p.duckdb")
    (disk / "allowed" / "folder-link").symlink_to(disk / "private")
    assert not store_allowed(disk / "allowed" / "link.duckdb")
    assert not store_allowed(disk / "allowed" / "folder-link" / "p.duckdb")


def test_listed_files_and_several_entries(disk, monkeypatch):
    monkeypatch.setenv("T3VIS_ALLOWED_STORES", os.pathsep.join([str(disk / "private" / "p.duckdb"), "",
                                                                str(disk / "allowed" / "deep")]))
    assert store_allowed(disk / "private" / "p.duckdb") and store_allowed(disk / "allowed" / "deep" / "b.duckdb")
    assert not store_allowed(disk / "private" / "other.duckdb") and not store_allowed(disk / "allowed" / "a.duckdb")
    (disk / "allowed" / "to-p.duckdb").symlink_to(disk / "private" / "p.duckdb")
    assert store_allowed(disk / "allowed" / "to-p.duckdb")  # a link to a listed store is that store


def test_relative_paths_are_resolved_against_the_working_folder(disk, monkeypatch):
    monkeypatch.chdir(disk / "allowed")
    assert store_allowed("a.duckdb") and store_allowed("deep/b.duckdb")
    assert not store_allowed("../private/p.duckdb")


def test_the_default_store_is_always_allowed(disk, monkeypatch):
    assert store_allowed(DEFAULT_DEMO_PATH)  # no T3VIS_STORE: the demo's path
    monkeypatch.setenv("T3VIS_STORE", str(disk / "private" / "p.duckdb"))
    assert store_allowed(disk / "private" / "p.duckdb") and not store_allowed(DEFAULT_DEMO_PATH)
    monkeypatch.setenv("T3VIS_ALLOWED_STORES", "")  # set but empty: the default store only
    assert store_allowed(disk / "private" / "p.duckdb") and not store_allowed(disk / "allowed" / "a.duckdb")


def test_a_refusal_is_one_line_naming_the_setting(disk):
    check_store_allowed(disk / "allowed" / "a.duckdb")
    with pytest.raises(StoreError, match="T3VIS_ALLOWED_STORES") as refused:
        check_store_allowed(disk / "private" / "p.duckdb")
    assert len(str(refused.value).splitlines()) == 1 and str(disk / "private" / "p.duckdb") in str(refused.value)
