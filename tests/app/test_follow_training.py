"""Follow training, page by page with AppTest: the store grows while the page is open (a new checkpoint, a new
epoch of training dynamics, written by the store's own write methods); one look of the follow fragment
(``follow.check``, what its timer runs) notices it, and the rerun it asks for shows the new data with the
user's choices kept.

AppTest has no timer for ``st.fragment(run_every=...)``: each test calls ``follow.check`` where the fragment's
timer would, then ``app.run()`` where the fragment would call ``st.rerun(scope="app")``. The timer itself runs
in a real browser in tests/browser/test_follow_browser.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from follow_helpers import CONFIG, grow_checkpoint, grow_epoch
from helpers import PROJECT, write_topic_csv
from page_helpers import chart_with, open_page, vega_charts
from t3vis.data.loading import load_examples
from t3vis.fixtures.synthetic_store import build_synthetic_store
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.model.access import load_model
from t3vis.queries import explore, training_view
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import Store
from t3vis_app import follow

PAGES = PROJECT / "pages"


@pytest.fixture()
def synthetic(tmp_path) -> Store:
    """A store of 2 checkpoints and 2 epochs of dynamics, to grow in the test."""
    return build_synthetic_store(tmp_path / "growing.duckdb", CONFIG)


def follow_up(app: AppTest, store: Store) -> AppTest:
    """What the follow fragment does on its timer: one look, then, with new data, a rerun of the app."""
    assert follow.check(app.session_state, store), "the look did not notice the new data"
    app.run()
    assert not app.exception
    return app


def _following(app: AppTest) -> str:
    [caption] = [caption.value for caption in app.sidebar.caption if caption.value.startswith("Following")]
    return caption


def _sidebar_checkpoint(app: AppTest):
    return next(widget for widget in app.sidebar.selectbox if widget.key == "w.checkpoint")


def _title(spec: dict) -> str:
    title = spec.get("title", "")
    return title["text"] if isinstance(title, dict) else title


def _widget(app: AppTest, kind: str, key: str):
    return next(widget for widget in getattr(app, kind) if widget.key == key)


# -- the switch and the look --------------------------------------------------------------------------

def test_the_switch_is_off_by_default_and_then_nothing_looks_at_the_store(synthetic):
    app = open_page(str(PAGES / "overview.py"), synthetic.path)
    assert not app.exception
    [switch] = [toggle for toggle in app.sidebar.toggle if toggle.label == "Follow training"]
    assert switch.value is False
    assert not [caption for caption in app.sidebar.caption if caption.value.startswith("Following")]
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    assert not follow.check(app.session_state, synthetic)

    switch.set_value(True).run()
    assert "no new data yet" in _following(app)
    assert not follow.check(app.session_state, synthetic), "the page already shows epoch-3"


def test_a_look_without_a_commit_reads_no_store_and_a_commit_without_new_data_reruns_nothing(synthetic,
                                                                                             monkeypatch):
    app = open_page(str(PAGES / "overview.py"), synthetic.path, follow_training=True)
    queries = []
    monkeypatch.setattr(follow, "contents", lambda store, wait: queries.append(wait) or None)
    assert not follow.check(app.session_state, synthetic)
    assert queries == [], "an unchanged file stamp needs no connection"
    monkeypatch.undo()
    synthetic.write_meta("note", "written, but nothing a page lists")
    assert not follow.check(app.session_state, synthetic)
    assert not follow.check(app.session_state, synthetic)


def test_a_choice_on_an_earlier_checkpoint_stays_where_the_user_put_it(synthetic):
    app = open_page(str(PAGES / "overview.py"), synthetic.path, follow_training=True, checkpoint="epoch-1")
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    follow_up(app, synthetic)
    checkpoint = _sidebar_checkpoint(app)
    assert checkpoint.value == "epoch-1" and checkpoint.options == ["epoch-1", "epoch-2", "epoch-3"]


def test_a_choice_on_the_latest_lands_on_the_newest_when_a_writer_commits_again_between_the_look_and_the_rerun(
        synthetic):
    app = open_page(str(PAGES / "overview.py"), synthetic.path, follow_training=True)
    assert _sidebar_checkpoint(app).value == "epoch-2"
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    assert follow.check(app.session_state, synthetic), "the look did not notice epoch-3"
    grow_checkpoint(synthetic, "epoch-4", seed=2)  # committed after the look, before the rerun it asked for
    app.run()
    checkpoint = _sidebar_checkpoint(app)
    assert checkpoint.options == ["epoch-1", "epoch-2", "epoch-3", "epoch-4"]
    assert checkpoint.value == "epoch-4", "the choice was on the latest checkpoint and follows it"
    assert not follow.check(app.session_state, synthetic), "the page already shows epoch-4"

# -- every page, with a store that grows while it is open -----------------------------------------------

def test_overview_lists_the_new_checkpoint_and_moves_on_to_it(synthetic):
    app = open_page(str(PAGES / "overview.py"), synthetic.path, follow_training=True)
    assert app.dataframe[1].value.checkpoint.tolist() == ["epoch-1", "epoch-2"]
    assert _sidebar_checkpoint(app).value == "epoch-2"
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    follow_up(app, synthetic)
    assert app.dataframe[1].value.checkpoint.tolist() == ["epoch-1", "epoch-2", "epoch-3"]
    assert _sidebar_checkpoint(app).value == "epoch-3"
    assert "new data at" in _following(app)
    assert not follow.check(app.session_state, synthetic), "once shown, the checkpoint is not new any more"


def test_training_page_draws_the_new_epoch_and_checkpoint_and_keeps_the_flip_choice(synthetic):
    app = open_page(str(PAGES / "training.py"), synthetic.path, follow_training=True, flip_before="epoch-1")

    def curve_points(app):
        _, [curves] = next((spec, list(data.values())) for spec, data in vega_charts(app))
        return curves.source.value_counts().to_dict()

    assert curve_points(app) == {"train (dynamics)": 2, "validation (evaluation)": 2}
    grow_epoch(synthetic, seed=2)
    follow_up(app, synthetic)
    assert curve_points(app) == {"train (dynamics)": 3, "validation (evaluation)": 2}
    grow_checkpoint(synthetic, "epoch-3", seed=3)
    follow_up(app, synthetic)
    assert curve_points(app) == {"train (dynamics)": 3, "validation (evaluation)": 3}
    # "From" stays on the user's epoch-1; "To" was on the latest checkpoint and moves on to the new one
    assert _widget(app, "selectbox", "w.flip_before").value == "epoch-1"
    assert _widget(app, "selectbox", "w.flip_after").value == "epoch-3"
    expected = training_view.flipped_examples(synthetic, CONFIG.run_id, "validation", "epoch-1", "epoch-3")
    assert app.dataframe[0].value.example_id.tolist() == expected.example_id.tolist()


def test_data_map_shows_the_new_epoch_with_the_filters_kept(synthetic):
    app = open_page(str(PAGES / "projection.py"), synthetic.path, follow_training=True, layout=explore.DATA_MAP,
                    split="train", example_id=3)
    _widget(app, "multiselect", "w.filter_on").set_value(["label"]).run()
    _widget(app, "multiselect", "w.filter.label").set_value(["sports"]).run()
    before = app.dataframe[0].value
    assert set(before.label) == {"sports"}
    grow_epoch(synthetic, seed=2)
    follow_up(app, synthetic)

    table = app.dataframe[0].value
    assert set(table.label) == {"sports"} and sorted(table.example_id) == sorted(before.example_id)
    stored = synthetic.query("SELECT example_id, confidence FROM data_map WHERE run_id = ? AND split = 'train' "
                             "ORDER BY example_id", [CONFIG.run_id]).set_index("example_id").confidence
    shown = table.set_index("example_id").dm_confidence.sort_index()
    assert np.allclose(shown, stored[shown.index], atol=1e-6)
    assert not np.allclose(shown, before.set_index("example_id").dm_confidence.sort_index())
    assert _widget(app, "selectbox", "w.layout_choice").value == (explore.DATA_MAP, "train", "examples")
    [(_, points)] = chart_with(app, "pick")
    assert set(points.example_id) == set(table.example_id)
    assert app.session_state["example_id"] == 3


def test_projection_moves_on_to_the_new_checkpoints_layout(synthetic):
    app = open_page(str(PAGES / "projection.py"), synthetic.path, follow_training=True, layer=3)
    [(spec, _)] = chart_with(app, "pick")
    assert _title(spec).startswith("epoch-2 · layer 3")
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    follow_up(app, synthetic)
    [(spec, points)] = chart_with(app, "pick")
    assert _title(spec).startswith("epoch-3 · layer 3")
    stored = synthetic.query("SELECT example_id, x FROM projections WHERE checkpoint = 'epoch-3' AND layer = 3 "
                             "ORDER BY example_id")
    assert np.allclose(points.sort_values("example_id").x, stored.x, atol=1e-4)


def test_heads_page_shows_the_new_checkpoints_importance_keeping_the_normalisation(synthetic):
    app = open_page(str(PAGES / "heads.py"), synthetic.path, follow_training=True,
                    heads_norm="importance_layer_norm", heads_compare="epoch-1")
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    follow_up(app, synthetic)
    [(_, grid)] = chart_with(app, "head")
    stored = synthetic.query(
        """SELECT a.importance_layer_norm - b.importance_layer_norm AS d FROM head_importance a
           JOIN head_importance b USING (run_id, split, layer, head)
           WHERE a.checkpoint = 'epoch-3' AND b.checkpoint = 'epoch-1' ORDER BY layer, head""")
    assert np.allclose(grid.sort_values(["layer", "head"]).value, stored.d)
    assert _widget(app, "selectbox", "w.heads_norm").value == "importance_layer_norm"
    assert _widget(app, "selectbox", "w.heads_compare").value == "epoch-1"


def test_sql_page_keeps_the_query_and_its_result_and_lists_the_new_checkpoint(synthetic):
    app = open_page(str(PAGES / "sql.py"), synthetic.path, follow_training=True)
    app.text_area(key="sql_text").set_value("SELECT count(*) AS n FROM checkpoints").run()
    next(button for button in app.button if button.label == "Run").click().run()
    assert app.dataframe[-1].value.n.tolist() == [2]
    grow_checkpoint(synthetic, "epoch-3", seed=1)
    follow_up(app, synthetic)
    assert _sidebar_checkpoint(app).options == ["epoch-1", "epoch-2", "epoch-3"]
    assert app.text_area(key="sql_text").value == "SELECT count(*) AS n FROM checkpoints"
    assert app.dataframe[-1].value.n.tolist() == [2], "a result is of the time its query ran"
    next(button for button in app.button if button.label == "Run").click().run()
    assert app.dataframe[-1].value.n.tolist() == [3]


@pytest.fixture()
def tiny_store(tmp_path):
    """A run with one checkpoint of a tiny model whose weights are on disk (the Instance page loads them)."""
    model_dir = save_tiny_model(tmp_path / "model", num_labels=3, seed=1, initializer_range=0.3)
    write_topic_csv(tmp_path / "topics.csv")
    store = Store(tmp_path / "tiny.duckdb", create=True)
    _ingest(store, model_dir, tmp_path / "topics.csv", "c1", step=1)
    return store, model_dir, tmp_path / "topics.csv"


def _ingest(store: Store, model_dir, data, checkpoint: str, *, step: int) -> None:
    bundle = load_model(model_dir, label_names=("business", "science", "sports"), device="cpu")
    ingest_checkpoint(store, bundle, load_examples(data), run_id="tiny", checkpoint=checkpoint, step=step,
                      path=str(model_dir), config=IngestConfig(projection="none", batch_size=4))


def test_instance_page_explains_the_selected_example_at_the_new_checkpoint_with_the_heads_still_pruned(tiny_store):
    store, model_dir, data = tiny_store
    app = open_page(str(PAGES / "instance.py"), store.path, follow_training=True, split="validation",
                    example_id=12, pruned={"tiny": [(0, 1), (1, 2)]})
    assert not app.exception

    def title(app):
        return next(m.value for m in app.markdown if "gold label" in m.value)

    assert "#12" in title(app) and "at c1" in title(app) and "2 pruned heads" in title(app)
    _ingest(store, model_dir, data, "c2", step=2)
    follow_up(app, store)
    assert "#12" in title(app) and "at c2" in title(app) and "2 pruned heads" in title(app)
    assert app.session_state["pruned"] == {"tiny": [(0, 1), (1, 2)]}
