"""The Instance view and the live head analysis of one generation example (prompt, reference, generation).

Instance: the prompt, the reference completion and the checkpoint's greedy generation side by side; the
reference's tokens coloured by the probability the checkpoint gives each (stored; computed live with pruned heads),
or by its change since another checkpoint; the generation's tokens by the probability of each. Clicking any
completion token explains it: the tokens the model read before it (the prompt and the completion so far) are
coloured by the chosen saliency method of that token's logit, next to the token's probability, its rank and the
model's top next tokens there. With a head selected in the Attention heads view, the clicked token's attention
over the earlier tokens colours them instead.

Heads: the example's head importance for its completion loss (the mean negative log-probability of its reference
tokens, as ingestion defines it), its attention and its tokens' probabilities with the pruned heads masked; the
effect of pruning on its loss and on each token's probability; the split's loss, perplexity, token accuracy and
generation score with the pruned heads.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from t3vis import charts
from t3vis.analysis.attention_maps import AttentionMaps
from t3vis.analysis.instance_heads import attention_on_demand
from t3vis.analysis.token_view import layout_tokens
from t3vis.analysis.generation_view import (completion_heads, completion_saliency, completion_scores,
                                            display_tokens, evaluate_generation, next_token_alternatives,
                                            next_token_probabilities, pair_token_ids, pruning_table, visible_text)
from t3vis.attribution.completion import prepare_completion
from t3vis.markdown_text import escape_markdown as md
from t3vis.model.heads import head_mask
from t3vis.model.language_models import greedy_generate
from t3vis.queries.completion_reads import generation_limit, run_settings, stored_completions
from t3vis_app import data, state
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.models import checkpoint_model_or_stop, session_cached
from t3vis_app.selection import probability_bars, selected, selected_details
from t3vis_app.sticky import sticky_controls
from t3vis_app.token_colours import attribution_on_request, saliency_controls, show_tokens

EVALUATION_HELP = "completion loss, perplexity and the generation's score (exact match or ROUGE-L)"
EXPLAINED = "completion_token"  # (source, index) of the explained completion token, for the example in EXPLAINED_OF
EXPLAINED_OF = "completion_token_of"
TOKEN_SET = "_completion_token_set"  # the clicked token (state.TOKEN) as this view last set it
SOURCES = {"reference": "reference completion", "generation": "generation"}
PROBABILITY = "probability"  # the completions' colouring that is no comparison


# ---- the selected example ----------------------------------------------------------------------------------------

def heads_example(ctx):
    """(split, example_id, details) of the selected example: :func:`t3vis.queries.generation.example_details` with
    the run's encoding ``settings``; details None when none is selected or the split has no such example."""
    split, example_id, details = selected_details(ctx)
    if details is None:
        return split, example_id, None
    return split, example_id, {**details, "settings": run_settings(ctx.run.config, int(ctx.run.max_length))}


def token_ids(bundle, details: dict) -> tuple[list[int], list[int]]:
    """(prompt ids, reference ids) of the example as ingestion encoded it."""
    settings, tokens = details["settings"], details["tokens"]
    ((prompt, reference),) = pair_token_ids(
        bundle.tokenizer, [details["prompt"]], [details["reference"]], [tokens[tokens.kept].token_id.tolist()],
        data_format=settings["format"], max_length=min(settings["max_length"], bundle.max_length),
        max_completion_tokens=settings["max_completion_tokens"])
    return prompt, reference


# ---- Instance ------------------------------------------------------------------------------------------------------

