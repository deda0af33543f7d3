"""The app side of generation (a causal language model fine-tuned on prompt → completion pairs).

Projection: under the chart, the selected example's prompt, reference completion and the checkpoint's greedy
generation side by side, with its loss, perplexity and score. Training: loss, perplexity, generation score and
token accuracy over checkpoints (each evaluated split, and the training passes), and how each example's loss
changed between two chosen checkpoints, those whose loss rose first. The Instance view and the head analysis of
one example live in :mod:`t3vis_app.tasks.generation_instance`.
"""

from __future__ import annotations

import streamlit as st

from t3vis.markdown_text import escape_markdown as md  # store text shown as Markdown
from t3vis.tasks import GENERATION, task_spec
from t3vis_app import data, state
from t3vis_app.selection import selected, selected_details
from t3vis_app.tasks import generation_instance
from t3vis_app.tasks.base import queries_for

CURVES = ("loss", "perplexity", "score", "token accuracy")  # drawn two by two, in this order


class GenerationApp:
    spec = task_spec(GENERATION)
    data_map_points = ("examples",)
    evaluation_help = generation_instance.EVALUATION_HELP

    def projection_filters(self, ctx, split: str, points: str, attribute_names) -> tuple:
        return ()

    def selection_panel(self, ctx, split: str) -> None:
        completion_panel(ctx, split)

    def instance_view(self, ctx) -> None:
        generation_instance.instance_view(ctx)

    def heads_example(self, ctx):
        return generation_instance.heads_example(ctx)

    def analyse_heads(self, bundle, details: dict, run, pruned: frozenset):
        return generation_instance.analyse_heads(bundle, details, run, pruned)

    def importance_target(self, details: dict) -> str:
        return generation_instance.importance_target(details)

    def pruning_effect(self, ctx, details: dict, before, after, *, pruned_label: str, split: str,
                       example_id: int) -> None:
        generation_instance.pruning_effect(ctx, details, before, after, pruned_label=pruned_label, split=split,
                                           example_id=example_id)

    def evaluate_pruning(self, bundle, ctx, split: str, *, pruned: frozenset, progress):
        return generation_instance.evaluate_pruning(bundle, ctx, split, pruned=pruned, progress=progress)

    def training_view(self, ctx, curves, draw_curve) -> None:
        training_view(ctx, curves, draw_curve)

    def example_queries(self):
        return queries_for(GENERATION)


# ---- Projection page: the selected example ----------------------------------------------------------------------

def completion_panel(ctx, split: str) -> None:
    """The selected example: its prompt, reference and the checkpoint's generation side by side, with its scores."""
    st.subheader("Selected example")
    selected_split, example_id, details = selected_details(ctx)
    if example_id is None or selected_split != split:
        st.caption("Click a point or a table row to select an example: its prompt, reference completion and the "
                   "checkpoint's generation show here; the Instance view explains each completion token.")
        return
    if details is None:
        st.caption(f"Example {example_id} is not in the {md(split)} split of this run.")
        return
    st.markdown(f"**#{example_id}** · {md(split)} split · " + _scores_line(ctx, details))
    if details.get("region") is not None:
        st.markdown(f"Data Map: **{md(details['region'])}** · confidence {details['dm_confidence']:.3g} · "
                    f"variability {details['variability']:.3g} · token accuracy over the epochs "
                    f"{details['correctness']:.2f}"
                    + (f" · last epoch's training loss {details['last_loss']:.3f}"
                       if details.get("last_loss") is not None else ""))
    generation = details.get("generation")
    texts = (("Prompt", details["prompt"]), ("Reference completion", details["reference"]),
             (f"Generation at {ctx.checkpoint or 'a checkpoint'} (greedy)", generation if generation is not None else
              "(no generation of this example at this checkpoint)"))
    for column, (title, text) in zip(st.columns(3), texts):
        with column.container(border=True):
            st.caption(md(title))
            st.text(text)  # dataset and model text: plain, never Markdown
    tokens = details["tokens"]
    if tokens.gold_prob.notna().any():
        with st.expander(f"Reference tokens at {md(ctx.checkpoint)}: the probability of each (teacher forced)"):
            st.dataframe(tokens[["unit", "text", "gold_prob", "rank", "correct"]], hide_index=True,
                         column_config={"unit": st.column_config.NumberColumn("position"),
                                        "text": st.column_config.TextColumn("token"),
                                        "gold_prob": st.column_config.NumberColumn("probability", format="%.4f"),
                                        "rank": st.column_config.NumberColumn("rank (1 = top)"),
                                        "correct": st.column_config.CheckboxColumn("top token")})
    st.caption("Open the Instance view to see why the model gives each completion token its probability.")


def _scores_line(ctx, details: dict) -> str:
    """The checkpoint's loss, perplexity, token accuracy and generation score of the example, as Markdown."""
    if ctx.checkpoint is None:
        return "no checkpoint yet"
    if details.get("loss") is None:
        return f"not scored at **{md(ctx.checkpoint)}** (checkpoints score the evaluation splits)"
    line = (f"at **{md(ctx.checkpoint)}**: loss **{details['loss']:.3f}** · perplexity "
            f"**{details['perplexity']:.4g}** · token accuracy **{details['token_accuracy']:.2f}**")
    if details.get("generation") is None:
        return line + " · no generation"
    if details.get("exact_match") is not None:
        answer = details.get("answer")
        return line + (" · generation: ✓ exact answer" if details["exact_match"] else
                       f" · generation: ✗ answer {md(answer) if answer is not None else '(none)'}, reference "
                       f"{md(details['reference_answer'])}") + f" (score {details['score']:.0f})"
    if details.get("rougeL") is None:
        return line
    return line + f" · generation: ROUGE-L **{details['rougeL']:.3f}** (score)"


