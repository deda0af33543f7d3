"""Every page on an extractive-summarization store made by really training a tiny summarizer."""

from __future__ import annotations

import json

import pytest

from helpers import PROJECT
from page_helpers import chart_with, open_page, vega_charts
from t3vis.fixtures.summarization_store import build_summarization_store

PAGES = ["projection", "heads", "instance", "training", "sql", "overview"]


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    return build_summarization_store(tmp_path_factory.mktemp("summaries") / "bertsum.duckdb")


def _page(name: str, store, **state):
    return open_page(str(PROJECT / "pages" / f"{name}.py"), store.path, **state)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_on_a_summarization_store(summaries, page):
    app = _page(page, summaries, split="validation", example_id=1003)
    assert not app.exception, app.exception


def test_the_projection_shows_documents_coloured_by_rouge(summaries):
    app = _page("projection", summaries)
    (spec, rows), = chart_with(app, "pick")
    assert len(rows) == 12 and rows.rouge1.between(0, 1).all()  # the 12 evaluation documents
    assert '"field": "rouge1"' in json.dumps(spec)  # the default colour of documents


def test_the_evaluation_sentences_are_laid_out_by_their_own_vectors(summaries):
    app = _page("projection", summaries, layout_choice=("pca", "validation", "units"))
    (spec, rows), = chart_with(app, "pick")
    checkpoint = summaries.scalar("SELECT checkpoint FROM checkpoints ORDER BY step DESC LIMIT 1")
    assert len(rows) == summaries.scalar(
        "SELECT count(*) FROM unit_projections WHERE split = 'validation' AND checkpoint = ? AND layer = "
        "(SELECT max(layer) FROM unit_projections)", [checkpoint]) == 12 * 5
    assert {"unit", "label", "prediction"} <= set(rows.columns)  # coloured by the oracle label by default
    assert set(rows.label) == {"in summary", "not in summary"} and set(rows.prediction) == set(rows.label)
    assert any("60 of 60 sentences" in caption.value for caption in app.caption)


def test_the_sentence_data_map_has_one_point_per_training_sentence(summaries):
    app = _page("projection", summaries, layout_choice=("datamap", "train", "units"))
    (spec, rows), = chart_with(app, "pick")
    assert len(rows) == summaries.scalar("SELECT count(*) FROM data_map WHERE split = 'train'") == 24 * 5
    assert {"unit", "region"} <= set(rows.columns)


def test_the_instance_view_explains_the_chosen_sentence(summaries):
    app = _page("instance", summaries, split="validation", example_id=1003, summary_sentence=2)
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table.columns[:4]) == ["explained", "#", "sentence", "probability"] and len(table) == 5
    assert table.explained.tolist() == ["", "", "▶", "", ""]
    assert table.oracle.tolist().count("✓") >= 1 and table.summary.tolist().count("✓") == 3
    tokens = [rows for spec, rows in ((s, max(d.values(), key=len)) for s, d in vega_charts(app))
              if "token" in rows.columns][0]
    assert (tokens.value.abs() > 0).any()  # coloured by the saliency of sentence 2's score
    assert any("sentence 2" in caption.value for caption in app.caption)
