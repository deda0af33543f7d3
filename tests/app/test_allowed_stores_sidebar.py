"""The store field refuses a store outside the operator's list (T3VIS_ALLOWED_STORES) before touching the file."""

from __future__ import annotations

import pytest

from helpers import PROJECT
from page_helpers import open_page
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store
from t3vis_app import data

PAGE = str(PROJECT / "pages" / "overview.py")


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """A served folder with a store, and a private folder with another store and a file that is not a store."""
    root = tmp_path_factory.mktemp("allowed-stores")
    for folder in ("served", "private"):
        build_synthetic_store(root / folder / "s.duckdb", SyntheticConfig(n_examples=20, n_train=0, n_checkpoints=1,
                                                                          layers=(1,), num_layers=2, num_heads=2))
    (root / "private" / "notes.txt").write_text("not a store")
    (root / "served" / "link.duckdb").symlink_to(root / "private" / "s.duckdb")
    return root


@pytest.fixture()
def served(disk, monkeypatch):
    monkeypatch.setenv("T3VIS_ALLOWED_STORES", str(disk / "served"))
    monkeypatch.setenv("T3VIS_STORE", str(disk / "served" / "s.duckdb"))
    opened = []
    open_store = data.open_store
    monkeypatch.setattr(data, "open_store", lambda path, *args, **kwargs: opened.append(path)
                        or open_store(path, *args, **kwargs))
    return opened


@pytest.mark.parametrize("outside", ["private/s.duckdb", "private/notes.txt", "private/absent.duckdb",
                                     "served/../private/s.duckdb", "served/link.duckdb"])
def test_a_store_outside_the_list_is_refused_with_one_message(disk, served, outside):
    app = open_page(PAGE, disk / outside)
    assert not app.exception
    [error] = app.error
    assert "does not open" in error.value and "T3VIS\\_ALLOWED\\_STORES" in error.value
    assert not app.info and not app.dataframe  # neither "No store at ... yet" nor anything of the store
    assert served == []  # the file was never opened


def test_a_store_inside_the_list_opens(disk, served):
    app = open_page(PAGE, disk / "served" / "s.duckdb")
    assert not app.exception and not app.error and app.dataframe
    assert served == [str(disk / "served" / "s.duckdb")]


def test_the_default_store_opens_without_being_listed(disk, served, monkeypatch):
    monkeypatch.setenv("T3VIS_ALLOWED_STORES", "")
    monkeypatch.setenv("T3VIS_STORE", str(disk / "private" / "s.duckdb"))
    app = open_page(PAGE, disk / "private" / "s.duckdb")
    assert not app.exception and not app.error and app.dataframe
