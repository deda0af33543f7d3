"""The Instance page with AppTest: saliency per method and class, attention from a token, pruning applies."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from helpers import PROJECT, write_topic_csv
from page_helpers import chart_with, open_page
from t3vis.data.loading import load_examples
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.model.access import load_model
from t3vis.store.database import Store
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.analysis.token_view import layout_tokens, merge_word_pieces

PAGE = str(PROJECT / "pages" / "instance.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instance")
    model_dir = save_tiny_model(folder / "model", num_labels=3, seed=1, initializer_range=0.3)
    write_topic_csv(folder / "topics.csv")
    bundle = load_model(model_dir, label_names=("business", "science", "sports"), device="cpu")
    store = Store(folder / "s.duckdb", create=True)
    ingest_checkpoint(store, bundle, load_examples(folder / "topics.csv"), run_id="tiny", checkpoint="c1", step=1,
                      path=str(model_dir), config=IngestConfig(projection="none", batch_size=4))
    return store


def _open(store: Store, **state) -> AppTest:
    return open_page(PAGE, store.path, **{"split": "validation", "example_id": 12, **state})


def _tokens(app: AppTest):
    """(spec, data) of the token chart, in token order."""
    [(spec, data)] = chart_with(app, "token")
    return spec, data.sort_values("index")


def test_without_a_selected_example_the_page_says_what_to_do(store):
    app = AppTest.from_file(PAGE, default_timeout=90)
    app.session_state["store_path"] = str(store.path)
    app.run()
    assert not app.exception and any("Select an example" in info.value for info in app.info)


def test_methods_and_classes_change_the_token_colours(store):
    app = _open(store)
    assert not app.exception
    _, lrp = _tokens(app)
    text = store.scalar("SELECT text FROM examples WHERE example_id = 12")
    assert lrp.token.iloc[0] == "[CLS]" and lrp.token.iloc[-1] == "[SEP]" and len(lrp) >= len(text.split()) + 2
    title = next(m.value for m in app.markdown if "gold label" in m.value)
    assert "#12" in title
    labels = [button.label for button in app.get("download_button")]
    # the probabilities (SVG, PNG) and the tokens (SVG, PNG, LaTeX) export as figures
    assert labels.count("SVG") == labels.count("PNG") == 2 and labels.count("LaTeX") == 1
    next(w for w in app.selectbox if w.key == "w.instance_method").set_value("input_x_gradient").run()
    _, ixg = _tokens(app)
    assert not np.allclose(lrp.value, ixg.value)
    next(w for w in app.selectbox if w.key == "w.instance_target").set_value(0).run()
    _, other_class = _tokens(app)
    assert not np.allclose(ixg.value, other_class.value)
    assert not app.exception


def test_lrp_title_reports_the_sum_and_the_logit(store):
    app = _open(store)
    spec, data = _tokens(app)
    title = spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]
    total = float(title.split("sum ")[1].split(",")[0])
    logit = float(title.split("logit ")[1].rstrip(")"))
    assert total == pytest.approx(data.value.sum(), abs=2e-3)
    assert total == pytest.approx(logit, abs=2e-3)  # tiny random models are initialised without biases


def test_integrated_gradients_runs_only_on_request(store):
    app = _open(store, instance_method="integrated_gradients")
    assert not app.exception
    _, data = _tokens(app)
    assert np.all(data.value == 0)
    next(b for b in app.button if b.label == "Compute Integrated Gradients").click().run()
    _, data = _tokens(app)
    assert np.any(data.value != 0)


def test_clicking_a_token_with_a_head_selected_colours_by_its_attention_row(store):
    from t3vis.analysis.instance_heads import instance_heads

    app = _open(store, head=(1, 2), token=3, colour_by_attention=True)
    assert not app.exception
    spec, data = _tokens(app)
    text = store.scalar("SELECT text FROM examples WHERE example_id = 12")
    label = int(store.scalar("SELECT label FROM examples WHERE example_id = 12"))
    bundle = load_model(store.scalar("SELECT path FROM checkpoints"), device="cpu")
    expected = instance_heads(bundle, text, label=label).attentions[1, 2, 3]
    assert np.allclose(data.value, expected, atol=1e-5)
    assert data.value.sum() == pytest.approx(1.0, abs=1e-4)
    assert any("L1·H2" in caption.value and "Token: 3" in caption.value for caption in app.caption)


def test_pruned_heads_apply_to_the_saliency(store):
    plain = _tokens(_open(store))[1].value.to_numpy()
    pruned_app = _open(store, pruned={"tiny": [(0, 0), (1, 1)]})
    pruned = _tokens(pruned_app)[1].value.to_numpy()
    assert not np.allclose(plain, pruned)
    assert any("2 pruned heads" in m.value for m in pruned_app.markdown)


def test_word_pieces_merge_with_summed_scores():
    tokens = ["[CLS]", "un", "##believ", "##able", "film", "[SEP]"]
    words, scores, groups = merge_word_pieces(tokens, np.array([0.1, 1.0, 2.0, 3.0, -1.0, 0.5]))
    assert words == ["[CLS]", "unbelievable", "film", "[SEP]"]
    assert scores.tolist() == [0.1, 6.0, -1.0, 0.5] and groups[1] == [1, 2, 3]
    words, _, _ = merge_word_pieces(["<s>", "Ġun", "believ", "able", "Ġfilm", "</s>"], np.zeros(6))
    assert words == ["<s>", "unbelievable", "film", "</s>"]
    layout = layout_tokens(["word"] * 40, line_chars=20)
    assert layout.line.max() == 9 and (layout.groupby("line").width.sum() <= 20).all()