def instance_view(ctx) -> None:
    run = ctx.run
    split, example_id, details = heads_example(ctx)
    if details is None:
        st.info("Select an example first: click a point or a table row in the Projection view.")
        st.stop()
    bundle = checkpoint_model_or_stop(ctx)
    pruned = state.pruned_heads(run.run_id)
    key = (ctx.store.path, run.run_id, ctx.checkpoint, split, example_id, id(bundle))  # a reloaded model: anew
    prompt_ids, reference_ids = session_cached("completion_ids", key, lambda: token_ids(bundle, details))
    completions = {"reference": reference_ids, "generation": details["generated_ids"] or []}
    scores = {source: session_cached("completion_scores", (*key, source, pruned), lambda ids=ids: completion_scores(
        bundle, prompt_ids, ids, pruned=pruned)) if ids else None for source, ids in completions.items()}

    _header(ctx, split, example_id, details, scores["reference"], pruned)
    _texts(details)

    controls = sticky_controls().columns([2, 2, 2, 2])  # kept in view while the tokens scroll
    selected_head = state.selected_head(int(run.num_layers), int(run.num_heads))
    method, merge, colour_by_attention = saliency_controls(controls[0], controls[2], controls[3],
                                                           selected_head=selected_head, coloured="the earlier tokens")
    others = [name for name in ctx.checkpoints.checkpoint if name != ctx.checkpoint]
    compare = state.choice(controls[1].selectbox, "Colour the reference by", [PROBABILITY, *others],
                           name="completion_compare", disabled=not others,
                           format_func=lambda name: f"probability at {ctx.checkpoint}" if name == PROBABILITY
                           else f"change since {name}",
                           help="Each reference token's probability at this checkpoint, or how much it rose (blue) "
                                "or fell (red) since another checkpoint (stored values).")

    if _token_clicked_elsewhere(key, completions, len(prompt_ids)):
        st.rerun()
    source, index = _explained(key, completions, scores["reference"], len(prompt_ids))
    st.caption("Each token of the reference and of the generation, coloured by the probability the model gives it "
               "there (teacher forced: after the prompt and the tokens before it). Click one to explain it below.")
    for shown, ids in completions.items():
        clicked = _completion_tokens(ctx, bundle, details, shown, ids, scores[shown],
                                     outlined=index if shown == source else None, compare=compare, pruned=pruned,
                                     split=split, example_id=example_id)
        if clicked is not None and (shown, clicked) != (source, index):
            _explain(key, shown, clicked, len(prompt_ids))
            st.rerun()

    st.subheader(f"Why this {'reference' if source == 'reference' else 'generated'} token")
    _saliency(ctx, bundle, key, prompt_ids, completions, source, index, method=method, merge=merge,
              colour_by_attention=colour_by_attention, selected_head=selected_head, pruned=pruned, split=split,
              example_id=example_id)


def _header(ctx, split: str, example_id: int, details: dict, reference, pruned: frozenset) -> None:
    loss = float(reference.loss[0]) if reference is not None else details["loss"]
    if details["exact_match"] is not None:
        answer = "✓ exact answer" if details["exact_match"] else \
            f"✗ answer {details['answer'] or '(none)'}, reference {details['reference_answer']}"
    else:
        answer = f"ROUGE-L {details['rougeL']:.2f}" if details["rougeL"] is not None else "not generated"
    st.markdown(f"**#{example_id}** · {md(split)} split · at **{md(ctx.checkpoint)}**: completion loss "
                f"**{loss:.3f}**, perplexity **{np.exp(loss):.2f}**"
                + (f" (all heads: {details['loss']:.3f})" if pruned and details["loss"] is not None else "")
                + f" · generation: {md(answer)}"
                + (f" · {len(pruned)} pruned head{'' if len(pruned) == 1 else 's'}" if pruned else ""))
    if details["truncated"]:
        st.warning("The pair is longer than the run's token limit: it was cut as at ingestion (the prompt's start, "
                   "or the reference's end).")


def _texts(details: dict) -> None:
    """Prompt, reference and generation as plain text (never Markdown or HTML: dataset text)."""
    columns = st.columns(3)
    texts = (details["prompt"], details["reference"], details["generation"])
    long = max(len(text or "") for text in texts) > 600  # a long text scrolls in its box, the others stay level
    for column, title, text in zip(columns, ("Prompt", "Reference completion", "Generation (greedy, all heads)"),
                                   texts):
        with column.container(border=True, height=300 if long else "content"):
            st.caption(title)
            st.text(text if text is not None else "(not generated: ingested with max_new_tokens 0)")


