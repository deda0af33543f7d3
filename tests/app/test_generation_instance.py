"""The Instance and Attention heads pages on a generation store made by really fine-tuning a tiny Llama language
model with the callback (t3vis.fixtures.generation_store): the prompt, reference and generation; the reference's
tokens by stored probability (or its change since another checkpoint, or live with pruned heads); a clicked
completion token explained over the tokens before it, or coloured by a head's attention; the head view's
importance, pruning's effect on the example and the evaluation with pruned heads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import PROJECT
from page_helpers import chart_with, open_page, vega_charts
from t3vis.fixtures.generation_store import build_generation_store
from t3vis.queries.completion_reads import DEFAULT_MAX_NEW_TOKENS, generation_limit, run_settings, stored_completions
from t3vis.queries.generation import example_details as completion_example

RUN, EXAMPLE = "arithmetic-tiny", 1


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_generation_store(tmp_path_factory.mktemp("generation") / "g.duckdb")


def _page(name: str, store, **state):
    return open_page(str(PROJECT / "pages" / f"{name}.py"), store.path, split="validation", example_id=EXAMPLE,
                     **state)


def _completion_charts(app) -> dict:
    """The reference's and the generation's token charts, by the start of their titles."""
    return {spec["title"].split(" ")[0].lower(): rows for spec, rows in chart_with(app, "completion")}


def token_saliency(app):
    """The rows of the saliency view (the chart whose click selects a token of the whole sequence)."""
    (_, rows), = chart_with(app, "token")
    return rows


def _prompt_tokens(store) -> int:
    return int(store.scalar("SELECT n_tokens FROM examples WHERE split = 'validation' AND example_id = ?", [EXAMPLE])
               - store.scalar("SELECT count(*) FROM units WHERE split = 'validation' AND example_id = ? AND kept",
                              [EXAMPLE]))


def test_the_reads_give_how_the_run_encoded_its_pairs(store):
    config, max_length = store.query("SELECT config, max_length FROM runs").iloc[0]
    settings = run_settings(config, int(max_length))  # the callback records its ingest options and the layout
    assert settings["max_length"] == 64 and settings["max_new_tokens"] == 16
    assert settings["format"] == "question-answer" and settings["max_completion_tokens"] is None
    older = run_settings('{"recorded_by": "T3visCallback"}', 64)  # a run recorded without them
    assert older["format"] == "prompt-completion" and older["max_new_tokens"] is None
    stored = stored_completions(store, RUN, "validation", "epoch-2")
    assert stored.settings["max_new_tokens"] == 16  # the length of the generations cut at the limit
    units = store.query("SELECT example_id, list(label ORDER BY unit) AS ids FROM units WHERE split = 'validation' "
                        "GROUP BY example_id ORDER BY example_id")
    assert len(stored.pairs) == 12 and [list(ids) for ids in units.ids] == stored.pairs.reference_ids.tolist()
    texts = store.query("SELECT generation FROM generations WHERE split = 'validation' AND checkpoint = 'epoch-2' "
                        "ORDER BY example_id").generation.tolist()
    assert stored.generations == texts
    details = completion_example(store, RUN, "validation", EXAMPLE, "epoch-2")
    assert generation_limit(settings, details["generated_ids"], details["stopped"]) == 16
    assert generation_limit({"max_new_tokens": 48}, details["generated_ids"], details["stopped"]) == 48
    assert generation_limit(older, details["generated_ids"], details["stopped"]) == 16  # cut at the limit
    assert generation_limit(older, [5, 6], True) == DEFAULT_MAX_NEW_TOKENS


def test_the_instance_page_shows_the_prompt_reference_and_generation_with_stored_probabilities(store):
    app = _page("instance", store)
    assert not app.exception, app.exception
    details = completion_example(store, RUN, "validation", EXAMPLE, "epoch-2")
    texts = [element.value for element in app.text]
    assert [text.strip() for text in texts[:3]] == [details[name].strip() for name in ("prompt", "reference",
                                                                                       "generation")]
    shown = _completion_charts(app)
    assert set(shown) == {"reference", "generation"}
    np.testing.assert_allclose(shown["reference"].value, details["tokens"].gold_prob, rtol=1e-6)
    assert len(shown["generation"]) == len(details["generated_ids"])
    assert shown["generation"].value.between(0, 1).all()
    header = app.markdown[0].value
    assert f"#{EXAMPLE}" in header and "completion loss" in header
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == 3 and labels.count("LaTeX") == 1  # the reference, the generation, the saliency


def test_a_clicked_generated_token_is_explained_over_the_tokens_before_it(store):
    app = _page("instance", store, completion_token=("generation", 3))
    assert not app.exception, app.exception
    saliency = token_saliency(app)
    prompt = _prompt_tokens(store)
    assert len(saliency) == prompt + 3 + 1  # the prompt, generated tokens 0-2, and the explained token
    assert (saliency.value.iloc[:-1] != 0).all() and saliency.value.iloc[-1] == 0
    assert any("Generation token **3**" in element.value for element in app.markdown)
    (bars,) = [rows for _, datasets in vega_charts(app) for rows in datasets.values() if "role" in rows.columns]
    assert len(bars) in (5, 6)  # the top five next tokens, and the explained one when not among them
    assert app.session_state["token"] == prompt + 3  # the explained token is the clicked one of the saliency view


def test_clicking_a_completion_token_in_the_saliency_view_explains_it(store):
    app = _page("instance", store, completion_token=("reference", 5))
    prompt = _prompt_tokens(store)
    app.session_state["token"] = prompt + 2  # as a click on reference token 2 in the saliency view sets it
    app.run()
    assert not app.exception, app.exception
    assert app.session_state["completion_token"] == ("reference", 2)
    assert len(token_saliency(app)) == prompt + 3


def test_with_a_head_selected_the_clicked_token_colours_the_earlier_tokens_by_its_attention(store):
    app = _page("instance", store, completion_token=("reference", 4), head=(1, 2), colour_by_attention=True)
    assert not app.exception, app.exception
    rows = token_saliency(app)
    assert len(rows) == _prompt_tokens(store) + 5
    assert rows.value.sum() == pytest.approx(1.0, abs=2e-3)  # causal attention: only the tokens up to it
    assert [spec for spec, _ in vega_charts(app) if "Attention of token" in json.dumps(spec.get("title"))]


def test_the_reference_can_be_coloured_by_its_change_since_another_checkpoint(store):
    app = _page("instance", store, completion_compare="epoch-1")
    assert not app.exception, app.exception
    before = completion_example(store, RUN, "validation", EXAMPLE, "epoch-1")["tokens"].gold_prob.to_numpy()
    after = completion_example(store, RUN, "validation", EXAMPLE, "epoch-2")["tokens"].gold_prob.to_numpy()
    rows = _completion_charts(app)["reference"]
    np.testing.assert_allclose(rows.value, after - before, rtol=1e-5, atol=1e-7)
    assert rows.token.tolist() == completion_example(store, RUN, "validation", EXAMPLE, "epoch-2")["tokens"].text.str \
        .strip().tolist()


def test_pruned_heads_are_scored_live_and_a_slow_method_waits_for_its_button(store):
    layer = [(0, head) for head in range(4)]
    app = _page("instance", store, pruned={RUN: layer}, instance_method="integrated_gradients")
    assert not app.exception, app.exception
    stored = completion_example(store, RUN, "validation", EXAMPLE, "epoch-2")["tokens"].gold_prob.to_numpy()
    live = _completion_charts(app)["reference"].value.to_numpy()
    assert not np.allclose(live, stored, rtol=1e-3)
    assert any(button.label == "Compute Integrated Gradients" for button in app.button)
    assert any("probability" in element.value and "pruned heads" in element.value for element in app.markdown)


def test_the_heads_page_analyses_the_example_and_pruning_changes_its_loss_and_the_evaluation_runs(store):
    app = _page("heads", store, heads_scale="instance", head=(1, 0))
    assert not app.exception, app.exception
    (spec, grid), = chart_with(app, "head")
    assert len(grid) == 8 and grid.value.max() == pytest.approx(1.0) and "completion loss" in spec["title"]
    losses = {element.label: element for element in app.metric}
    assert losses["Completion loss"].delta == "+0.000"  # nothing pruned

    app = _page("heads", store, heads_scale="instance", pruned={RUN: [(0, 0), (0, 1)]})
    assert not app.exception, app.exception
    loss = next(element for element in app.metric if element.label == "Completion loss")
    stored = store.scalar("SELECT loss FROM generations WHERE split = 'validation' AND example_id = ? AND "
                          "checkpoint = 'epoch-2'", [EXAMPLE])
    assert abs(float(loss.value) - stored) > 1e-3 and loss.delta != "+0.000"
    measure = next(button for button in app.button if button.label.startswith("Measure"))
    app = measure.click().run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert table.model.tolist() == ["all heads", "2 heads pruned"] and (table.examples == 12).all()
    metrics = json.loads(store.scalar("SELECT metrics FROM checkpoints WHERE checkpoint = 'epoch-2'"))["validation"]
    assert table.loss.iloc[0] == pytest.approx(metrics["loss"], rel=1e-4)
    assert table.accuracy.iloc[0] == pytest.approx(metrics["accuracy"])
    assert table.score.iloc[0] == pytest.approx(metrics["score"])
    assert table.loss.iloc[1] != pytest.approx(metrics["loss"], rel=1e-4)
