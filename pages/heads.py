"""Attention Head view: a layers x heads grid of importance or attention patterns, and reversible pruning."""

import pandas as pd
import streamlit as st

from t3vis import charts

from t3vis.queries import explore
from t3vis.analysis.evaluation import evaluate
from t3vis.analysis.instance_heads import instance_heads, instance_pattern_frame
from t3vis.queries.checkpoint_reads import stored_examples
from t3vis.markdown_text import escape_markdown as md  # store text shown as Markdown
from t3vis_app import data, sidebar, state
from t3vis_app.selection import probability_bars, selected, selected_details
from t3vis_app.models import checkpoint_model, session_cached

ctx = sidebar.render()
run = ctx.run
st.title("Attention heads")
if ctx.checkpoint is None:
    st.info("This run has no ingested checkpoint yet: the head view needs one (`t3vis ingest`).")
    st.stop()

# -- controls -------------------------------------------------------------------------------------
controls = st.columns([2, 2, 3, 2])
show = state.choice(controls[0].radio, "Show", ["importance", "pattern"], name="heads_show", horizontal=True,
                    help="Importance: each head's first-order Taylor importance (Michel et al. 2019). "
                         "Pattern: each head's attention as a small heatmap.")
scale = state.choice(controls[1].radio, "Scale", ["aggregate", "instance"], name="heads_scale", horizontal=True,
                     help="Aggregate: the evaluation set, precomputed at ingest. Instance: the selected example, "
                          "computed live with the pruned heads masked.")
normalisation = state.choice(controls[2].selectbox, "Normalisation", list(explore.IMPORTANCE_COLUMNS),
                             name="heads_norm", format_func=explore.IMPORTANCE_COLUMNS.get,
                             disabled=show != "importance" or scale == "instance",
                             help="How the aggregate importance is scaled (instance scale: ÷ the largest head).")
others = ["—"] + [name for name in ctx.checkpoints.checkpoint if name != ctx.checkpoint]
compare_with = state.choice(controls[3].selectbox, "Difference to checkpoint", others, name="heads_compare",
                            disabled=show != "importance" or scale == "instance",
                            help="Show this checkpoint's importance minus another's (aggregate scale).")

pruned = state.pruned_heads(run.run_id)
prune_row = st.columns([2, 2, 6])
with prune_row[0]:
    prune_mode = state.toggle("Prune mode", name="prune_mode",
                              help="While on, clicking a head prunes it (or restores it). Pruning is a mask applied "
                                   "to your session's computations only; the model itself is never changed.")
with prune_row[1]:
    if st.button("Reset pruning", disabled=not pruned, help="Restore every pruned head."):
        state.set_pruned_heads(run.run_id, [])
        st.rerun()
with prune_row[2]:
    st.caption("Pruned: " + (", ".join(f"L{l}·H{h}" for l, h in sorted(pruned)) if pruned else "none"))

selected_head = state.selected_head(int(run.num_layers), int(run.num_heads))

# -- the selected example and the live analysis ------------------------------------------------------
split, example_id, details = selected_details(ctx)
bundle, why_not = (None, "")
if scale == "instance" or (details is not None):
    bundle, why_not = checkpoint_model(ctx.store, run, ctx.checkpoint)


def analyse(pruned_heads: frozenset):
    key = (ctx.store.path, run.run_id, ctx.checkpoint, split, example_id, pruned_heads)
    return session_cached("instance_heads", key, lambda: instance_heads(
        bundle, details["text"], details.get("text_pair") or None, label=int(details["label"]), pruned=pruned_heads))


# -- the grid ---------------------------------------------------------------------------------------
grid_title = ""
chart = None
if scale == "aggregate":
    importance = data.head_importance(ctx.store, run.run_id, ctx.checkpoint)
    if show == "importance":
        if importance.empty:
            st.info(f"{md(ctx.checkpoint)} has no head importance (ingested with --importance-examples 0).")
            st.stop()
        grid = importance.rename(columns={normalisation: "value"})
        diverging = compare_with != "—"
        if diverging:
            other = data.head_importance(ctx.store, run.run_id, compare_with)
            grid = grid.merge(other[["layer", "head", normalisation]], on=["layer", "head"])
            grid["value"] = grid["value"] - grid[normalisation]
        grid_title = (f"Importance at {ctx.checkpoint}" + (f" minus {compare_with}" if diverging else "")
                      + f" · {importance.split.iloc[0]} split, {int(importance.n_examples.iloc[0])} examples")
        chart = charts.head_importance_chart(grid, value_title="Δ importance" if diverging else "importance",
                                             selected=selected_head, pruned=pruned, diverging=diverging,
                                             title=grid_title)
    else:
        patterns = data.attention_patterns(ctx.store, run.run_id, ctx.checkpoint)
        grid_title = (f"Mean attention at {ctx.checkpoint} over {int(patterns.n_examples.max())} examples, by "
                      "relative position (rows: query position, columns: key position)")
        chart = charts.head_pattern_chart(patterns, selected=selected_head, pruned=pruned, title=grid_title)
