"""The Projection view and Data Table page, driven with AppTest: assertions on chart data and table rows."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from helpers import PROJECT
from page_helpers import chart_with, open_page, vega_charts
from t3vis.data.loading import load_examples
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import Store
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

PAGE = str(PROJECT / "pages" / "projection.py")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.duckdb"
    return build_synthetic_store(path, SyntheticConfig(n_examples=300, n_train=200))


def _open(store: Store, **state) -> AppTest:
    return open_page(PAGE, store.path, **state)


def charts(app: AppTest) -> list[tuple[dict, pd.DataFrame]]:
    """(Vega-Lite spec, data of the points layer) of every projection chart on the page."""
    return chart_with(app, "pick")


def _point_encoding(spec: dict) -> dict:
    return spec["layer"][0]["encoding"]


def _title(spec: dict) -> str:
    title = spec.get("title", "")
    return title["text"] if isinstance(title, dict) else title


def _widget(app: AppTest, kind: str, key: str):
    return next(widget for widget in getattr(app, kind) if widget.key == key)


def test_page_draws_every_example_and_a_matching_table(synthetic):
    app = _open(synthetic)
    assert not app.exception
    [(spec, data)] = charts(app)
    assert len(data) == 300 and set(data.example_id) == set(range(300))
    assert _point_encoding(spec)["color"]["field"] == "label"
    table = app.dataframe[0].value
    assert sorted(table.example_id) == list(range(300))
    assert {"text", "label", "prediction", "loss", "confidence"} <= set(table.columns)


def test_colour_by_a_continuous_attribute_uses_a_quantitative_scale(synthetic):
    app = _open(synthetic)
    _widget(app, "selectbox", "w.color").set_value("loss").run()
    assert not app.exception
    [(spec, data)] = charts(app)
    color = _point_encoding(spec)["color"]
    assert color["field"] == "loss" and color["type"] == "quantitative"
    stored = synthetic.query("SELECT example_id, loss FROM predictions WHERE checkpoint = 'epoch-3' ORDER BY 1")
    assert data.sort_values("example_id").loss.round(5).tolist() == stored.loss.round(5).tolist()


def test_a_label_filter_narrows_the_chart_and_the_table(synthetic):
    app = _open(synthetic)
    _widget(app, "multiselect", "w.filter_on").set_value(["label"]).run()
    _widget(app, "multiselect", "w.filter.label").set_value(["sports"]).run()
    assert not app.exception
    table = app.dataframe[0].value
    expected = synthetic.scalar("SELECT count(*) FROM examples WHERE split = 'validation' AND label_name = 'sports'")
    assert 0 < len(table) == expected < 300
    assert set(table.label) == {"sports"}
    [(_, data)] = charts(app)
    assert set(data.example_id) == set(table.example_id)


def test_a_range_filter_on_loss_keeps_only_examples_in_the_range(synthetic):
    app = _open(synthetic, filters={"loss": (0.0, 0.5)})
    assert not app.exception
    table = app.dataframe[0].value
    expected = synthetic.scalar("SELECT count(*) FROM predictions WHERE checkpoint = 'epoch-3' AND loss <= 0.5")
    assert len(table) == expected and table.loss.max() <= 0.5


def test_changing_the_checkpoint_moves_the_points(synthetic):
    app = _open(synthetic)
    [(_, late)] = charts(app)
    _widget(app, "selectbox", "w.checkpoint").set_value("epoch-1").run()
    [(_, early)] = charts(app)
    stored = synthetic.query("""SELECT example_id, x FROM projections
                                WHERE checkpoint = 'epoch-1' AND layer = 6 ORDER BY example_id""")
    assert early.sort_values("example_id").x.round(4).tolist() == stored.x.round(4).tolist()
    assert early.sort_values("example_id").x.tolist() != late.sort_values("example_id").x.tolist()


def test_comparison_mode_draws_two_projections_sharing_the_filters(synthetic):
    app = _open(synthetic, filters={"label": ["health", "science"]})
    _widget(app, "toggle", "w.compare").set_value(True).run()
    _widget(app, "selectbox", "w.compare_checkpoint").set_value("epoch-1").run()
    _widget(app, "selectbox", "w.compare_layer").set_value(3).run()
    assert not app.exception
    (left_spec, left), (right_spec, right) = charts(app)
    assert set(left.example_id) == set(right.example_id)
    assert set(app.dataframe[0].value.label) == {"health", "science"}
    assert "epoch-3" in _title(left_spec)
    assert "epoch-1" in _title(right_spec) and "layer 3" in _title(right_spec)
    stored = synthetic.query("""SELECT example_id, y FROM projections
                                WHERE checkpoint = 'epoch-1' AND layer = 3 ORDER BY example_id""")
    stored = stored[stored.example_id.isin(right.example_id)]
    assert right.sort_values("example_id").y.round(4).tolist() == stored.y.round(4).tolist()
    assert app.query_params["compare"] in ("1", ["1"])


def test_the_data_map_layout_places_points_at_variability_and_confidence(synthetic):
    app = _open(synthetic)
    _widget(app, "selectbox", "w.layout_choice").set_value(("datamap", "train", "examples")).run()
    _widget(app, "selectbox", "w.color").set_value("region").run()
    assert not app.exception
    [(spec, data)] = charts(app)
    assert _point_encoding(spec)["color"]["field"] == "region"
    assert set(data.region) == {"easy-to-learn", "ambiguous", "hard-to-learn", "other"}
    stored = synthetic.query("SELECT example_id, variability, confidence FROM data_map ORDER BY example_id")
    data = data.sort_values("example_id")
    assert data.x.round(5).tolist() == stored.variability.round(5).tolist()
    assert data.y.round(5).tolist() == stored.confidence.round(5).tolist()


def test_a_selected_example_is_ringed_marked_in_the_table_and_shown(synthetic):
    app = _open(synthetic, split="validation", example_id=7)
    assert not app.exception
    [(spec, points)] = charts(app)
    [datasets] = [datasets for chart_spec, datasets in vega_charts(app) if chart_spec == spec]
    ring = datasets[spec["layer"][1]["data"]["name"]]
    assert ring.example_id.tolist() == [7]
    assert ring[["x", "y"]].values.tolist() == points.loc[points.example_id == 7, ["x", "y"]].values.tolist()
    table = app.dataframe[0].value
    assert bool(table.set_index("example_id").selected[7])
    assert table.selected.sum() == 1
    text = synthetic.scalar("SELECT text FROM examples WHERE split = 'validation' AND example_id = 7")
    assert any(text in element.value for element in app.text)


def test_page_works_on_a_really_ingested_store(tmp_path, tiny_bundle, topic_csv):
    store = Store(tmp_path / "real.duckdb", create=True)
    examples = load_examples(topic_csv)
    for step in (1, 2):
        ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint=f"c{step}", step=step,
                          config=IngestConfig(projection="pca", layers=(1, 2)))
    app = _open(store)
    assert not app.exception
    [(spec, data)] = charts(app)
    assert len(data) == 15
    assert app.dataframe[0].value.prediction.notna().all()


@pytest.mark.parametrize("filters", [
    (),
    ("label", ["sports", "health"]),
    ("loss", (0.05, 1.0)),
])
def test_in_memory_filtering_equals_filtering_in_the_store(synthetic, filters):
    from t3vis.queries import explore

    view = explore.View(run_id="synthetic", split="validation", checkpoint="epoch-2", layout="tsne", layer=3)
    known = explore.attributes(synthetic, view)
    chosen = []
    if filters:
        name, value = filters
        chosen = [explore.ValuesFilter(name, tuple(value)) if isinstance(value, list)
                  else explore.RangeFilter(name, *value)]
    from_store = explore.example_frame(synthetic, view, chosen, known=known)
    in_memory = explore.filter_frame(explore.example_frame(synthetic, view, (), known=known), chosen, known)
    assert 0 < len(from_store) and from_store.example_id.tolist() == in_memory.example_id.tolist()
    assert from_store.loss.round(6).tolist() == in_memory.loss.round(6).tolist()


def test_a_training_splits_table_shows_its_dynamics_not_empty_prediction_columns(synthetic):
    options = _open(synthetic)
    layouts = _widget(options, "selectbox", "w.layout_choice").options
    data_map = next(option for option in layouts if option.startswith("Data Map") and "train" in option)
    app = _open(synthetic)
    _widget(app, "selectbox", "w.layout_choice").set_value(data_map).run()
    assert not app.exception
    table = app.dataframe[0].value
    assert {"last_prediction", "last_correct", "dm_confidence", "variability", "correctness",
            "forgetting_events", "region"} <= set(table.columns)
    assert not {"prediction", "loss", "gold_prob"} & set(table.columns)  # no checkpoint predicted the train split
    last = synthetic.query(
        """SELECT t.example_id, r.label_names[t.pred + 1] AS last_prediction, t.correct
           FROM training_dynamics t JOIN runs r USING (run_id)
           WHERE t.split = 'train' AND t.epoch = (SELECT max(epoch) FROM training_dynamics WHERE split = 'train')""")
    expected = last.set_index("example_id")
    shown = table.set_index("example_id")
    assert (shown.last_prediction == expected.last_prediction.loc[shown.index]).all()
    assert (shown.last_correct == expected.correct.loc[shown.index]).all()
