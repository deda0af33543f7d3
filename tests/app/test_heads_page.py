"""The Attention Head page with AppTest: toggles change the rendered data; pruning changes and reset restores."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from helpers import PROJECT
from page_helpers import chart_with, open_page, vega_charts
from t3vis.data.loading import load_examples
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import Store
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

PAGE = str(PROJECT / "pages" / "heads.py")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build_synthetic_store(tmp_path_factory.mktemp("heads") / "s.duckdb",
                                 SyntheticConfig(n_examples=50, n_train=0, num_layers=3, num_heads=4))


@pytest.fixture()
def tiny_store(tmp_path, tiny_model_dir, tiny_bundle, topic_csv):
    store = Store(tmp_path / "tiny.duckdb", create=True)
    examples = load_examples(topic_csv)
    ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint="c1", step=1, path=str(tiny_model_dir),
                      config=IngestConfig(projection="none", batch_size=4, importance_examples=-1))
    return store


def _open(store: Store, **state) -> AppTest:
    return open_page(PAGE, store.path, **state)


def _grid(app: AppTest):
    """Data of the head grid (the chart with the 'head' selection)."""
    [(_, data)] = chart_with(app, "head")
    return data


def _probabilities(app: AppTest) -> list[np.ndarray]:
    """Class probabilities of the probability charts, in page order, sorted by label."""
    frames = [max(datasets.values(), key=len) for _, datasets in vega_charts(app)]
    return [frame.sort_values("label").probability.to_numpy() for frame in frames if "probability" in frame]


def test_aggregate_importance_shows_the_stored_values_and_the_normalisation_changes_them(synthetic):
    app = _open(synthetic)
    assert not app.exception
    grid = _grid(app).sort_values(["layer", "head"])
    stored = synthetic.query("SELECT importance_global, importance_layer_norm FROM head_importance "
                             "WHERE checkpoint = 'epoch-3' ORDER BY layer, head")
    assert np.allclose(grid.value, stored.importance_global)
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == labels.count("PNG") == 1  # the grid exports as a figure
    next(w for w in app.selectbox if w.key == "w.heads_norm").set_value("importance_layer_norm").run()
    assert np.allclose(_grid(app).sort_values(["layer", "head"]).value, stored.importance_layer_norm)


def test_pattern_toggle_shows_one_heatmap_per_head(synthetic):
    app = _open(synthetic)
    next(w for w in app.radio if w.key == "w.heads_show").set_value("pattern").run()
    assert not app.exception
    grid = _grid(app)
    assert {"query", "key", "weight"} <= set(grid.columns)
    assert len(grid) == 3 * 4 * 8 * 8  # layers x heads x bins x bins
    assert np.allclose(grid.groupby(["layer", "head", "query"]).weight.sum(), 1.0, atol=1e-4)


def test_difference_to_another_checkpoint(synthetic):
    app = _open(synthetic, heads_compare="epoch-1")
    assert not app.exception
    values = synthetic.query("""SELECT a.importance_global - b.importance_global AS d FROM head_importance a
                                JOIN head_importance b USING (run_id, split, layer, head)
                                WHERE a.checkpoint = 'epoch-3' AND b.checkpoint = 'epoch-1' ORDER BY layer, head""")
    assert np.allclose(_grid(app).sort_values(["layer", "head"]).value, values.d)


def test_instance_scale_without_weights_explains_why(synthetic):
    app = _open(synthetic, heads_scale="instance", split="validation", example_id=1)
    assert not app.exception
    assert any("not on disk" in info.value for info in app.info)


def test_instance_scale_differs_from_aggregate_and_pruning_changes_then_reset_restores(tiny_store):
    app = _open(tiny_store, split="validation", example_id=2)
    aggregate = _grid(app).sort_values(["layer", "head"]).value.to_numpy()
    next(w for w in app.radio if w.key == "w.heads_scale").set_value("instance").run()
    assert not app.exception
    instance = _grid(app).sort_values(["layer", "head"]).value.to_numpy()
    assert instance.shape == aggregate.shape and not np.allclose(instance, aggregate)
    before_all, before_pruned = _probabilities(app)
    assert np.allclose(before_all, before_pruned)
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == labels.count("PNG") == 3  # the grid and both probability charts

    app.session_state["pruned"] = {"tiny": [(0, 1), (1, 2)]}
    app.run()
    assert not app.exception
    unpruned, pruned = _probabilities(app)
    assert np.allclose(unpruned, before_all) and not np.allclose(pruned, before_all, atol=1e-6)
    assert any("Pruned: L0·H1, L1·H2" in caption.value for caption in app.caption)
    pruned_grid = _grid(app)
    assert set(pruned_grid[pruned_grid.pruned].apply(lambda r: (r.layer, r["head"]), axis=1)) == {(0, 1), (1, 2)}

    next(b for b in app.button if b.label == "Reset pruning").click().run()
    assert not app.exception
    again_all, again_pruned = _probabilities(app)
    assert np.array_equal(again_pruned, before_all) and np.array_equal(again_all, before_all)


def test_measuring_the_pruned_model_on_the_evaluation_set(tiny_store):
    app = _open(tiny_store, split="validation", example_id=2, pruned={"tiny": [(0, 0), (0, 1), (0, 2)]})
    next(b for b in app.button if b.label == "Measure on the whole evaluation set").click().run()
    assert not app.exception
    table = app.dataframe[0].value
    assert table.model.tolist() == ["all heads", "3 heads pruned"]
    assert (table.examples == 15).all() and table.loss.iloc[0] != table.loss.iloc[1]
    stored = tiny_store.scalar("SELECT avg(loss) FROM predictions WHERE checkpoint = 'c1'")
    assert table.loss.iloc[0] == pytest.approx(stored, rel=1e-4)
