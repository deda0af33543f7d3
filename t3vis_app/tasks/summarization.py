"""The app side of extractive summarization; its Instance view shows a document sentence by sentence.

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
from t3vis.analysis.evaluation import document_pruning_table, evaluate_summaries
from t3vis.analysis.instance_heads import document_heads
from t3vis.attribution.base import prepare_document
from t3vis.markdown_text import escape_markdown as md
from t3vis.queries.checkpoint_reads import stored_documents
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, task_spec
from t3vis_app.sticky import sticky_controls
from t3vis_app import data, state
from t3vis_app.models import checkpoint_model_or_stop, session_cached
from t3vis_app.token_colours import attribution_on_request, saliency_controls, show_tokens
from t3vis_app.selection import selected
from t3vis_app.tasks.base import queries_for

SENTENCE = "summary_sentence"  # the explained sentence, kept across reruns and pages


class SummarizationApp:
    spec = task_spec(EXTRACTIVE_SUMMARIZATION)
    data_map_points = ("units",)
    evaluation_help = "ROUGE and loss"

    def projection_filters(self, ctx, split: str, points: str, attribute_names) -> tuple:
        return ()

    def selection_panel(self, ctx, split: str) -> None:
        document_panel(ctx, split)

    def instance_view(self, ctx) -> None:
        instance_view(ctx)

    def heads_example(self, ctx):
        split, example_id = state.selected_example()
        details = None if example_id is None else data.document_details(ctx.store, ctx.run.run_id, split,
                                                                       example_id, ctx.checkpoint)
        return split, example_id, details

    def analyse_heads(self, bundle, details: dict, run, pruned: frozenset):
        sentences = details["sentences"]
        return document_heads(bundle, sentences.text.tolist(), sentences.label.to_numpy(), pruned=pruned)

    def importance_target(self, details: dict) -> str:
        return "its loss against the oracle"

    def pruning_effect(self, ctx, details: dict, before, after, *, pruned_label: str, split: str,
                       example_id: int) -> None:
        st.dataframe(document_pruning_table(details["sentences"], before.probs, after.probs, pruned_label),
                     hide_index=True, column_config={"sentence": st.column_config.TextColumn(width="large")})

    def evaluate_pruning(self, bundle, ctx, split: str, *, pruned: frozenset, progress):
        return evaluate_summaries(bundle, stored_documents(ctx.store.database, ctx.run.run_id, split), pruned=pruned,
                                  progress=progress)

    def training_view(self, ctx, curves, draw_curve) -> None:
        summary = data.summary_curves(ctx.store, ctx.run.run_id)
        if summary.empty and curves.empty:
            st.info("This run has no checkpoints and no training dynamics yet.")
            st.stop()
        st.caption("ROUGE (F1) of each checkpoint's predicted summaries (its 3 highest-scoring sentences) against the "
                   "references; Lead-3 and the oracle as references lines. Loss: mean sentence binary cross-entropy.")
        left, right = st.columns(2)
        for column, metric in ((left, "rouge1"), (right, "rougeL")):
            with column:
                draw_curve(summary, metric, None)
        if not curves.empty:
            draw_curve(curves, "loss", None)

    def example_queries(self):
        return queries_for(EXTRACTIVE_SUMMARIZATION)


def document_panel(ctx, split: str) -> None:
    """The selected document of a summarization run: its predicted summary, the oracle's and the reference."""
    st.subheader("Selected document")
    selected_split, example_id = state.selected_example()
    if example_id is None or selected_split != split:
        st.caption("Click a point or a table row to select a document; the Instance view shows it sentence by "
                   "sentence.")
        return
    details = data.document_details(ctx.store, ctx.run.run_id, split, example_id, ctx.checkpoint)
    if details is None:
        st.caption(f"Document {example_id} is not in the {md(split)} split of this run.")
        return
    sentences = details["sentences"]
    rouge1 = details.get("rouge1")
    scored = "" if rouge1 is None or pd.isna(rouge1) else f" · ROUGE-1 {rouge1:.3f} at **{md(ctx.checkpoint)}**"
    st.markdown(f"**#{example_id}** · {md(split)} split · {len(sentences)} sentences"
                + (f", {int((~sentences.kept).sum())} cut at the token limit" if (~sentences.kept).any() else "")
                + scored)
    left, right = st.columns(2)
    with left:
        st.markdown("**Predicted summary**" if sentences.selected.notna().any() else "**Oracle summary**")
        chosen = sentences[sentences.selected.fillna(False).astype(bool)] if sentences.selected.notna().any() \
            else sentences[sentences.label == 1]
        st.text("\n".join(chosen.text))
    with right:
        st.markdown("**Reference**")
        st.text(details.get("reference") or "")


def instance_view(ctx) -> None:
    run = ctx.run
    split, example_id = state.selected_example()
    details = None if example_id is None else data.document_details(ctx.store, run.run_id, split, example_id,
                                                                   ctx.checkpoint)
    if details is None:
        st.info("Select a document first: click a point or a table row in the Projection view.")
        st.stop()
    bundle = checkpoint_model_or_stop(ctx)
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
