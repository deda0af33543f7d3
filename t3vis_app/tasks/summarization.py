"""The Instance view of an extractive-summarization run: a document sentence by sentence.

Each sentence shows its predicted score, whether it is in the predicted summary and in the oracle's;
the reference summary is beside it. Selecting a sentence makes its score the output to explain: the
tokens of the whole document are coloured by the chosen saliency method. With a head selected in the
Attention heads view, clicking a token colours the document by that token's attention instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from t3vis.analysis.document_view import document_attentions
from t3vis.attribution.base import prepare_document
from t3vis.markdown_text import escape_markdown as md
from t3vis_app.sticky import sticky_controls
from t3vis_app import data, state
from t3vis_app.models import checkpoint_model, session_cached
from t3vis_app.token_colours import attribution_on_request, saliency_controls, show_tokens
from t3vis_app.selection import selected

SENTENCE = "summary_sentence"  # the explained sentence, kept across reruns and pages


def render(ctx) -> None:
    run = ctx.run
    split, example_id = state.selected_example()
    details = None if example_id is None else data.document_details(ctx.store, run.run_id, split, example_id,
                                                                   ctx.checkpoint)
    if details is None:
        st.info("Select a document first: click a point or a table row in the Projection view.")
        st.stop()
    bundle, why_not = checkpoint_model(ctx.store, run, ctx.checkpoint)
    if bundle is None:
        st.info(why_not)
        st.stop()
    sentences: pd.DataFrame = details["sentences"]
    pruned = state.pruned_heads(run.run_id)
    key = (ctx.store.path, run.run_id, ctx.checkpoint, split, example_id)
    example = session_cached("document_inputs", key, lambda: prepare_document(bundle, sentences.text.tolist()))
    attentions, probs = session_cached("document_attentions", (*key, pruned),
                                       lambda: document_attentions(bundle, example, pruned), size=2)
    kept = example.n_outputs

    # -- the document, sentence by sentence ----------------------------------------------------------
    rouge1 = details.get("rouge1")
    st.markdown(f"**#{example_id}** · {md(split)} split · {len(sentences)} sentences, {kept} read by the model"
                + ("" if rouge1 is None or pd.isna(rouge1) else f" · ROUGE-1 of the predicted summary "
                   f"**{rouge1:.3f}** at {md(ctx.checkpoint)}")
                + (f" · {len(pruned)} pruned head{'' if len(pruned) == 1 else 's'}" if pruned else ""))
    if example.truncated:
        st.warning(f"The document is longer than the model's limit ({bundle.max_length} tokens): its last "
                   f"{len(sentences) - kept} sentences were cut and are never scored.")
    order = np.argsort(-probs, kind="stable")
    in_summary = set(order[:3].tolist())
    target = st.session_state.get(SENTENCE)
    if target is None or target >= kept:
        target = int(order[0])  # the most probable sentence until the user picks one
    table = pd.DataFrame({
        "explained": ["▶" if i == target else "" for i in sentences.unit],
        "#": sentences.unit,
        "sentence": sentences.text,
        "probability": [float(probs[i]) if i < kept else None for i in sentences.unit],
        "summary": ["✓" if i in in_summary else "" for i in sentences.unit],
        "oracle": ["✓" if label == 1 else "" for label in sentences.label],
        "read": ["" if flag else "cut" for flag in sentences.kept],
    })
    left, right = st.columns([3, 1])
    with left:
        st.caption("Select a sentence to explain its score. The predicted summary is the 3 most probable "
                   "sentences" + (", with the pruned heads masked." if pruned else "."))
        event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                             key="document_sentences", height=min(420, 35 * (len(table) + 1) + 3),
                             column_config={
                                 **{name: st.column_config.TextColumn(width="small")
                                    for name in ("explained", "summary", "oracle", "read")},
                                 "#": st.column_config.NumberColumn(width="small"),
                                 "sentence": st.column_config.TextColumn(width="large"),
                                 "probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                format="%.3f"),
                             })
    with right:
        st.markdown("**Reference summary**")
        st.text(details.get("reference") or "")
        baselines = details["baselines"]
        if len(baselines):
            st.caption(" · ".join(f"{md(row.system)} ROUGE-1 {row.rouge1:.3f}" for row in baselines.itertuples()))
    rows = selected(event, "rows")
    if rows and rows[0] < len(table) and state.newly_clicked("document_sentence_click", rows[0]):
        chosen = int(table.iloc[rows[0]]["#"])
        if chosen < kept and chosen != target:
            st.session_state[SENTENCE] = chosen
            st.rerun()

    # -- controls ------------------------------------------------------------------------------------
    controls = sticky_controls().columns([2, 2, 2])  # kept in view while the tokens scroll
    selected_head = state.selected_head(int(run.num_layers), int(run.num_heads))
    method, merge, colour_by_attention = saliency_controls(controls[0], controls[1], controls[2],
                                                           selected_head=selected_head, coloured="the document")
    attribution = attribution_on_request(method, (*key, pruned, method.name, target), lambda: method.attribute(
        bundle, example, target, pruned=pruned))

    # -- the tokens ----------------------------------------------------------------------------------
    tokens = example.tokens
    token_index, showing_attention = show_tokens(
        tokens, attentions=attentions, attribution=attribution, explained=f"{method.label} of sentence {target}'s score",
        merge=merge, colour_by_attention=colour_by_attention, selected_head=selected_head, key="document_tokens",
        line_starts={int(position) for position in example.inputs["cls_positions"][0].tolist()},
        figure=(f"t3vis-{run.run_id}-{split}-{example_id}", f"run {run.run_id} · {ctx.checkpoint} · {split} split · "
                f"document #{example_id}"))
    st.caption(
        f"Explaining sentence {target}: “{md(sentences.text.iloc[target][:120])}”. "
        + ("Head: " + (f"L{selected_head[0]}·H{selected_head[1]}" if selected_head else
                       "none selected (choose one in the Attention heads view to see a token's attention)"))
        + (". Darker: more attention from the clicked token." if showing_attention
           else ". Red: raises the sentence's score; blue: lowers it. Each sentence starts a line."))
