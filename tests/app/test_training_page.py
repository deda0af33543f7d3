"""The Training page and its queries: learning curves, per-class accuracy, flipped examples."""

from __future__ import annotations

import pytest

from helpers import PROJECT
from page_helpers import open_page, vega_charts
from t3vis.queries import training_view
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

PAGE = str(PROJECT / "pages" / "training.py")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build_synthetic_store(tmp_path_factory.mktemp("training") / "s.duckdb",
                                 SyntheticConfig(n_examples=150, n_train=100))


def test_learning_curves_hold_evaluation_and_training_dynamics(synthetic):
    curves = training_view.learning_curves(synthetic, "synthetic")
    evaluation = curves[curves.source == "validation (evaluation)"]
    assert evaluation.x.tolist() == [1.0, 2.0, 3.0]
    expected = synthetic.scalar("SELECT avg(correct::INT) FROM predictions WHERE checkpoint = 'epoch-2'")
    assert evaluation.set_index("checkpoint").accuracy["epoch-2"] == pytest.approx(expected)
    assert len(curves[curves.source == "train (dynamics)"]) == 4


def test_flipped_examples_are_exactly_the_changed_predictions(synthetic):
    flipped = training_view.flipped_examples(synthetic, "synthetic", "validation", "epoch-1", "epoch-3")
    by_hand = synthetic.query(
        """SELECT a.example_id, a.correct AS a_right, b.correct AS b_right FROM predictions a
           JOIN predictions b USING (run_id, split, example_id)
           WHERE a.checkpoint = 'epoch-1' AND b.checkpoint = 'epoch-3' AND a.pred <> b.pred""")
    assert sorted(flipped.example_id) == sorted(by_hand.example_id)
    fixed = set(by_hand[~by_hand.a_right & by_hand.b_right].example_id)
    assert set(flipped[flipped.change == "fixed"].example_id) == fixed


def test_page_shows_curves_per_class_accuracy_and_the_flipped_table(synthetic):
    app = open_page(PAGE, synthetic.path)
    assert not app.exception
    assert len(vega_charts(app)) == 3
    table = app.dataframe[0].value
    expected = training_view.flipped_examples(synthetic, "synthetic", "validation", "epoch-2", "epoch-3")
    assert table.example_id.tolist() == expected.example_id.tolist()
    app.selectbox(key="w.flip_before").set_value("epoch-1").run()
    assert len(app.dataframe[0].value) == len(
        training_view.flipped_examples(synthetic, "synthetic", "validation", "epoch-1", "epoch-3"))


def test_training_charts_tick_whole_epochs_and_tell_classes_apart_by_hue(synthetic):
    app = open_page(PAGE, synthetic.path)
    charts = [spec for spec, _ in vega_charts(app)]
    assert len(charts) == 3
    for spec in charts:
        encoding = spec.get("encoding") or spec["layer"][0]["encoding"]
        assert encoding["x"]["axis"]["tickMinStep"] == 1 and encoding["x"]["axis"]["format"] == "d"
        # a categorical palette (Streamlit's theme would give two blues and two reds for four classes)
        assert encoding["color"]["scale"]["scheme"] == "tableau10"


def test_every_training_chart_has_svg_and_png_figure_buttons(synthetic):
    app = open_page(PAGE, synthetic.path)
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == 3 and labels.count("PNG") == 3  # accuracy, loss, per-class accuracy
