"""Training page: learning curves, per-class accuracy over checkpoints, and the examples that flipped."""

import streamlit as st

from t3vis import charts
from t3vis.markdown_text import escape_markdown as md
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, TOKEN_CLASSIFICATION
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app import data, sidebar, state
from t3vis_app.selection import selected

ctx = sidebar.render()
run_id = ctx.run.run_id
st.title("Training")

curves = data.learning_curves(ctx.store, run_id)
x_title = "epoch" if ctx.checkpoints.epoch.notna().any() else "step"


def curve_with_figure(frame, metric: str, split: str | None = None) -> None:
    """One learning curve, with its figure export buttons."""
    chart = charts.learning_curve_chart(frame, metric, x_title=x_title)
    st.altair_chart(chart)
    figure_buttons(chart, name=f"t3vis-{run_id}-{metric}", caption=f"run {run_id}" + (f" · {split} split" if split
                                                                                      else ""), key=f"figure.{metric}")

if ctx.run.task == EXTRACTIVE_SUMMARIZATION:
    summary = data.summary_curves(ctx.store, run_id)
    if summary.empty and curves.empty:
        st.info("This run has no checkpoints and no training dynamics yet.")
        st.stop()
    st.caption("ROUGE (F1) of each checkpoint's predicted summaries (its 3 highest-scoring sentences) against the "
               "references; Lead-3 and the oracle as references lines. Loss: mean sentence binary cross-entropy.")
    left, right = st.columns(2)
    for column, metric in ((left, "rouge1"), (right, "rougeL")):
        with column:
            curve_with_figure(summary, metric)
    if not curves.empty:
        curve_with_figure(curves, "loss")
    st.stop()
if ctx.run.task == TOKEN_CLASSIFICATION:
    entity_curves = data.entity_f1_curves(ctx.store, run_id)
    if entity_curves.empty and curves.empty:
        st.info("This run has no checkpoints and no training dynamics yet.")
        st.stop()
    if not entity_curves.empty:
        split = state.choice(st.selectbox, "Split", sorted(entity_curves.split.unique()), name="training_split")
        shown = entity_curves[entity_curves.split == split].rename(columns={"entity": "source"})
        st.caption("Entity-level F1, precision and recall (strict IOB2: an entity counts when its type and exact "
                   "span match) of each checkpoint, per entity type and over all entities (\"all\").")
        left, right = st.columns(2)
        for column, metric in ((left, "f1"), (right, "recall")):
            with column:
                curve_with_figure(shown, metric, split)
    if not curves.empty:
        curve_with_figure(curves, "loss")
    names = ctx.checkpoints.checkpoint.tolist()
    st.subheader("Sentences whose tags changed")
    if len(names) < 2 or entity_curves.empty:
        st.caption("Needs two checkpoints.")
        st.stop()
    pick = st.columns(2)
    before = state.choice(pick[0].selectbox, "From checkpoint", names, name="flip_before", default=names[-2])
    after = state.choice(pick[1].selectbox, "To checkpoint", names, name="flip_after", default=names[-1])
    changed = data.changed_sentences(ctx.store, run_id, split, before, after)
    st.caption(f"{len(changed)} sentence{'' if len(changed) == 1 else 's'} changed some predicted tags: "
               f"{int(changed.fixed.sum())} words fixed, {int(changed.broken.sum())} broken. Select a row to make "
               "the sentence the selected example for the other pages.")
    event = st.dataframe(changed, hide_index=True, on_select="rerun", selection_mode="single-row", key="changed",
                         column_config={"text": st.column_config.TextColumn(width="large")})
    rows = selected(event, "rows")
    if rows and rows[0] < len(changed):
        chosen = int(changed.iloc[rows[0]].example_id)
        if state.selected_example() != (split, chosen):
            state.select_example(split, chosen)
        st.success(f"Sentence #{chosen} ({md(split)}) is selected: open the Instance page to explain its tags.")
    st.stop()
if curves.empty:
    st.info("This run has no predictions and no training dynamics yet.")
    st.stop()
left, right = st.columns(2)
for column, metric in ((left, "accuracy"), (right, "loss")):
    with column:
        curve_with_figure(curves, metric)

splits = data.prediction_splits(ctx.store, run_id)
if not splits:
    st.stop()
split = state.choice(st.selectbox, "Split", splits, name="training_split")
per_class = data.per_class_accuracy(ctx.store, run_id, split)
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
st.caption(f"{len(flipped)} example{'' if len(flipped) == 1 else 's'} changed their prediction: {counts.get('fixed', 0)} fixed, "
           f"{counts.get('broken', 0)} broken, {counts.get('changed', 0)} changed between wrong labels. "
           "Select a row to make it the selected example for the other pages.")
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