def _explained(key: tuple, completions: dict, reference, prompt_length: int) -> tuple[str, int]:
    """The explained (source, completion index): the clicked one (of this example, or set for any), else the
    reference's first token the model gets wrong (teacher forced), else its first."""
    chosen = st.session_state.get(EXPLAINED)
    if st.session_state.get(EXPLAINED_OF) in (None, key) and chosen is not None:
        source, index = chosen
        if 0 <= index < len(completions.get(source, [])):
            if st.session_state.get(EXPLAINED_OF) is None:
                _explain(key, source, index, prompt_length)
            return source, index
    wrong = np.flatnonzero(reference.rank > 1) if reference is not None else []
    source, index = ("reference", int(wrong[0]) if len(wrong) else 0) if completions["reference"] else ("generation", 0)
    _explain(key, source, index, prompt_length)
    return source, index


def _explain(key: tuple, source: str, index: int, prompt_length: int) -> None:
    """Explain completion token ``index`` of ``source``; it is the clicked token of the saliency view (outlined,
    and the one whose attention a selected head shows)."""
    st.session_state[EXPLAINED], st.session_state[EXPLAINED_OF] = (source, int(index)), key
    state.select_token(prompt_length + int(index), show_attention=False)
    st.session_state[TOKEN_SET] = prompt_length + int(index)


def _token_clicked_elsewhere(key: tuple, completions: dict, prompt_length: int) -> bool:
    """Follow a click on a completion token of the saliency view (or on an attention row of the heads view): make
    it the explained token; True when it changed. A clicked prompt token keeps the explanation (its attention row
    shows with a head selected)."""
    token = st.session_state.get(state.TOKEN)
    if st.session_state.get(EXPLAINED_OF) != key or token is None or token == st.session_state.get(TOKEN_SET):
        return False
    source = st.session_state[EXPLAINED][0]
    if prompt_length <= token < prompt_length + len(completions[source]):
        _explain(key, source, token - prompt_length, prompt_length)
        return True
    return False


def _completion_tokens(ctx, bundle, details: dict, source: str, ids: list[int], scores, *, outlined: int | None,
                       compare: str, pruned: frozenset, split: str, example_id: int) -> int | None:
    """Draw a completion's tokens coloured by probability; returns a newly clicked token's index, else None."""
    if not ids:
        st.caption("No generation stored for this example." if source == "generation" else "No reference tokens.")
        return None
    tokens, line_starts = display_tokens(bundle.tokenizer, ids)
    probability = np.asarray(scores.gold_probability, dtype=float)
    if source == "reference" and not pruned:
        stored = details["tokens"][details["tokens"].kept].gold_prob.to_numpy(dtype=float, na_value=np.nan)
        probability = np.where(np.isnan(stored[:len(probability)]), probability, stored[:len(probability)])
    change = source == "reference" and compare != PROBABILITY
    values = probability
    if change:
        other = data.example_details(ctx.store, ctx.run.run_id, split, example_id, compare)["tokens"]
        earlier = other[other.kept].gold_prob.to_numpy(dtype=float, na_value=np.nan)[:len(probability)]
        values = probability - np.pad(earlier, (0, len(probability) - len(earlier)), constant_values=np.nan)
    predicted = [visible_text(bundle.tokenizer.decode([int(token)])) for token in scores.predicted_id]
    hover = {"probability": [f"{p:.3f}" for p in probability], "rank": [str(int(r)) for r in scores.rank],
             "model's top token": predicted}
    what = (f"change in probability since {compare}" if change else
            f"probability at {ctx.checkpoint}" + (" with pruned heads" if pruned else ""))
    kept = min(len(tokens), len(values))  # the tokens scored (a sequence is cut at the model's limit)
    layout = layout_tokens(tokens[:kept], line_starts=line_starts)
    chart = charts.completion_chart(layout, values[:kept], change=change, selected_index=outlined,
                                    hover=pd.DataFrame(hover).iloc[:kept],
                                    title=f"{SOURCES[source].capitalize()} · {what}")
    event = st.altair_chart(chart, on_select="rerun", selection_mode=[charts.COMPLETION], key=f"completion.{source}",
                            width="content", height=int(chart.height) + 130)  # the title above, the legend under
    figure_buttons(chart, name=f"t3vis-{ctx.run.run_id}-{split}-{example_id}-{source}",
                   caption=f"run {ctx.run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id}",
                   key=f"figure.completion.{source}")
    points = selected(event, charts.COMPLETION)
    clicked = int(points[0]["index"]) if points and points[0].get("index") is not None else None
    return clicked if state.newly_clicked(f"completion.{source}_click", clicked) else None


