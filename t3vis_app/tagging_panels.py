"""The Projection view's parts for a token-classification run: the tag confusion matrix (a click filters the
words) and the selected sentence with its gold and predicted tags."""

from __future__ import annotations

import streamlit as st

from t3vis import charts
from t3vis.markdown_text import escape_markdown as md
from t3vis.queries import explore
from t3vis_app import data, state
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.selection import selected, selected_details

CELL = "confusion_cell"  # the chosen (gold, predicted) cell, kept across reruns


def confusion_filter(ctx, split: str) -> tuple:
    """Draw the checkpoint's tag confusion matrix; returns the filters of the clicked cell (the words with that
    gold and that predicted tag), or () when none is chosen."""
    confusion = data.tag_confusion(ctx.store, ctx.run.run_id, split, ctx.checkpoint)
    if confusion.empty:
        return ()
    chosen = st.session_state.get(CELL)
    if chosen is not None and len(chosen) == 3:  # (gold, predicted, (run, split)): a cell of this run and split only
        chosen = chosen[:2] if chosen[2] == (ctx.run.run_id, split) else None
    here = (ctx.run.run_id, split)
    with st.expander("Tag confusion matrix", expanded=True):
        left, right = st.columns([3, 1])
        with right:
            value = state.choice(st.radio, "Show", ["count", "rate"], name="confusion_value",
                                 format_func=lambda name: "words" if name == "count" else "rate of the gold tag",
                                 help="Rate: the share of the gold tag's words given each predicted tag (rows sum "
                                      "to 1).")
            if chosen is not None:
                st.markdown(f"Showing the words tagged **{md(chosen[0])}** and predicted **{md(chosen[1])}**.")
                if st.button("Show all words"):
                    st.session_state[CELL] = None
                    st.rerun()
            else:
                st.caption("Click a cell to filter the chart and the Data Table to those words.")
        with left:
            chart = charts.confusion_chart(confusion, tags=list(ctx.run.label_names), value=value,
                                           title=f"Gold × predicted tags · {ctx.checkpoint} · {split} split")
            event = st.altair_chart(chart, on_select="rerun", selection_mode=[charts.CELL], key="confusion",
                                    width="content")
            figure_buttons(chart, name=f"t3vis-{ctx.run.run_id}-{split}-{ctx.checkpoint}-confusion-{value}",
                           caption=f"run {ctx.run.run_id}", key="figure.confusion")
    cells = selected(event, charts.CELL)
    clicked = (str(cells[0]["gold"]), str(cells[0]["predicted"])) if cells and "gold" in cells[0] else None
    if clicked is not None and state.newly_clicked("confusion_click", clicked) and clicked != chosen:
        st.session_state[CELL] = (*clicked, here)
        st.rerun()
    if chosen is None:
        return ()
    return (explore.ValuesFilter("label", (chosen[0],)), explore.ValuesFilter("prediction", (chosen[1],)))


def sentence_panel(ctx, split: str) -> None:
    """The selected sentence: its words with gold and predicted tags at the checkpoint."""
    from t3vis_app.tasks.tagging import tagged_words

    st.subheader("Selected sentence")
    selected_split, example_id, details = selected_details(ctx)
    if example_id is None or selected_split != split:
        st.caption("Click a point or a table row to select a sentence; the Instance view explains its tags.")
        return
    if details is None:
        st.caption(f"Sentence {example_id} is not in the {md(split)} split of this run.")
        return
    words = details["words"]
    scored = words.dropna(subset=["loss"])
    st.markdown(f"**#{example_id}** · {md(split)} split · {len(words)} words"
                + (f" · {int((~scored.correct.astype(bool)).sum())} tagged wrong at **{md(ctx.checkpoint)}**, "
                   f"loss {details['loss']:.3f}" if len(scored) else ""))
    tagged_words(ctx, split, example_id, words, key="panel_words")
    st.caption("Open the Instance view to explain a word's tag.")
