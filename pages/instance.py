"""Instance Investigation view: the selected example's tokens coloured by saliency, or by a head's attention."""

import numpy as np
import streamlit as st

from t3vis.attribution import prepare
from t3vis.analysis.instance_heads import attention_on_demand, instance_outputs
from t3vis.markdown_text import escape_markdown as md  # store text shown as Markdown
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, TOKEN_CLASSIFICATION
from t3vis_app import sidebar, state
from t3vis_app.tasks import summarization as document_instance, tagging as tagging_instance
from t3vis_app.selection import probability_bars, selected_details
from t3vis_app.models import checkpoint_model, session_cached
from t3vis_app.sticky import sticky_controls
from t3vis_app.token_colours import attribution_on_request, saliency_controls, show_tokens

ctx = sidebar.render()
run = ctx.run
st.title("Instance")
if run.task in (EXTRACTIVE_SUMMARIZATION, TOKEN_CLASSIFICATION):
    (document_instance if run.task == EXTRACTIVE_SUMMARIZATION else tagging_instance).render(ctx)
    state.write_url()
    st.stop()
split, example_id, details = selected_details(ctx)
if details is None:
    st.info("Select an example first: click a point or a table row in the Projection view.")
    st.stop()
bundle, why_not = checkpoint_model(ctx.store, run, ctx.checkpoint)
if bundle is None:
    st.info(why_not)
    st.stop()

pruned = state.pruned_heads(run.run_id)
names = list(run.label_names)
text, pair = details["text"], details.get("text_pair") or None
key = (ctx.store.path, run.run_id, ctx.checkpoint, split, example_id, pruned, id(bundle))  # a reloaded model: anew
example = session_cached("instance_example", key, lambda: prepare(bundle, text, pair))
header = st.container()  # filled once the prediction is known (it comes with the explanation)

# -- controls ---------------------------------------------------------------------------------------
controls = sticky_controls().columns([2, 2, 2, 2])  # kept in view while the tokens scroll
selected_head = state.selected_head(int(run.num_layers), int(run.num_heads))
method, merge, colour_by_attention = saliency_controls(controls[0], controls[2], controls[3],
                                                       selected_head=selected_head)
if method.slow:  # computed only on request: the prediction needs its own (fast) forward pass
    probs = session_cached("instance_outputs", key, lambda: instance_outputs(bundle, text, pair, pruned=pruned)).probs
    of_predicted = None
else:  # the explanation of the predicted class, found in the method's own forward pass
    of_predicted = attribution_on_request(method, (*key, method.name, None), lambda: method.attribute(
        bundle, example, None, pruned=pruned))
    probs = of_predicted.probs
predicted = int(np.argmax(probs))
target = state.choice(controls[1].selectbox, "Explain class", list(range(len(names))), name="instance_target",
                      default=predicted, format_func=lambda index: names[index] + (" (predicted)" if
                                                                                  index == predicted else ""))
attribution = of_predicted if of_predicted is not None and target == of_predicted.target else attribution_on_request(
    method, (*key, method.name, target), lambda: method.attribute(bundle, example, target, pruned=pruned))

# -- the example ------------------------------------------------------------------------------------
with header:
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**#{example_id}** · {md(split)} split · gold label **{md(details['label_name'])}** · predicted "
                    f"**{md(names[predicted])}** at {md(ctx.checkpoint)}"
                    + (f" · {len(pruned)} pruned head{'' if len(pruned) == 1 else 's'}" if pruned else ""))
        if example.truncated:
            st.warning(f"The text is longer than the model's limit and was cut to {bundle.max_length} tokens.")
    with right:
        probability_bars(names, probs, gold=details["label_name"], predicted=names[predicted], figure=(
            f"t3vis-{run.run_id}-{split}-{example_id}-probabilities",
            f"run {run.run_id} · {ctx.checkpoint} · {split} split · example #{example_id}"
            + (f" · {len(pruned)} heads pruned" if pruned else "")))

# -- the tokens -------------------------------------------------------------------------------------
tokens = example.tokens
attentions = session_cached("instance_attention", key, lambda: attention_on_demand(bundle, example.inputs,
                                                                                     pruned=pruned))
token_index, showing_attention = show_tokens(
    tokens, attentions=attentions, attribution=attribution, explained=f"{method.label} for class {names[target]}",
    merge=merge, colour_by_attention=colour_by_attention, selected_head=selected_head, key="tokens",
    figure=(f"t3vis-{run.run_id}-{split}-{example_id}", f"run {run.run_id} · {ctx.checkpoint} · {split} split · "
            f"example #{example_id}" + (f" · {len(pruned)} heads pruned" if pruned else "")))

st.caption(
    ("Head: " + (f"L{selected_head[0]}·H{selected_head[1]} (from the Attention heads view)" if selected_head
                 else "none selected: choose one in the Attention heads view to see attention from a token"))
    + " · Token: " + (f"{token_index} ({md(tokens[token_index])})" if token_index is not None else "click one")
    + (". Darker: more attention from the clicked token." if showing_attention
       else ". Red: supports the explained class; blue: speaks against it."))
state.write_url()
