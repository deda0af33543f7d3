"""The read side of the generation task (t3vis/queries/generation.py) and its example queries, on a store made by
really fine-tuning a tiny language model: every frame, detail and curve against the store's own rows, read by hand
with SQL and pandas."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from t3vis.fixtures.generation_store import build_generation_store
from t3vis.queries import explore
from t3vis.queries import generation as queries
from t3vis.queries.example_queries import EXAMPLE_QUERIES
from t3vis.store.database import Store
from t3vis.tasks import GENERATION

RUN = "arithmetic-tiny"
GENERATION_QUERIES = [query for query in EXAMPLE_QUERIES if query.task == GENERATION]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return build_generation_store(tmp_path_factory.mktemp("generation") / "g.duckdb")


@pytest.fixture(scope="module")
def with_extras(generated, tmp_path_factory):
    """A copy of the store whose validation examples carry a ``swapped`` flag and a ``score`` column (a name the
    frame uses itself), and whose example 3 got a higher loss at epoch-2 than at epoch-1."""
    path = tmp_path_factory.mktemp("extras") / "g.duckdb"
    shutil.copy(generated.path, path)
    store = Store(path)
    with store.transaction() as con:
        con.execute("""UPDATE examples SET extra = json_object('swapped', example_id % 3 = 0, 'score', example_id * 10)
                       WHERE run_id = ? AND split = 'validation'""", [RUN])
        con.execute("""UPDATE generations SET loss = 20.0, perplexity = exp(20.0)
                       WHERE run_id = ? AND split = 'validation' AND checkpoint = 'epoch-2' AND example_id = 3""", [RUN])
    return store


def _view(split="validation", checkpoint="epoch-2", layout="pca", layer=2):
    return explore.View(run_id=RUN, split=split, checkpoint=checkpoint, layout=layout,
                        layer=None if layout == explore.DATA_MAP else layer)


def test_the_run_reads_through_the_generation_frames(generated):
    assert explore.task_frames(generated, RUN) is queries.FRAMES


def test_an_evaluated_split_has_the_checkpoints_scores_and_no_data_map(generated):
    names = [attribute.name for attribute in explore.attributes(generated, _view())]
    assert names[:8] == ["loss", "perplexity", "token_accuracy", "score", "exact_match", "rougeL",
                         "generation_length", "stopped"]
    assert {"n_tokens", "completion_tokens", "truncated"} <= set(names) and "region" not in names
    no_checkpoint = [a.name for a in explore.attributes(generated, _view(checkpoint=None, layout=explore.DATA_MAP))]
    assert no_checkpoint == ["n_tokens", "completion_tokens", "truncated"]  # nothing scored, no dynamics


def test_the_training_split_has_the_data_map_and_its_last_epoch_but_no_scores(generated):
    names = [a.name for a in explore.attributes(generated, _view(split="train", layout=explore.DATA_MAP))]
    assert names[:7] == ["region", "dm_confidence", "variability", "correctness", "forgetting_events", "last_loss",
                         "last_token_accuracy"]
    assert "loss" not in names  # checkpoints score the evaluation split only


def test_a_projection_frame_is_the_splits_examples_with_their_generations(generated):
    frame = explore.example_frame(generated, _view())
    by_hand = generated.query(
        """SELECT g.example_id, j.x, j.y, g.loss, g.perplexity, g.token_accuracy, g.score, g.exact_match, g.rougeL,
                  len(g.generated_ids) AS generation_length, g.stopped, g.answer, e.n_tokens, e.text,
                  (SELECT count(*) FROM units u WHERE u.run_id = e.run_id AND u.split = e.split
                                                 AND u.example_id = e.example_id) AS completion_tokens
           FROM generations g JOIN examples e USING (run_id, split, example_id)
           JOIN projections j USING (run_id, split, checkpoint, example_id)
           WHERE g.run_id = ? AND g.split = 'validation' AND g.checkpoint = 'epoch-2' AND j.method = 'pca'
             AND j.layer = 2 ORDER BY g.example_id""", [RUN])
    assert len(frame) == len(by_hand) == generated.scalar(
        "SELECT count(*) FROM examples WHERE split = 'validation'") == 12
    for column in ("example_id", "x", "y", "loss", "perplexity", "token_accuracy", "score", "rougeL",
                   "generation_length", "n_tokens", "completion_tokens"):
        np.testing.assert_allclose(frame[column].astype(float), by_hand[column].astype(float), rtol=1e-6,
                                   err_msg=column)
    assert frame.exact_match.tolist() == by_hand.exact_match.tolist()
    assert frame.text.tolist() == [text[:explore.TEXT_PREVIEW] for text in by_hand.text]
    assert frame.region.isna().all()  # an evaluation split has no Data Map


def test_the_data_map_frame_places_each_training_example_by_its_dynamics(generated):
    frame = explore.example_frame(generated, _view(split="train", layout=explore.DATA_MAP))
    data_map = generated.query("SELECT * FROM data_map WHERE run_id = ? AND split = 'train' ORDER BY example_id",
                               [RUN])
    dynamics = generated.query("SELECT example_id, epoch, loss, token_accuracy FROM training_dynamics "
                               "WHERE run_id = ? AND split = 'train'", [RUN])
    last = dynamics[dynamics.epoch == dynamics.epoch.max()].sort_values("example_id")
    assert len(frame) == len(data_map) == 40
    np.testing.assert_allclose(frame.x, data_map.variability, rtol=1e-6)
    np.testing.assert_allclose(frame.y, data_map.confidence, rtol=1e-6)
    assert frame.region.tolist() == data_map.region.tolist()
    np.testing.assert_allclose(frame.last_loss, last.loss, rtol=1e-6)
    np.testing.assert_allclose(frame.last_token_accuracy, last.token_accuracy, rtol=1e-6)
    hard = explore.example_frame(generated, _view(split="train", layout=explore.DATA_MAP),
                                 [explore.ValuesFilter("region", ("hard-to-learn",))])
    assert hard.example_id.tolist() == data_map[data_map.region == "hard-to-learn"].example_id.tolist()


def test_extra_columns_colour_and_filter_and_never_clash_with_the_frames_own(with_extras):
    view = _view()
    known = explore.attributes(with_extras, view)
    by_name = {attribute.name: attribute for attribute in known}
    assert by_name["swapped"].kind == "categorical" and by_name["extra_score"].kind == "continuous"
    frame = explore.example_frame(with_extras, view)
    assert frame.extra_score.tolist() == [10.0 * i for i in frame.example_id]
    assert frame.score.notna().all()  # the generation's score is still the frame's own
    swapped = explore.example_frame(with_extras, view, [explore.ValuesFilter("swapped", ("true",))])
    assert swapped.example_id.tolist() == [i for i in range(12) if i % 3 == 0]


def test_token_probabilities_are_the_checkpoints_rows_of_each_reference_token(generated):
    for checkpoint in ("epoch-1", "epoch-2"):
        tokens = queries.token_probabilities(generated, RUN, "validation", 5, checkpoint)
        stored = generated.query(
            """SELECT u.unit, u.text, u.label AS token_id, p.gold_prob, p.rank, p.pred, p.correct FROM units u
               JOIN unit_predictions p USING (run_id, split, example_id, unit)
               WHERE u.run_id = ? AND u.split = 'validation' AND u.example_id = 5 AND p.checkpoint = ?
               ORDER BY u.unit""", [RUN, checkpoint])
        pd.testing.assert_frame_equal(tokens[list(stored.columns)], stored, check_dtype=False)
        assert (tokens.correct == (tokens.pred == tokens.token_id)).all() and (tokens["rank"] >= 1).all()
    before = queries.token_probabilities(generated, RUN, "validation", 5, "epoch-1")
    assert not np.allclose(before.gold_prob, tokens.gold_prob)  # two checkpoints to compare


def test_details_are_the_prompt_reference_generation_and_tokens(generated):
    details = explore.example_details(generated, RUN, "validation", 5, "epoch-2")
    row = generated.query("""SELECT e.text, e.reference, g.* FROM examples e JOIN generations g
                             USING (run_id, split, example_id)
                             WHERE run_id = ? AND split = 'validation' AND example_id = 5 AND checkpoint = 'epoch-2'""",
                          [RUN]).iloc[0]
    assert details["prompt"] == details["text"] == row.text and details["reference"] == row.reference
    assert details["generation"] == row.generation and details["generated_ids"] == [int(i) for i in row.generated_ids]
    for name in ("answer", "reference_answer", "exact_match", "stopped"):
        assert details[name] == (None if pd.isna(row[name]) else row[name]), name
    for name in ("loss", "perplexity", "token_accuracy", "score", "rougeL"):
        assert details[name] == pytest.approx(float(row[name])), name
    assert len(details["tokens"]) == row.n_tokens == details["n_scored"]
    assert details["region"] is None  # no training dynamics for the evaluation split
    assert explore.example_details(generated, RUN, "validation", 999, "epoch-2") is None


def test_a_training_examples_details_have_its_data_map_and_no_generation(generated):
    details = explore.example_details(generated, RUN, "train", 3, "epoch-2")
    point = generated.query("SELECT * FROM data_map WHERE run_id = ? AND split = 'train' AND example_id = 3",
                            [RUN]).iloc[0]
    assert details["loss"] is None and details["generation"] is None and details["generated_ids"] is None
    assert details["region"] == point.region and details["dm_confidence"] == pytest.approx(point.confidence)
    assert details["tokens"].gold_prob.isna().all() and len(details["tokens"]) > 0


def test_metric_curves_are_the_checkpoints_metrics_and_the_training_passes(generated):
    curves = queries.metric_curves(generated, RUN)
    evaluation = curves[curves.source == "evaluation · validation"].set_index("checkpoint")
    for checkpoint, metrics in generated.query("SELECT checkpoint, metrics FROM checkpoints").itertuples(index=False):
        scores = json.loads(metrics)["validation"]
        point = evaluation.loc[checkpoint]
        for column, key in (("loss", "loss"), ("perplexity", "perplexity"), ("token accuracy", "accuracy"),
                            ("score", "score"), ("exact_match", "exact_match"), ("rougeL", "rougeL")):
            assert point[column] == pytest.approx(scores[key]), column
    passes = curves[curves.source == "training passes · train"].sort_values("x")
    tokens = generated.query("SELECT epoch, gold_prob, correct FROM token_dynamics WHERE run_id = ? AND split = 'train'",
                             [RUN])
    by_epoch = tokens.groupby("epoch").agg(loss=("gold_prob", lambda p: -np.log(p.astype(float)).mean()),
                                           accuracy=("correct", "mean"), n=("gold_prob", "size"))
    assert passes.x.tolist() == [epoch + 1.0 for epoch in by_epoch.index]
    np.testing.assert_allclose(passes.loss, by_epoch.loss, rtol=1e-4)  # the mean over all completion tokens
    np.testing.assert_allclose(passes["token accuracy"], by_epoch.accuracy, rtol=1e-6)
    np.testing.assert_allclose(passes.perplexity, np.exp(passes.loss))
    assert passes.n_tokens.tolist() == by_epoch.n.tolist() and passes.score.isna().all()
    assert sorted(curves.source.unique())[0].startswith("evaluation")  # evaluation first: the same colours always


def test_loss_changes_put_the_examples_whose_loss_rose_first(with_extras, generated):
    changes = queries.loss_changes(with_extras, RUN, "validation", "epoch-1", "epoch-2")
    losses = with_extras.query("SELECT example_id, checkpoint, loss FROM generations WHERE split = 'validation'")
    wide = losses.pivot(index="example_id", columns="checkpoint", values="loss")
    rise = (wide["epoch-2"] - wide["epoch-1"]).sort_values(ascending=False)
    assert changes.example_id.tolist() == rise.index.tolist()
    np.testing.assert_allclose(changes.rise, rise.to_numpy(), rtol=1e-6)
    assert changes.rose.tolist() == (rise > 0).tolist() and changes.example_id.iloc[0] == 3 and changes.rose.sum() == 1
    assert not queries.loss_changes(generated, RUN, "validation", "epoch-1", "epoch-2").rose.any()  # all fell
    assert queries.loss_changes(generated, RUN, "validation", "epoch-2", "epoch-1").rose.all()
    assert queries.generation_splits(generated, RUN) == ["validation"]


@pytest.mark.parametrize("query", GENERATION_QUERIES, ids=lambda query: query.title)
def test_each_generation_example_query_answers_with_its_columns(generated, query):
    rows = generated.query(query.sql)
    assert list(rows.columns) == list(query.columns) and len(rows) > 0


def _query(title: str) -> str:
    return next(query.sql for query in GENERATION_QUERIES if query.title.startswith(title))


def test_the_confidently_wrong_tokens_are_the_wrong_ones_by_confidence(generated):
    rows = generated.query(_query("Completion tokens most confidently wrong").replace("LIMIT 500", ""))
    wrong = generated.query("SELECT * FROM unit_predictions WHERE NOT correct")
    assert len(rows) == len(wrong) and (rows.reference_rank > 1).all()  # wrong: the reference is not the top token
    for checkpoint, group in rows.groupby("checkpoint"):
        assert group.confidence.is_monotonic_decreasing, checkpoint
    named = rows.dropna(subset=["predicted_token"]).iloc[0]
    assert generated.scalar("SELECT count(*) FROM units WHERE label = ? AND text = ?",
                            [int(named.predicted_id), named.predicted_token]) > 0


def test_the_hard_to_learn_query_lists_the_data_maps_hard_region(generated):
    rows = generated.query(_query("Hard-to-learn prompts"))
    hard = generated.query("SELECT example_id FROM data_map WHERE region = 'hard-to-learn' ORDER BY confidence")
    assert rows.example_id.tolist() == hard.example_id.tolist()


def test_the_token_dynamics_query_is_one_examples_tokens_over_the_epochs(generated):
    rows = generated.query(_query("Per-token training dynamics"))
    first = generated.scalar("SELECT min(example_id) FROM token_dynamics")
    stored = generated.query("SELECT token, epoch, gold_prob FROM token_dynamics WHERE example_id = ? "
                             "ORDER BY token, epoch", [first])
    assert set(rows.example_id) == {first} and rows[["token", "epoch"]].values.tolist() == \
        stored[["token", "epoch"]].values.tolist()
    np.testing.assert_allclose(rows.gold_prob, stored.gold_prob)
    assert rows.reference_token.notna().all()


def test_the_loss_change_query_pairs_each_checkpoint_with_the_next(with_extras):
    rows = with_extras.query(_query("Examples whose loss went up"))
    assert set(zip(rows.from_checkpoint, rows.to_checkpoint)) == {("epoch-1", "epoch-2")} and len(rows) == 12
    assert rows.went_up.tolist() == [True] + [False] * 11 and rows.example_id.iloc[0] == 3
