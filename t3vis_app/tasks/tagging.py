"""The Instance view of a token-classification run: a sentence with its gold and predicted tags.

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
from t3vis.attribution.base import prepare_words, word_target
from t3vis.markdown_text import escape_markdown as md
from t3vis_app.sticky import sticky_controls
from t3vis_app import state
from t3vis_app.models import checkpoint_model, session_cached
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.selection import probability_bars, selected, selected_details
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


def render(ctx) -> None:
    run = ctx.run
    split, example_id, details = selected_details(ctx)
    if details is None:
        st.info("Select a sentence first: click a point or a table row in the Projection view.")
        st.stop()
    bundle, why_not = checkpoint_model(ctx.store, run, ctx.checkpoint)
    if bundle is None:
        st.info(why_not)
        st.stop()
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
