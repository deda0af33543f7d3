"""Each app page launched on its own with Streamlit's AppTest (AppTest does not support st.navigation)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from helpers import PROJECT
from t3vis.data.loading import load_examples
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import Store

PAGES = sorted(str(path) for path in (PROJECT / "pages").glob("*.py"))


def _page(path: str, store_path) -> AppTest:
    app = AppTest.from_file(path, default_timeout=60)
    app.session_state["store_path"] = str(store_path)
    return app.run()


@pytest.mark.parametrize("page", PAGES)
def test_page_explains_a_missing_store(page, tmp_path):
    app = _page(page, tmp_path / "absent.duckdb")
    assert not app.exception
    assert any("No store" in info.value for info in app.info)


@pytest.mark.parametrize("page", PAGES)
def test_page_explains_an_empty_store(page, tmp_path):
    Store(tmp_path / "empty.duckdb", create=True).initialise()
    app = _page(page, tmp_path / "empty.duckdb")
    assert not app.exception
    assert any("no runs" in info.value for info in app.info)


def test_overview_lists_runs_and_checkpoints(tmp_path, tiny_bundle, topic_csv):
    store = Store(tmp_path / "s.duckdb", create=True)
    examples = load_examples(topic_csv)
    for step in (1, 2):
        ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint=f"c{step}", step=step,
                          config=IngestConfig(projection="pca"))
    app = _page(str(PROJECT / "pages" / "overview.py"), store.path)
    assert not app.exception
    runs, checkpoints = app.dataframe[0].value, app.dataframe[1].value
    assert runs.run_id.tolist() == ["tiny"]
    assert checkpoints.checkpoint.tolist() == ["c1", "c2"]


def test_entry_file_only_routes():
    source = (PROJECT / "streamlit_app.py").read_text()
    assert "st.navigation" in source and "import t3vis" not in source and "duckdb" not in source


def test_overview_offers_to_build_the_demo_at_the_default_path_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default demo path, store/demo.duckdb, is relative to the working folder
    app = _page(str(PROJECT / "pages" / "overview.py"), "store/demo.duckdb")
    assert not app.exception
    assert [button.label for button in app.button] == ["Build the demo store"]
    assert any("built-in demo" in markdown.value for markdown in app.markdown)
    # any other path: no button, so a visitor cannot make the server write where they choose
    (tmp_path / "store").mkdir()
    for elsewhere in (tmp_path / "demo.duckdb", tmp_path / "store" / "sst2.duckdb"):
        app = _page(str(PROJECT / "pages" / "overview.py"), elsewhere)
        assert not app.exception
        assert len(app.button) == 0
        assert any("t3vis ingest" in markdown.value for markdown in app.markdown)
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["store"]


def test_a_demo_built_by_an_older_version_is_offered_for_rebuilding_other_old_stores_are_not(tmp_path,
                                                                                              monkeypatch):
    import duckdb

    monkeypatch.chdir(tmp_path)
    (tmp_path / "store").mkdir()
    for path, mark in (("store/demo.duckdb", True), ("store/mine.duckdb", False)):
        con = duckdb.connect(path)
        con.execute((PROJECT / "tests" / "data" / "schema_v4.sql").read_text())
        con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '4')")
        if mark:
            con.execute("INSERT INTO t3vis_meta VALUES ('demo_build', 'demo')")
        con.close()
    before = (tmp_path / "store" / "demo.duckdb").read_bytes()
    app = _page(str(PROJECT / "pages" / "overview.py"), "store/demo.duckdb")
    assert not app.exception
    assert any("built by an older t3vis" in info.value for info in app.info)
    assert [button.label for button in app.button] == ["Build the demo store"]
    app = _page(str(PROJECT / "pages" / "overview.py"), "store/mine.duckdb")
    assert not app.exception and len(app.button) == 0
    assert any("t3vis upgrade" in error.value for error in app.error)  # how to convert it, and nothing offered
    assert (tmp_path / "store" / "demo.duckdb").read_bytes() == before  # opening it changed nothing


def test_cached_reads_are_keyed_on_the_store_path_and_version(tmp_path, tiny_bundle, topic_csv):
    """The pages' cached reads return what was cached until a writer commits, then read the store afresh."""
    from t3vis_app import data

    store = Store(tmp_path / "s.duckdb", create=True)
    examples = load_examples(topic_csv)
    config = IngestConfig(projection="pca", importance_examples=0)
    ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint="c1", step=1, config=config)
    before = data.open_store(str(store.path))
    assert data.checkpoints(before, "tiny").checkpoint.tolist() == ["c1"]
    ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint="c2", step=2, config=config)
    after = data.open_store(str(store.path))
    assert after.version != before.version and after.database is before.database  # one Store per path
    assert data.checkpoints(after, "tiny").checkpoint.tolist() == ["c1", "c2"]
    assert data.checkpoints(before, "tiny").checkpoint.tolist() == ["c1"]  # the older version's cached answer