else:
    if details is None:
        st.info("Select an example first (click a point or a row in the Projection view): the instance scale "
                "is computed for it.")
        st.stop()
    if bundle is None:
        st.info(why_not)
        st.stop()
    analysis = analyse(pruned)
    if show == "importance":
        grid = pd.DataFrame([{"layer": l, "head": h, "value": float(analysis.importance_global[l, h])}
                             for l in range(int(run.num_layers)) for h in range(int(run.num_heads))])
        grid_title = (f"Importance for example #{example_id} (gold label {details['label_name']}), ÷ the largest head"
                      + (" · pruned heads masked" if pruned else ""))
        chart = charts.head_importance_chart(grid, value_title="importance", selected=selected_head,
                                             pruned=pruned, title=grid_title)
    else:
        patterns = instance_pattern_frame(analysis.attentions, bins=16)
        grid_title = f"Attention for example #{example_id} ({len(analysis.tokens)} tokens)"
        chart = charts.head_pattern_chart(patterns, selected=selected_head, pruned=pruned, title=grid_title)

grid_height = (30 if show == "importance" else 52) * int(run.num_layers) + 90
event = st.altair_chart(chart, on_select="rerun", selection_mode=[charts.HEAD], key=f"heads.{show}.{scale}",
                        height=grid_height)
points = selected(event, charts.HEAD)
clicked = (int(points[0]["layer"]), int(points[0]["head"])) if points else None
if state.newly_clicked("head_click", clicked):
    if prune_mode:
        state.set_pruned_heads(run.run_id, set(pruned) ^ {clicked})
    else:
        state.select_head(clicked)
    st.rerun()
st.caption(("Prune mode: click a head to prune or restore it. " if prune_mode else "Click a head to select it. ")
           + "Pruned heads are faded and marked ✕.")

# -- the selected head ------------------------------------------------------------------------------
if selected_head is not None:
    layer, head = selected_head
    st.subheader(f"Head L{layer}·H{head}" + (" (pruned)" if selected_head in pruned else ""))
    if scale == "instance":
        st.altair_chart(charts.attention_matrix_chart(analysis.tokens, analysis.attentions[layer, head],
                                                      title=f"Attention of L{layer}·H{head} on example #{example_id}"))
    else:
        stats = data.head_stats(ctx.store, run.run_id, ctx.checkpoint, layer, head)
        if stats:
            st.markdown(" · ".join(f"{md(name.replace('attn_', 'to '))}: **{value:.2f}**"
                                   for name, value in stats.items()))

# -- pruning's effect on the selected example --------------------------------------------------------
st.subheader("Effect of pruning")
if details is None:
    st.caption("Select an example to see how the pruned heads change its prediction.")
elif bundle is None:
    st.caption(why_not)
else:
    before, after = analyse(frozenset()), analyse(pruned)
    pruned_label = f"{len(pruned)} head{'' if len(pruned) == 1 else 's'} pruned"
    names = list(run.label_names)
    left, right = st.columns(2)
    for column, result, heading in ((left, before, "All heads"), (right, after, pruned_label)):
        predicted = names[int(result.probs.argmax())]
        with column:
            st.markdown(f"**{heading}**: predicts **{md(predicted)}** for #{example_id} "
                        f"(gold {md(details['label_name'])})")
            probability_bars(names, result.probs, gold=details["label_name"], predicted=predicted)
    if st.button("Measure on the whole evaluation set", disabled=not pruned,
                 help="Accuracy and loss of the checkpoint on the selected example's split, with and without "
                      "the pruned heads."):
        examples = stored_examples(ctx.store.database, run.run_id, split)
        bar = st.progress(0.0, text="Evaluating ...")

        def report(phase, done, total, offset=0.0, label="all heads"):
            bar.progress(min(offset + 0.5 * done / max(total, 1), 1.0), text=f"{label}: {done} / {total}")

        full = evaluate(bundle, examples, progress=report)
        cut = evaluate(bundle, examples, pruned=pruned,
                       progress=lambda p, d, t: report(p, d, t, 0.5, pruned_label))
        bar.empty()
        st.session_state["prune_evaluation"] = {"pruned": sorted(pruned), "split": split, "rows": [
            {"model": "all heads", "accuracy": full.accuracy, "loss": full.loss, "examples": full.n_examples},
            {"model": pruned_label, "accuracy": cut.accuracy, "loss": cut.loss,
             "examples": cut.n_examples}]}
    result = st.session_state.get("prune_evaluation")
    if result and result["pruned"] == sorted(pruned) and result["split"] == split:
        st.dataframe(pd.DataFrame(result["rows"]), hide_index=True,
                     column_config={"accuracy": st.column_config.NumberColumn(format="%.3f"),
                                    "loss": st.column_config.NumberColumn(format="%.4f")})
state.write_url()
