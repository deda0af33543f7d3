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
