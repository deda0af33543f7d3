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


def _imports(path) -> set[str]:
    """Top-level names of every module a Python file imports (import x / from x import y, at any depth)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_library_never_imports_streamlit():
    offenders = [path.name for path in (PROJECT / "t3vis").rglob("*.py")
                 if any(name.split(".")[0] == "streamlit" for name in _imports(path))]
    assert offenders == []


def test_production_code_never_imports_the_fixtures():
    offenders = [str(path.relative_to(PROJECT)) for path in (PROJECT / "t3vis").rglob("*.py")
                 if "fixtures" not in path.parts and any(name.startswith("t3vis.fixtures") for name in _imports(path))]
    assert offenders == []


def test_each_subpackage_says_its_job():
    for init in (PROJECT / "t3vis").glob("*/__init__.py"):
        assert init.read_text().startswith('"""'), f"{init} has no docstring naming its job"


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
