"""Attention Head view: a layers x heads grid of importance or attention patterns, and reversible pruning."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from t3vis import charts

from t3vis.queries import explore
from t3vis.analysis.instance_heads import instance_pattern_frame
from t3vis.markdown_text import escape_markdown as md  # store text shown as Markdown
from t3vis_app import data, sidebar, state
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.sticky import sticky_controls
from t3vis_app.selection import selected
from t3vis_app.models import checkpoint_model, session_cached
from t3vis_app.tasks import app_task

ctx = sidebar.render()
run = ctx.run
TASK = app_task(run.task)  # what an example and its outputs are (t3vis_app/tasks)
st.title("Attention heads")
if ctx.checkpoint is None:
    st.info("This run has no ingested checkpoint yet: the head view needs one (`t3vis ingest`).")
    st.stop()

# -- controls -------------------------------------------------------------------------------------
controls_box = sticky_controls()  # kept in view while the grid and the matrices scroll
controls = controls_box.columns([3, 2, 3, 2])
show = state.choice(controls[0].radio, "Show", ["importance", "pattern", "function"], name="heads_show",
                    horizontal=True,
                    help="Importance: each head's first-order Taylor importance (Michel et al. 2019). "
                         "Pattern: each head's attention as a small heatmap. Function: how much attention each "
                         "head gives to the same token elsewhere, its own sentence, its neighbours, special "
                         "tokens or itself (the head functions of the T3-Vis case study), to the previous token, "
                         "and to the token after an earlier occurrence of the current one (induction heads).")
scale = state.choice(controls[1].radio, "Scale", ["aggregate", "instance"], name="heads_scale", horizontal=True,
                     help="Aggregate: the evaluation set, precomputed at ingest. Instance: the selected example, "
                          "computed live with the pruned heads masked.")
if show == "function":
    function = state.choice(controls[2].selectbox, "Head function", list(explore.HEAD_FUNCTIONS),
                            name="heads_function", format_func=lambda name: "attention to "
                            + explore.HEAD_FUNCTIONS[name],
                            help="The mean attention mass each head gives, over the aggregate sample.")
    normalisation = "importance_global"
else:
    normalisation = state.choice(controls[2].selectbox, "Normalisation", list(explore.IMPORTANCE_COLUMNS),
                                 name="heads_norm", format_func=explore.IMPORTANCE_SHORT.get,
                                 disabled=show != "importance" or scale == "instance",
                                 help="How the aggregate importance is scaled: "
                                      + "; ".join(explore.IMPORTANCE_COLUMNS.values())
                                      + ". (Instance scale: ÷ the largest head.)")
others = ["—"] + [name for name in ctx.checkpoints.checkpoint if name != ctx.checkpoint]
compare_with = state.choice(controls[3].selectbox, "Difference to checkpoint", others, name="heads_compare",
                            disabled=show != "importance" or scale == "instance",
                            help="Show this checkpoint's importance minus another's (aggregate scale).")

pruned = state.pruned_heads(run.run_id)
prune_row = controls_box.columns([2, 2, 6])
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
split, example_id, details = TASK.heads_example(ctx)
bundle, why_not = (None, "")
if scale == "instance" or (details is not None):
    bundle, why_not = checkpoint_model(ctx.store, run, ctx.checkpoint)


def analysis_key(pruned_heads: frozenset) -> tuple:
    """What one instance analysis depends on (the loaded model too: a reloaded one is analysed anew)."""
    return ctx.store.path, run.run_id, ctx.checkpoint, split, example_id, pruned_heads, id(bundle)


def analyse(pruned_heads: frozenset):
    return session_cached("instance_heads", analysis_key(pruned_heads),
                          lambda: TASK.analyse_heads(bundle, details, run, pruned_heads), size=4)


# -- the grid ---------------------------------------------------------------------------------------
grid_title = ""
chart = None
if show == "function":
    if scale == "instance":
        st.info("Head functions are measured over the aggregate sample at ingestion: switch the scale to "
                "aggregate. At instance scale, select a head and click a token in the Instance view to see what "
                "it attends to.")
        st.stop()
    functions = data.head_functions(ctx.store, run.run_id, ctx.checkpoint)
    if functions.empty or functions[function].isna().all():
        if function == "attn_induction" and not functions.empty and functions["attn_same_token"].notna().any():
            st.info("No token of the examples averaged repeats an earlier one, so no head could show induction "
                    "(attention to the token after an earlier occurrence of the current token).")
        else:
            st.info(f"{md(ctx.checkpoint)} has no head functions: it was ingested before t3vis measured them. "
                    "Ingest it again to measure them.")
        st.stop()
    grid = functions.rename(columns={function: "value"})
    grid_title = (f"Attention to {explore.HEAD_FUNCTIONS[function]} at {ctx.checkpoint} · "
                  f"{functions.split.iloc[0]} split, {int(functions.n_examples.iloc[0])} examples")
    chart = charts.head_importance_chart(grid, value_title="attention mass", selected=selected_head,
                                         pruned=pruned, title=grid_title)
elif scale == "aggregate":
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
        grid_title = (f"Importance for example #{example_id} ({TASK.importance_target(details)}), ÷ the largest head"
                      + (" · pruned heads masked" if pruned else ""))
        chart = charts.head_importance_chart(grid, value_title="importance", selected=selected_head,
                                             pruned=pruned, title=grid_title)
    else:
        patterns = instance_pattern_frame(analysis.attentions)
        grid_title = f"Attention for example #{example_id} ({len(analysis.tokens)} tokens)"
        chart = charts.head_pattern_chart(patterns, selected=selected_head, pruned=pruned, title=grid_title)

grid_height = max(200, (52 if show == "pattern" else 30) * int(run.num_layers) + 90)  # room for the legend
grid_key = f"heads.{show}.{scale}"


def on_head_click() -> None:
    """Runs before the rerun a click starts (only when the chart's selection changed), so that one run draws the
    new selection (no second run)."""
    points = selected(st.session_state.get(grid_key), charts.HEAD)
    clicked = (int(points[0]["layer"]), int(points[0]["head"])) if points else None
    if clicked is None:
        return
    if prune_mode:
        state.set_pruned_heads(run.run_id, set(state.pruned_heads(run.run_id)) ^ {clicked})
    else:
        state.select_head(clicked)


st.altair_chart(chart, on_select=on_head_click, selection_mode=[charts.HEAD], key=grid_key, height=grid_height)
figure_buttons(chart, name=f"t3vis-{run.run_id}-{ctx.checkpoint}-heads-{show}-{scale}",
               caption=f"run {run.run_id} · {ctx.checkpoint}" + (f" · {split} split · example #{example_id}"
                                                                  if scale == "instance" else ""), key="figure.heads")
st.caption(("Prune mode: click a head to prune or restore it. " if prune_mode else "Click a head to select it. ")
           + "Pruned heads are faded and marked ✕.")

# -- the selected head ------------------------------------------------------------------------------
if selected_head is not None:
    layer, head = selected_head
    st.subheader(f"Head L{layer}·H{head}" + (" (pruned)" if selected_head in pruned else ""))
    if scale == "instance":
        matrix = session_cached("attention_chart", (*analysis_key(pruned), layer, head), lambda: charts.attention_matrix_chart(
            analysis.tokens, analysis.attentions[layer, head],
            title=f"Attention of L{layer}·H{head} on example #{example_id}"), size=4)  # a long input's: costly
        matrix_caption = f"run {run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id} · layer {layer}, head {head}"
        if len(analysis.tokens) > charts.RASTER_ABOVE:  # drawn as an image; a click on a row picks that token
            event = st.altair_chart(matrix, on_select="rerun", selection_mode=[charts.QUERY], key="attention_rows")
            rows = selected(event, charts.QUERY)
            clicked = int(rows[0]["query_index"]) if rows else None
            if state.newly_clicked("attention_row_click", clicked):
                state.select_token(clicked, show_attention=True)
            st.caption(f"{len(analysis.tokens)} tokens: one pixel per query and key up to {charts.RASTER_SIDE}, "
                       "beyond that one per block of consecutive ones. Hover a row for its token and the keys it "
                       "attends to most; click it to colour the Instance view by that token's attention.")
        else:
            st.altair_chart(matrix)
        figure_buttons(matrix, name=f"t3vis-{run.run_id}-{ctx.checkpoint}-{example_id}-L{layer}H{head}-attention",
                       caption=matrix_caption, key="figure.attention")
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
    TASK.pruning_effect(ctx, details, before, after, pruned_label=pruned_label, split=split, example_id=example_id)
    if st.button("Measure on the whole evaluation set", disabled=not pruned,
                 help=f"The checkpoint's metrics on the selected example's split ({TASK.evaluation_help}), with and "
                      "without the pruned heads."):
        bar = st.progress(0.0, text="Evaluating ...")

        def report(phase, done, total, offset=0.0, label="all heads"):
            bar.progress(min(offset + 0.5 * done / max(total, 1), 1.0), text=f"{label}: {done} / {total}")

        full = TASK.evaluate_pruning(bundle, ctx, split, pruned=frozenset(), progress=report)
        cut = TASK.evaluate_pruning(bundle, ctx, split, pruned=pruned,
                                    progress=lambda p, d, t: report(p, d, t, 0.5, pruned_label))
        bar.empty()
        st.session_state["prune_evaluation"] = {"pruned": sorted(pruned), "split": split, "rows": [
            {"model": name, **{("examples" if key == "n_examples" else key): value for key, value in asdict(result).items()}}
            for name, result in (("all heads", full), (pruned_label, cut))]}
    result = st.session_state.get("prune_evaluation")
    if result and result["pruned"] == sorted(pruned) and result["split"] == split:
        st.dataframe(pd.DataFrame(result["rows"]), hide_index=True,
                     column_config={name: st.column_config.NumberColumn(format="%.4f" if name == "loss" else "%.3f")
                                    for name in ("accuracy", "loss", "rouge1", "rouge2", "rougeL", "f1", "precision",
                                                 "recall")})
state.write_url()
