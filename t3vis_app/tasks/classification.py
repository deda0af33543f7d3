"""The app side of sequence classification: one label per text (or text pair).

Instance: the text's tokens coloured by the saliency of a class's logit (or by a head's attention from a clicked
token), with the class probabilities. Heads: importance for the gold label, pruning's effect on the probabilities,
accuracy and loss over the split. Training: accuracy and loss curves, per-class accuracy, the examples whose
prediction flipped between two checkpoints.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from t3vis import charts
from t3vis.analysis.evaluation import evaluate
from t3vis.analysis.instance_heads import attention_on_demand, instance_heads, instance_outputs
from t3vis.attribution import prepare
from t3vis.markdown_text import escape_markdown as md  # store text shown as Markdown
from t3vis.queries.checkpoint_reads import stored_examples
from t3vis.tasks import SEQUENCE_CLASSIFICATION, task_spec
from t3vis_app import data, state
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.models import checkpoint_model_or_stop, session_cached
from t3vis_app.selection import probability_bars, selected, selected_details
from t3vis_app.sticky import sticky_controls
from t3vis_app.tasks.base import queries_for
from t3vis_app.token_colours import attribution_on_request, saliency_controls, show_tokens


class ClassificationApp:
    spec = task_spec(SEQUENCE_CLASSIFICATION)
    data_map_points = ("examples",)
    evaluation_help = "accuracy and loss"

    def projection_filters(self, ctx, split: str, points: str, attribute_names) -> tuple:
        return ()

    def selection_panel(self, ctx, split: str) -> None:
        example_panel(ctx, split)

    def instance_view(self, ctx) -> None:
        instance_view(ctx)

    def heads_example(self, ctx):
        return selected_details(ctx)

    def analyse_heads(self, bundle, details: dict, run, pruned: frozenset):
        return instance_heads(bundle, details["text"], details.get("text_pair") or None, label=int(details["label"]),
                              pruned=pruned)

    def importance_target(self, details: dict) -> str:
        return f"gold label {details['label_name']}"

    def pruning_effect(self, ctx, details: dict, before, after, *, pruned_label: str, split: str,
                       example_id: int) -> None:
        names = list(ctx.run.label_names)
        for column, result, heading in zip(st.columns(2), (before, after), ("All heads", pruned_label)):
            predicted = names[int(result.probs.argmax())]
            with column:
                st.markdown(f"**{heading}**: predicts **{md(predicted)}** for #{example_id} "
                            f"(gold {md(details['label_name'])})")
                probability_bars(names, result.probs, gold=details["label_name"], predicted=predicted, figure=(
                    f"t3vis-{ctx.run.run_id}-{split}-{example_id}-{heading}-probabilities",
                    f"run {ctx.run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id} · {heading}"),
                    key=f"probabilities.{heading}")

    def evaluate_pruning(self, bundle, ctx, split: str, *, pruned: frozenset, progress):
        return evaluate(bundle, stored_examples(ctx.store.database, ctx.run.run_id, split), pruned=pruned,
                        progress=progress)

    def training_view(self, ctx, curves, draw_curve) -> None:
        training_view(ctx, curves, draw_curve)

    def example_queries(self):
        return queries_for(SEQUENCE_CLASSIFICATION)


def example_panel(ctx, split: str) -> None:
    """Text, label, prediction and class probabilities of the selected example."""
    st.subheader("Selected example")
    selected_split, example_id, details = selected_details(ctx)
    if example_id is None or selected_split != split:
        st.caption("Click a point or a table row to select an example; the other views follow the selection.")
        return
    if details is None:
        st.caption(f"Example {example_id} is not in the {md(split)} split of this run.")
        return
    label_names = list(details["label_names"])
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**#{example_id}** · {md(split)} split · label **{md(details['label_name'])}**"
                    + (" · truncated" if details["truncated"] else ""))
        st.text(details["text"] + ("" if not details.get("text_pair") else "\n\n" + details["text_pair"]))
    with right:
        probs = details.get("probs")
        if probs is None or (isinstance(probs, float)):
            st.caption("No prediction at this checkpoint for this split.")
        else:
            predicted = label_names[int(details["pred"])]
            st.markdown(f"Prediction at **{md(ctx.checkpoint)}**: **{md(predicted)}** "
                        f"(loss {details['loss']:.3f})")
            probability_bars(label_names, probs, gold=details["label_name"], predicted=predicted, figure=(
                f"t3vis-{ctx.run.run_id}-{split}-{example_id}-probabilities",
                f"run {ctx.run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id}"))


def instance_view(ctx) -> None:
    """The selected text's tokens coloured by saliency of a class (or by a head's attention), its probabilities."""
    run = ctx.run
    split, example_id, details = selected_details(ctx)
    if details is None:
        st.info("Select an example first: click a point or a table row in the Projection view.")
        st.stop()
    bundle = checkpoint_model_or_stop(ctx)

    pruned = state.pruned_heads(run.run_id)
    names = list(run.label_names)
    text, pair = details["text"], details.get("text_pair") or None
    key = (ctx.store.path, run.run_id, ctx.checkpoint, split, example_id, pruned, id(bundle))  # a reloaded model: anew
    example = session_cached("instance_example", key, lambda: prepare(bundle, text, pair))
    header = st.container()  # filled once the prediction is known (it comes with the explanation)

    # -- controls -----------------------------------------------------------------------------------
    controls = sticky_controls().columns([2, 2, 2, 2])  # kept in view while the tokens scroll
    selected_head = state.selected_head(int(run.num_layers), int(run.num_heads))
    method, merge, colour_by_attention = saliency_controls(controls[0], controls[2], controls[3],
                                                           selected_head=selected_head)
    if method.slow:  # computed only on request: the prediction needs its own (fast) forward pass
        probs = session_cached("instance_outputs", key, lambda: instance_outputs(bundle, text, pair,
                                                                                 pruned=pruned)).probs
        of_predicted = None
    else:  # the explanation of the predicted class, found in the method's own forward pass
        of_predicted = attribution_on_request(method, (*key, method.name, None), lambda: method.attribute(
            bundle, example, None, pruned=pruned))
        probs = of_predicted.probs
    predicted = int(np.argmax(probs))
    target = state.choice(controls[1].selectbox, "Explain class", list(range(len(names))), name="instance_target",
                          default=predicted, format_func=lambda index: names[index] + (" (predicted)" if
                                                                                      index == predicted else ""))
    attribution = of_predicted if of_predicted is not None and target == of_predicted.target else \
        attribution_on_request(method, (*key, method.name, target), lambda: method.attribute(
            bundle, example, target, pruned=pruned))

    # -- the example --------------------------------------------------------------------------------
    with header:
        left, right = st.columns([3, 2])
        with left:
            st.markdown(f"**#{example_id}** · {md(split)} split · gold label **{md(details['label_name'])}** · "
                        f"predicted **{md(names[predicted])}** at {md(ctx.checkpoint)}"
                        + (f" · {len(pruned)} pruned head{'' if len(pruned) == 1 else 's'}" if pruned else ""))
            if example.truncated:
                st.warning(f"The text is longer than the model's limit and was cut to {bundle.max_length} tokens.")
        with right:
            probability_bars(names, probs, gold=details["label_name"], predicted=names[predicted], figure=(
                f"t3vis-{run.run_id}-{split}-{example_id}-probabilities",
                f"run {run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id}"
                + (f" · {len(pruned)} heads pruned" if pruned else "")))

    # -- the tokens ---------------------------------------------------------------------------------
    tokens = example.tokens
    attentions = session_cached("instance_attention", key, lambda: attention_on_demand(bundle, example.inputs,
                                                                                         pruned=pruned))
    token_index, showing_attention = show_tokens(
        tokens, attentions=attentions, attribution=attribution,
        explained=f"{method.label} for class {names[target]}", merge=merge, colour_by_attention=colour_by_attention,
        selected_head=selected_head, key="tokens",
        figure=(f"t3vis-{run.run_id}-{split}-{example_id}", f"run {run.run_id} · {ctx.checkpoint} · {split} split · "
                f"example #{example_id}" + (f" · {len(pruned)} heads pruned" if pruned else "")))

    st.caption(
        ("Head: " + (f"L{selected_head[0]}·H{selected_head[1]} (from the Attention heads view)" if selected_head
                     else "none selected: choose one in the Attention heads view to see attention from a token"))
        + " · Token: " + (f"{token_index} ({md(tokens[token_index])})" if token_index is not None else "click one")
        + (". Darker: more attention from the clicked token." if showing_attention
           else ". Red: supports the explained class; blue: speaks against it."))


def training_view(ctx, curves, draw_curve) -> None:
    """Accuracy and loss over checkpoints, accuracy per class, and the examples whose prediction flipped."""
    run_id = ctx.run.run_id
    if curves.empty:
        st.info("This run has no predictions and no training dynamics yet.")
        st.stop()
    left, right = st.columns(2)
    for column, metric in ((left, "accuracy"), (right, "loss")):
        with column:
            draw_curve(curves, metric, None)

    splits = data.prediction_splits(ctx.store, run_id)
    if not splits:
        st.stop()
    split = state.choice(st.selectbox, "Split", splits, name="training_split")
    per_class = data.per_class_accuracy(ctx.store, run_id, split)
    x_title = "epoch" if ctx.checkpoints.epoch.notna().any() else "step"
    per_class_chart = charts.per_class_accuracy_chart(per_class, x_title=x_title, split=split)
    st.altair_chart(per_class_chart)
    figure_buttons(per_class_chart, name=f"t3vis-{run_id}-{split}-per-class", caption=f"run {run_id} · {split} split",
                   key="figure.per_class")

    st.subheader("Examples whose prediction flipped")
    names = ctx.checkpoints.checkpoint.tolist()
    if len(names) < 2:
        st.caption("Needs two checkpoints.")
        st.stop()
    pick = st.columns(2)
    before = state.choice(pick[0].selectbox, "From checkpoint", names, name="flip_before", default=names[-2])
    after = state.choice(pick[1].selectbox, "To checkpoint", names, name="flip_after", default=names[-1])
    flipped = data.flipped_examples(ctx.store, run_id, split, before, after)
    counts = flipped.change.value_counts().to_dict()
    st.caption(f"{len(flipped)} example{'' if len(flipped) == 1 else 's'} changed their prediction: "
               f"{counts.get('fixed', 0)} fixed, {counts.get('broken', 0)} broken, {counts.get('changed', 0)} changed "
               "between wrong labels. Select a row to make it the selected example for the other pages.")
    event = st.dataframe(flipped, hide_index=True, on_select="rerun", selection_mode="single-row", key="flipped",
                         column_config={"loss_before": st.column_config.NumberColumn(format="%.3f"),
                                        "loss_after": st.column_config.NumberColumn(format="%.3f")})
    rows = selected(event, "rows")
    if rows and rows[0] < len(flipped):
        chosen = int(flipped.iloc[rows[0]].example_id)
        if state.selected_example() != (split, chosen):
            state.select_example(split, chosen)
        st.success(f"Example #{chosen} ({md(split)}) is selected: open the Instance or Attention heads page to look "
                   "at it.")