class _Prefix:
    """A head's attention rows cut to the first ``size`` keys (the tokens shown; later ones get no attention)."""

    def __init__(self, maps: AttentionMaps, size: int):
        self.maps, self.size = maps, size

    def __getitem__(self, index):
        return self.maps[index][..., :self.size]


def _saliency(ctx, bundle, key: tuple, prompt_ids: list[int], completions: dict, source: str, index: int, *,
              method, merge: bool, colour_by_attention: bool, selected_head, pruned: frozenset, split: str,
              example_id: int) -> None:
    """The explained token's saliency over the tokens before it, its probability, rank and the top next tokens."""
    run = ctx.run
    example = session_cached("completion_inputs", (*key, source), lambda: prepare_completion(
        bundle, prompt_ids, completions[source]))
    index = min(index, example.n_outputs - 1)
    position = example.prompt_length + index - 1  # the logits there score the explained token
    token_id = int(completions[source][index])
    token_text = visible_text(bundle.tokenizer.decode([token_id]))
    attribution = attribution_on_request(method, (*key, pruned, method.name, source, index), lambda: (
        completion_saliency(method, bundle, example, index, pruned=pruned)))
    probs = attribution.probs if attribution is not None else session_cached(
        "next_token", (*key, pruned, source, index), lambda: next_token_probabilities(bundle, example, position,
                                                                                     pruned=pruned))
    alternatives = next_token_alternatives(bundle.tokenizer, probs, token_id)
    explained = alternatives[alternatives.explained].iloc[0]

    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"{SOURCES[source].capitalize()} token **{index}**: **“{md(token_text)}”** · probability "
                    f"**{explained.probability:.3f}** · rank **{int(explained['rank'])}** of "
                    f"{len(probs):,} at {md(ctx.checkpoint)}" + (" with the pruned heads" if pruned else ""))
        st.caption("Click another token of the reference or the generation above (or a completion token below) to "
                   "explain it. The saliency is of the token's logit at the position before it, over every token "
                   "the model read there: the prompt and the completion so far (the model is causal).")
    with right:
        names = [f"#{int(row['rank'])} “{row.token}”" for _, row in alternatives.iterrows()]
        own = names[int(np.flatnonzero(alternatives.explained)[0])]
        probability_bars(names, alternatives.probability.to_numpy(), gold=own if source == "reference" else None,
                         predicted=names[0], key="next_tokens")
        st.caption("The model's most likely next tokens there"
                   + (" and the reference's (gold)." if source == "reference" else "."))

    shown = position + 2  # the prompt and the completion up to the explained token
    tokens, line_starts = display_tokens(bundle.tokenizer, example.inputs["input_ids"][0, :shown].tolist(),
                                         mark_words=merge)
    if attribution is not None:
        attribution = replace(attribution, tokens=tokens)
    maps = session_cached("completion_attention", (*key, pruned, source), lambda: attention_on_demand(
        bundle, example.inputs, pruned=pruned))
    token_index, showing_attention = show_tokens(
        tokens, attentions=_Prefix(maps, shown), attribution=attribution,
        explained=f"{method.label} of “{token_text}” ({SOURCES[source]} token {index})", merge=merge,
        colour_by_attention=colour_by_attention, selected_head=selected_head, key="completion_saliency",
        line_starts=line_starts,
        figure=(f"t3vis-{run.run_id}-{split}-{example_id}-{source}{index}", f"run {run.run_id} · {ctx.checkpoint} · "
                f"{split} split · example #{example_id}" + (f" · {len(pruned)} heads pruned" if pruned else "")))
    scores = np.abs(attribution.scores) if attribution is not None else np.zeros(1)
    sink = not showing_attention and len(scores) > 2 and scores[0] > 3 * scores[1:].max()  # it sets the scale
    st.caption(
        ("Head: " + (f"L{selected_head[0]}·H{selected_head[1]}" if selected_head else
                     "none selected (choose one in the Attention heads view to see a token's attention)"))
        + (f". Darker: more attention from token {token_index} to the tokens before it." if showing_attention
           else f". The outlined token is the explained one. Red: raises the logit of “{md(token_text)}” there; "
                "blue: lowers it.")
        + (" The first token gets far more relevance than any other, as language models' first tokens often do "
           "(an \"attention sink\"): the others' colours are faint next to it; hover a token for its value."
           if sink else ""))


