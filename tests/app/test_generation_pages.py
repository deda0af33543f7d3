"""Every page on a generation store made by really fine-tuning a tiny language model on arithmetic."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import PROJECT
from page_helpers import chart_with, open_page, vega_charts
from t3vis.fixtures.generation_store import build_generation_store
from t3vis.store.database import Store

PAGES = ["projection", "heads", "instance", "training", "sql", "overview"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return build_generation_store(tmp_path_factory.mktemp("generation") / "g.duckdb")


def _page(name: str, store, **state):
    return open_page(str(PROJECT / "pages" / f"{name}.py"), store.path, **state)


def _generations(store, checkpoint: str = "epoch-2"):
    return store.query("SELECT * FROM generations WHERE split = 'validation' AND checkpoint = ? ORDER BY example_id",
                       [checkpoint])


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_on_a_generation_store(generated, page):
    app = _page(page, generated, split="validation", example_id=3)
    assert not app.exception, app.exception


@pytest.mark.parametrize("color", ["loss", "perplexity", "score"])
def test_the_projection_shows_the_splits_prompts_coloured_by_their_scores(generated, color):
    app = _page("projection", generated, color=color)
    (spec, rows), = chart_with(app, "pick")
    stored = _generations(generated)
    assert sorted(rows.example_id) == stored.example_id.tolist()  # the 12 evaluation prompts, each once
    assert f'"field": "{color}"' in json.dumps(spec)
    shown = rows.set_index("example_id").sort_index()
    assert shown[color].astype(float).round(4).tolist() == stored[color].astype(float).round(4).tolist()
    table = app.dataframe[0].value.set_index("example_id").sort_index()  # the Data Table has every attribute
    for name in ("loss", "perplexity", "score", "token_accuracy"):
        assert table[name].astype(float).round(4).tolist() == stored[name].astype(float).round(4).tolist(), name


def test_the_data_map_of_the_training_prompts_is_coloured_by_region(generated):
    app = _page("projection", generated, layout_choice=("datamap", "train", "examples"))
    (spec, rows), = chart_with(app, "pick")
    data_map = generated.query("SELECT example_id, region, variability, confidence FROM data_map "
                               "WHERE split = 'train' ORDER BY example_id")
    assert '"field": "region"' in json.dumps(spec)  # the Data Map's default colour
    shown = rows.sort_values("example_id")
    assert shown.example_id.tolist() == data_map.example_id.tolist()
    assert shown.region.astype(str).tolist() == data_map.region.tolist()
    assert shown.x.round(6).tolist() == data_map.variability.round(6).tolist()


def test_the_selected_prompt_shows_its_reference_and_generation_side_by_side(generated):
    app = _page("projection", generated, split="validation", example_id=3)
    stored = _generations(generated).set_index("example_id").loc[3]
    example = generated.query("SELECT text, reference FROM examples WHERE split = 'validation' AND example_id = 3")
    texts = [text.value.strip() for text in app.text]  # st.text keeps the text, bar its trailing newline
    assert texts == [example.text[0].strip(), example.reference[0].strip(), stored.generation.strip()]
    header = next(markdown.value for markdown in app.markdown if markdown.value.startswith("**#3**"))
    assert f"loss **{stored.loss:.3f}**" in header and "perplexity" in header and "answer" in header


def test_a_training_prompt_shows_its_data_map_and_no_generation(generated):
    app = _page("projection", generated, layout_choice=("datamap", "train", "examples"), split="train", example_id=3)
    region = generated.scalar("SELECT region FROM data_map WHERE split = 'train' AND example_id = 3")
    assert any(markdown.value.startswith("Data Map: **") and region.replace("-", "\\-") in markdown.value
               for markdown in app.markdown)
    assert "(no generation of this example at this checkpoint)" in [text.value for text in app.text]


def test_the_training_page_draws_the_checkpoints_metrics(generated):
    app = _page("training", generated)
    assert not app.exception
    metrics = {checkpoint: json.loads(values)["validation"] for checkpoint, values in
               generated.query("SELECT checkpoint, metrics FROM checkpoints").itertuples(index=False)}
    drawn = {}
    for spec, datasets in vega_charts(app):
        field = spec["layer"][0]["encoding"]["y"]["field"] if "layer" in spec else spec["encoding"]["y"]["field"]
        drawn[field] = max(datasets.values(), key=len)
    assert set(drawn) == {"loss", "perplexity", "score", "token accuracy"}
    for field, key in (("loss", "loss"), ("perplexity", "perplexity"), ("score", "score"),
                       ("token accuracy", "accuracy")):
        evaluation = drawn[field][drawn[field].source == "evaluation · validation"].set_index("checkpoint")
        assert sorted(evaluation.index) == ["epoch-1", "epoch-2"]
        for checkpoint, point in evaluation.iterrows():
            assert point[field] == pytest.approx(metrics[checkpoint][key]), (field, checkpoint)
    assert set(drawn["loss"].source) == {"evaluation · validation", "training passes · train"}
    numbers = app.dataframe[0].value.set_index("checkpoint")  # the same metrics as a table
    assert numbers.loc["epoch-2", "perplexity"] == pytest.approx(metrics["epoch-2"]["perplexity"])
    table = app.dataframe[-1].value  # every validation example's loss change from epoch-1 to epoch-2
    assert len(table) == 12 and not table.rose.any()
    assert any("No example's loss rose" in caption.value for caption in app.caption)


def test_the_loss_table_puts_the_examples_whose_loss_rose_first(generated):
    app = _page("training", generated, flip_before="epoch-2", flip_after="epoch-1")
    table = app.dataframe[-1].value
    assert table.rose.all() and table.rise.is_monotonic_decreasing
    assert any("The loss of 12 of the 12 examples rose" in caption.value for caption in app.caption)


def test_checkpoints_without_a_step_or_epoch_show_their_metrics_as_a_table(generated, tmp_path):
    path = tmp_path / "unplaced.duckdb"
    shutil.copy(generated.path, path)
    with Store(path).transaction() as con:
        con.execute("UPDATE checkpoints SET step = NULL, epoch = NULL")
        con.execute("DELETE FROM training_dynamics")
    app = open_page(str(PROJECT / "pages" / "training.py"), path)
    assert not app.exception and not vega_charts(app)  # no curve to draw
    assert any("no epoch or step" in caption.value for caption in app.caption)
    table = app.dataframe[0].value
    assert sorted(table.checkpoint) == ["epoch-1", "epoch-2"] and set(table.split) == {"validation"}


def test_the_sql_page_runs_a_generation_example_query(generated):
    title = "Completion tokens most confidently wrong (generation)"
    app = _page("sql", generated)
    assert title in app.selectbox(key="sql_example").options
    app.selectbox(key="sql_example").select(title).run()
    app.button[0].click().run()
    assert not app.exception and not app.error
    rows = app.dataframe[-1].value
    assert len(rows) == generated.scalar("SELECT count(*) FROM unit_predictions WHERE NOT correct")
    assert "reference_token" in rows.columns