# ---- Training page --------------------------------------------------------------------------------------------

def training_view(ctx, curves, draw_curve) -> None:
    """Loss, perplexity, score and token accuracy over checkpoints, and how each example's loss changed."""
    run_id = ctx.run.run_id
    metrics = data.generation_curves(ctx.store, run_id)
    if metrics.empty:
        st.info("This run has no evaluated checkpoints and no training dynamics yet.")
        st.stop()
    passes = metrics.checkpoint.isna().any()  # rows of the training passes
    st.caption("Each evaluated split at each checkpoint (teacher forced on the reference completions: loss = mean "
               "negative log-probability over all their tokens, perplexity = exp(loss), token accuracy = share of "
               "tokens that are the model's top prediction; score = the greedy generation's exact match of the "
               "final answer, or its ROUGE-L where the reference has none)"
               + (", and the training passes of each epoch (measured while the model learned; no generation)."
                  if passes else "."))
    placed = metrics.dropna(subset=["x"])  # a checkpoint with neither an epoch nor a step has no place on a curve
    if placed.empty:
        st.caption("The checkpoints have no epoch or step to place them on a curve: their metrics are in the table "
                   "below.")
    else:
        for row in (CURVES[:2], CURVES[2:]):
            for column, metric in zip(st.columns(2), row):
                with column:
                    shown = placed.dropna(subset=[metric])
                    if shown.empty:
                        st.caption(f"No {metric} yet.")
                    else:
                        draw_curve(shown, metric, None)
    metric_table(metrics, expanded=placed.empty)
    loss_change_table(ctx)


def metric_table(metrics, *, expanded: bool) -> None:
    """The evaluated splits' metrics per checkpoint, as numbers."""
    evaluated = metrics[metrics.checkpoint.notna()]
    if evaluated.empty:
        return
    with st.expander("Metrics per checkpoint (table)", expanded=expanded):
        st.dataframe(evaluated[["split", "checkpoint", "loss", "perplexity", "token accuracy", "score", "exact_match",
                                "rougeL", "n_examples", "n_tokens"]], hide_index=True,
                     column_config={name: st.column_config.NumberColumn(name.replace("_", " "), format="%.4f")
                                    for name in ("loss", "token accuracy", "score", "exact_match", "rougeL")}
                     | {"perplexity": st.column_config.NumberColumn("perplexity", format="%.4g")})


def loss_change_table(ctx) -> None:
    """The examples of a split whose loss rose most between two chosen checkpoints (then the others); selecting a
    row selects the example for every page."""
    st.subheader("Examples whose loss rose")
    run_id, names = ctx.run.run_id, ctx.checkpoints.checkpoint.tolist()
    splits = data.generation_splits(ctx.store, run_id)
    if len(names) < 2 or not splits:
        st.caption("Needs two checkpoints that scored an evaluation split.")
        return
    pick = st.columns(3)
    split = state.choice(pick[0].selectbox, "Split", splits, name="training_split")
    before = state.choice(pick[1].selectbox, "From checkpoint", names, name="flip_before", default=names[-2])
    after = state.choice(pick[2].selectbox, "To checkpoint", names, name="flip_after", default=names[-1])
    changes = data.loss_changes(ctx.store, run_id, split, before, after)
    if changes.empty:
        st.caption(f"No example of the {md(split)} split was scored at both {md(before)} and {md(after)}.")
        return
    rose, n = int(changes.rose.sum()), len(changes)
    if rose:
        summary = (f"The loss of {rose} of the {n} examples rose from {md(before)} to {md(after)}: they come first, "
                   "most risen first, then the others, whose loss fell.")
    else:
        summary = (f"No example's loss rose from {md(before)} to {md(after)}: all {n} fell; the table lists them, "
                   "least fallen first.")
    st.caption(summary + " Select a row to make the example the selected one for the other pages.")
    number = {name: st.column_config.NumberColumn(name.replace("_", " "), format="%.3f")
              for name in ("rise", "loss_before", "loss_after", "score_before", "score_after")}
    event = st.dataframe(
        changes, hide_index=True, on_select="rerun", selection_mode="single-row", key="loss_changes",
        column_config={**number, "rose": st.column_config.CheckboxColumn("rose"),
                       "perplexity_before": st.column_config.NumberColumn("perplexity before", format="%.4g"),
                       "perplexity_after": st.column_config.NumberColumn("perplexity after", format="%.4g"),
                       "text": st.column_config.TextColumn("prompt", width="large"),
                       "generation_after": st.column_config.TextColumn(f"generation at {after}", width="large")})
    rows = selected(event, "rows")
    if rows and rows[0] < len(changes):
        chosen = int(changes.iloc[rows[0]].example_id)
        if state.selected_example() != (split, chosen):
            state.select_example(split, chosen)
        st.success(f"Example #{chosen} ({md(split)}) is selected: open the Instance page to see its tokens' "
                   "probabilities and explain them.")