# ---- Attention heads -------------------------------------------------------------------------------------------

def analyse_heads(bundle, details: dict, run, pruned: frozenset):
    prompt, reference = token_ids(bundle, details)
    return completion_heads(bundle, prompt, reference, pruned=pruned)


def importance_target(details: dict) -> str:
    return "its completion loss, the mean negative log-probability of the reference tokens"


def pruning_effect(ctx, details: dict, before, after, *, pruned_label: str, split: str, example_id: int) -> None:
    """The example's loss and perplexity with all heads and pruned, each reference token's probability before and
    after, and (on request) the pruned model's own generation."""
    columns = st.columns(3)
    columns[0].metric("Completion loss", f"{after.loss:.3f}", f"{after.loss - before.loss:+.3f}", delta_color="inverse",
                      help="Mean negative log-probability of the reference tokens, with the pruned heads (the change "
                           "from all heads below).")
    columns[1].metric("Perplexity", f"{after.perplexity:.2f}", f"{after.perplexity - before.perplexity:+.2f}",
                      delta_color="inverse")
    columns[2].metric("Token accuracy", f"{after.token_accuracy:.2f}",
                      f"{after.token_accuracy - before.token_accuracy:+.2f}",
                      help="Share of the reference tokens that are the model's top token (teacher forced).")
    tokens = details["tokens"]
    table = pruning_table([visible_text(text) for text in tokens[tokens.kept].text], before, after, pruned_label)
    chart = charts.probability_change_chart(table, before="all heads", after=pruned_label,
                                            title=f"Each reference token's probability · #{example_id}")
    st.altair_chart(chart, height=340)  # the token labels under the plot, the legend above
    figure_buttons(chart, name=f"t3vis-{ctx.run.run_id}-{split}-{example_id}-pruning",
                   caption=f"run {ctx.run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id}",
                   key="figure.pruning")
    pruned = state.pruned_heads(ctx.run.run_id)
    if not pruned:
        return
    generation_key = (ctx.store.path, ctx.run.run_id, ctx.checkpoint, split, example_id, pruned)
    cache = st.session_state.setdefault("_pruned_generations", {})
    limit = generation_limit(details["settings"], details["generated_ids"], details["stopped"])
    if generation_key not in cache and st.button(
            "Generate with the pruned heads", help="The pruned model's own greedy generation of this prompt, up to "
            f"{limit} tokens (the run's limit)."):
        bundle = checkpoint_model_or_stop(ctx)
        prompt, _ = token_ids(bundle, details)
        with st.spinner("Generating ..."):
            ids = greedy_generate(bundle, prompt, max_new_tokens=limit,
                                  head_mask=head_mask(pruned, bundle.num_layers, bundle.num_heads))
        cache[generation_key] = bundle.tokenizer.decode(ids, skip_special_tokens=True)
    if generation_key in cache:
        left, right = st.columns(2)
        with left.container(border=True):
            st.caption("Generation, all heads (stored)")
            st.text(details["generation"] or "")
        with right.container(border=True):
            st.caption(f"Generation, {pruned_label}")
            st.text(cache[generation_key])


def evaluate_pruning(bundle, ctx, split: str, *, pruned: frozenset, progress):
    """The split's loss, perplexity, token accuracy and generation score with the pruned heads (generating up to
    the run's max_new_tokens); with no head pruned the stored generations are scored, not generated again."""
    stored = stored_completions(ctx.store.database, ctx.run.run_id, split, ctx.checkpoint)
    settings, pairs = stored.settings, stored.pairs
    encoded = pair_token_ids(bundle.tokenizer, pairs.prompt.tolist(), pairs.reference.tolist(),
                             pairs.reference_ids.tolist(), data_format=settings["format"],
                             max_length=min(settings["max_length"], bundle.max_length),
                             max_completion_tokens=settings["max_completion_tokens"])
    generations = None if pruned or any(text is None for text in stored.generations) else stored.generations
    return evaluate_generation(bundle, encoded, pairs.reference.tolist(), pruned=pruned,
                               max_new_tokens=settings["max_new_tokens"], generations=generations, progress=progress)
