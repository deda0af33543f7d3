"""The app side of token classification; its Instance view shows a sentence with gold and predicted tags.

Under each word sit its gold tag and the checkpoint's predicted tag (boxes coloured by entity type, so
an entity spans its words; wrong predictions in red). Clicking a word makes its tag the output to
explain: the word pieces of the sentence are coloured by the chosen saliency method of that word's
logit for the chosen tag (its predicted tag by default). With a head selected in the Attention heads
view, clicking a token colours the sentence by that token's attention instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from t3vis import charts
from t3vis.analysis.document_view import word_attentions
from t3vis.analysis.evaluation import evaluate_tagging
from t3vis.analysis.instance_heads import sentence_heads
from t3vis.attribution.base import prepare_words, word_target
from t3vis.markdown_text import escape_markdown as md
from t3vis.queries import explore
from t3vis.queries.checkpoint_reads import stored_sentences
from t3vis.tasks import TOKEN_CLASSIFICATION, task_spec
from t3vis_app.sticky import sticky_controls
from t3vis_app import data, state
from t3vis_app.models import checkpoint_model_or_stop, session_cached
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.selection import probability_bars, selected, selected_details
from t3vis_app.tasks.base import queries_for
from t3vis_app.token_colours import attribution_on_request, saliency_controls, show_tokens

WORD = "tagged_word"  # the explained word, kept across reruns and pages


def tagged_words(ctx, split: str, example_id: int, words: pd.DataFrame, *, key: str,
                 probs: np.ndarray | None = None, selected_word: int | None = None) -> int | None:
    """Draw the sentence's words with gold and predicted tags; returns a newly clicked word, else None.

    ``probs`` (W, K): live predictions (e.g. with pruned heads) that replace the stored ones."""
    shown = words[["unit", "word", "tag", "predicted"]].copy()
    if probs is not None:
        names = list(ctx.run.label_names)
        predicted = [names[int(index)] for index in probs.argmax(1)]
        shown["predicted"] = predicted + [None] * (len(shown) - len(predicted))
    chart = charts.tagged_words_chart(shown, selected_word=selected_word,
                                      title=f"#{example_id} · {split} split · gold tags, then predicted tags")
    event = st.altair_chart(chart, on_select="rerun", selection_mode=[charts.WORD], key=key, width="content",
                            height=int(chart.to_dict()["height"]) + 60)  # the legend sits under the words
    figure_buttons(chart, name=f"t3vis-{ctx.run.run_id}-{split}-{example_id}-tags",
                   caption=f"run {ctx.run.run_id} · {ctx.checkpoint} · {split} split", key=f"figure.{key}")
    points = selected(event, charts.WORD)
    clicked = int(points[0]["unit"]) if points and points[0].get("unit") is not None else None
    return clicked if state.newly_clicked(f"{key}_click", clicked) else None


class TaggingApp:
    spec = task_spec(TOKEN_CLASSIFICATION)
    data_map_points = ("units", "spans")
    evaluation_help = "entity F1, word accuracy and loss"

    def projection_filters(self, ctx, split: str, points: str, attribute_names) -> tuple:
        return confusion_filter(ctx, split) if points == "units" and "prediction" in attribute_names else ()

    def selection_panel(self, ctx, split: str) -> None:
        sentence_panel(ctx, split)

    def instance_view(self, ctx) -> None:
        instance_view(ctx)

    def heads_example(self, ctx):
        return selected_details(ctx)

    def analyse_heads(self, bundle, details: dict, run, pruned: frozenset):
        words = details["words"]
        return sentence_heads(bundle, words.word.tolist(), words.label.to_numpy(), pruned=pruned,
                              max_length=run.max_length)

    def importance_target(self, details: dict) -> str:
        return "its words' loss against the gold tags"

    def pruning_effect(self, ctx, details: dict, before, after, *, pruned_label: str, split: str,
                       example_id: int) -> None:
        names = list(ctx.run.label_names)
        words = details["words"]
        kept = len(before.probs)
        st.dataframe(pd.DataFrame({
            "word": words.word.iloc[:kept], "gold": words.tag.iloc[:kept],
            "all heads": [names[int(i)] for i in before.probs.argmax(1)],
            pruned_label: [names[int(i)] for i in after.probs.argmax(1)],
        }), hide_index=True)

    def evaluate_pruning(self, bundle, ctx, split: str, *, pruned: frozenset, progress):
        sentences = stored_sentences(ctx.store.database, ctx.run.run_id, split)
        return evaluate_tagging(bundle, sentences, pruned=pruned, progress=progress,
                                max_length=int(ctx.run.max_length))  # the words the store's checkpoint saw

    def training_view(self, ctx, curves, draw_curve) -> None:
        training_view(ctx, curves, draw_curve)

    def example_queries(self):
        return queries_for(TOKEN_CLASSIFICATION)


def instance_view(ctx) -> None:
    run = ctx.run
    split, example_id, details = selected_details(ctx)
    if details is None:
        st.info("Select a sentence first: click a point or a table row in the Projection view.")
        st.stop()
    bundle = checkpoint_model_or_stop(ctx)
    words: pd.DataFrame = details["words"]
    names = list(run.label_names)
    pruned = state.pruned_heads(run.run_id)
    key = (ctx.store.path, run.run_id, ctx.checkpoint, split, example_id)
    example = session_cached("word_inputs", key, lambda: prepare_words(bundle, words.word.tolist(),
                                                                       max_length=int(run.max_length)))
    attentions, probs = session_cached("word_attentions", (*key, pruned),
                                       lambda: word_attentions(bundle, example, pruned), size=2)  # probs (W, K)
    kept = len(example.first_pieces)

    # -- the sentence with its tags ------------------------------------------------------------------
    predicted = probs.argmax(1)
    errors = int(sum(predicted[i] != words.label.iloc[i] for i in range(kept)))
    st.markdown(f"**#{example_id}** · {md(split)} split · {len(words)} words, {kept} read by the model · "
                f"**{errors}** tagged wrong at {md(ctx.checkpoint)}"
                + (f" · {len(pruned)} pruned head{'' if len(pruned) == 1 else 's'}" if pruned else ""))
    if example.truncated:
        st.warning(f"The sentence is longer than the model's limit ({bundle.max_length} tokens): its last "
                   f"{len(words) - kept} words were cut and are never tagged.")
    word = st.session_state.get(WORD)
    if word is None or word >= kept or st.session_state.get(f"{WORD}_of") not in (None, key):  # another sentence
        wrong = [i for i in range(kept) if predicted[i] != words.label.iloc[i]]
        word = wrong[0] if wrong else 0  # the first error until the user picks a word
    clicked = tagged_words(ctx, split, example_id, words, key="tagged_words", probs=probs, selected_word=word)
    if clicked is not None and clicked < kept and clicked != word:
        st.session_state[WORD], st.session_state[f"{WORD}_of"] = clicked, key
        st.rerun()
    st.session_state[WORD], st.session_state[f"{WORD}_of"] = word, key
    if st.session_state.get("tag_target_of") != (key, word):  # a new word: explain its predicted tag first
        for name in ("tag_target", "w.tag_target"):
            st.session_state.pop(name, None)
        st.session_state["tag_target_of"] = (key, word)

    # -- the explained word ----------------------------------------------------------------------------
    left, right = st.columns([3, 2])
    with right:
        probability_bars(names, probs[word], gold=words.tag.iloc[word], predicted=names[int(predicted[word])],
                         figure=(f"t3vis-{run.run_id}-{split}-{example_id}-word{word}-probabilities",
                                 f"run {run.run_id} · {ctx.checkpoint} · {split} split · sentence #{example_id} · "
                                 f"word {word}"))
    with left:
        st.markdown(f"Explaining word {word}: **{md(words.word.iloc[word])}** · gold **{md(words.tag.iloc[word])}**"
                    f" · predicted **{md(names[int(predicted[word])])}** ({probs[word].max():.2f})")
        tag = state.choice(st.selectbox, "Explain tag", list(range(len(names))), name="tag_target",
                           default=int(predicted[word]),
                           format_func=lambda index: names[index] + (" (predicted)" if index == predicted[word]
                                                                     else ""))
        st.caption("Click a word above to explain its tag.")

    # -- controls and the word pieces ------------------------------------------------------------------
    controls = sticky_controls().columns([2, 2, 2])  # kept in view while the tokens scroll
    selected_head = state.selected_head(int(run.num_layers), int(run.num_heads))
    method, merge, colour_by_attention = saliency_controls(controls[0], controls[1], controls[2],
                                                           selected_head=selected_head, coloured="the sentence")
    target = word_target(bundle, example, word, tag)
    attribution = attribution_on_request(method, (*key, pruned, method.name, target), lambda: method.attribute(
        bundle, example, target, pruned=pruned))
    tokens = example.tokens
    _, showing_attention = show_tokens(
        tokens, attentions=attentions, attribution=attribution,
        explained=f"{method.label} of “{words.word.iloc[word]}” as {names[tag]}", merge=merge,
        colour_by_attention=colour_by_attention, selected_head=selected_head, key="word_tokens",
        figure=(f"t3vis-{run.run_id}-{split}-{example_id}-word{word}", f"run {run.run_id} · {ctx.checkpoint} · "
                f"{split} split · sentence #{example_id}"))
    st.caption(
        ("Head: " + (f"L{selected_head[0]}·H{selected_head[1]}" if selected_head else
                     "none selected (choose one in the Attention heads view to see a token's attention)"))
        + (". Darker: more attention from the clicked token." if showing_attention
           else f". Red: raises the logit of {md(names[tag])} for the explained word; blue: lowers it."))


def training_view(ctx, curves, draw_curve) -> None:
    """Entity F1 and recall per type over checkpoints, the loss, and the sentences whose tags changed."""
    run_id = ctx.run.run_id
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
                draw_curve(shown, metric, split)
    if not curves.empty:
        draw_curve(curves, "loss", None)
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
