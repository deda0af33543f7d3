"""Every page on a token-classification store made by really training a tiny token classifier."""

from __future__ import annotations

import pytest

from helpers import PROJECT
from page_helpers import chart_with, open_page, vega_charts
from t3vis.fixtures.tagging_store import build_tagging_store

PAGES = ["projection", "heads", "instance", "training", "sql", "overview"]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return build_tagging_store(tmp_path_factory.mktemp("tagged") / "ner.duckdb")


def _page(name: str, store, **state):
    return open_page(str(PROJECT / "pages" / f"{name}.py"), store.path, **state)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_on_a_token_classification_store(tagged, page):
    app = _page(page, tagged, split="validation", example_id=1003)
    assert not app.exception, app.exception


def test_the_words_layout_has_one_point_per_laid_out_word_and_a_confusion_matrix(tagged):
    app = _page("projection", tagged, layout_choice=("pca", "validation", "units"))
    (spec, rows), = chart_with(app, "pick")
    words = tagged.scalar("SELECT count(*) FROM units WHERE split = 'validation'")
    assert len(rows) == words and {"unit", "label", "prediction"} <= set(rows.columns)
    (matrix, cells), = chart_with(app, "cell")
    counts = tagged.query("""SELECT count(*) AS n FROM unit_predictions
                             WHERE split = 'validation' AND checkpoint = 'epoch-2'""").n[0]
    assert cells["count"].sum() == counts == words  # every word once, in its (gold, predicted) cell
    gold_rows = cells.groupby("gold").rate.sum()
    assert gold_rows.round(6).eq(1).all()  # rates are shares of the gold tag's words
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == 2  # the words' projection and the confusion matrix export as figures


def test_a_confusion_cell_filters_the_words(tagged):
    app = _page("projection", tagged, layout_choice=("pca", "validation", "units"),
                confusion_cell=("B-PER", "B-PER"))
    (spec, rows), = chart_with(app, "pick")
    expected = tagged.scalar(
        """SELECT count(*) FROM unit_predictions p JOIN units u USING (run_id, split, example_id, unit)
           WHERE p.split = 'validation' AND p.checkpoint = 'epoch-2' AND u.label = 5 AND p.pred = 5""")
    assert len(rows) == expected > 0 and set(rows.label) == {"B-PER"} and set(rows.prediction) == {"B-PER"}
    table = app.dataframe[0].value
    assert len(table) == expected and set(table.label) == {"B-PER"}


def test_the_entity_span_data_map_averages_the_words_of_each_span(tagged):
    app = _page("projection", tagged, layout_choice=("datamap", "train", "spans"))
    (spec, rows), = chart_with(app, "pick")
    spans = tagged.query("SELECT * FROM entity_spans WHERE split = 'train' ORDER BY example_id, first_unit")
    assert len(rows) == len(spans) and len(spans) > 0
    first = spans.iloc[0]
    words = tagged.query("SELECT avg(confidence) AS c, avg(variability) AS v FROM data_map WHERE split = 'train' "
                         "AND example_id = ? AND unit BETWEEN ? AND ?",
                         [int(first.example_id), int(first.first_unit), int(first.last_unit)])
    shown = rows.sort_values(["example_id", "unit"]).iloc[0]
    assert shown.y == pytest.approx(words.c[0], rel=1e-5) and shown.x == pytest.approx(words.v[0], rel=1e-5)


def test_the_instance_view_explains_the_chosen_words_tag(tagged):
    app = _page("instance", tagged, split="validation", example_id=1003, tagged_word=1)
    assert not app.exception
    (spec, words), = chart_with(app, "word")
    n_words = tagged.scalar("SELECT count(*) FROM units WHERE split = 'validation' AND example_id = 1003")
    assert len(words) == n_words and {"tag", "predicted"} <= set(words.columns)
    tokens = [rows for spec, rows in ((s, max(d.values(), key=len)) for s, d in vega_charts(app))
              if "token" in rows.columns][0]
    assert (tokens.value.abs() > 0).any()  # coloured by the saliency of word 1's tag
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == 3 and labels.count("LaTeX") == 1  # tags, the word's tag probabilities, its tokens
    word = tagged.scalar("SELECT text FROM units WHERE split = 'validation' AND example_id = 1003 AND unit = 1")
    assert any(f"Explaining word 1: **{word}**" in markdown.value for markdown in app.markdown)


def test_the_training_page_shows_entity_f1_per_type(tagged):
    app = _page("training", tagged)
    assert not app.exception
    f1 = [rows for spec, data in vega_charts(app) for rows in data.values() if "f1" in rows.columns]
    assert f1 and {"all", "PER", "LOC", "ORG"} <= set(f1[0].source)
    assert len(app.dataframe) == 1  # the sentences whose tags changed between the two epochs
