"""The Instance views' token display: tokens coloured by saliency, or by a head's attention from a clicked token."""

from __future__ import annotations

import numpy as np
import streamlit as st

from t3vis import charts
from t3vis.charts import figures
from t3vis.analysis.token_view import layout_tokens, merge_word_pieces
from t3vis_app import state
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.selection import selected


def show_tokens(tokens: list[str], *, attentions: np.ndarray, attribution, explained: str, merge: bool,
                colour_by_attention: bool, selected_head: tuple[int, int] | None, key: str,
                line_starts: set[int] = frozenset(), figure: tuple[str, str] | None = None) -> tuple[int | None, bool]:
    """Draw the tokens and handle a click on one; returns (clicked token index or None, showing attention).

    ``attentions`` (L, H, T, T); ``attribution`` an :class:`~t3vis.attribution.base.Attribution` or None (not
    computed yet); ``explained`` names the output it explains (e.g. "class sports"); ``line_starts``: token
    indices that begin a new line (a document's sentences); ``figure`` = (file name, caption) adds export
    buttons: SVG, PNG and a LaTeX snippet of the tokens as shown (method, class, merged pieces, attention).
    """
    token_index = state.selected_token(len(tokens))
    showing_attention = colour_by_attention and selected_head is not None and token_index is not None
    if showing_attention:
        layer, head = selected_head
        values = np.asarray(attentions[layer, head, token_index], dtype=np.float32)  # (T,) from the clicked token
        title = f"Attention of token {token_index} ({tokens[token_index]}) in head L{layer}·H{head}"
        value_title, diverging = "attention", False
    elif attribution is not None:
        values = attribution.scores
        title = f"{explained} (sum {attribution.total:+.3f}, logit {attribution.logit:+.3f})"
        value_title, diverging = "relevance", True
    else:
        values, title, value_title, diverging = np.zeros(len(tokens)), "Tokens", "relevance", True

    groups = [[index] for index in range(len(tokens))]
    shown_tokens, shown_values = tokens, np.asarray(values)
    if merge:  # relevance, and attention to a word, are sums over its pieces
        shown_tokens, shown_values, groups = merge_word_pieces(tokens, values)
    starts = {block for block, group in enumerate(groups) if block and group[0] in line_starts}
    layout = layout_tokens(shown_tokens, line_starts=starts)
    selected_block = next((i for i, group in enumerate(groups) if token_index in group), None)
    chart = charts.token_chart(layout, shown_values, value_title=value_title, diverging=diverging,
                               selected_index=selected_block, title=title)
    event = st.altair_chart(chart, on_select="rerun", selection_mode=[charts.TOKEN], key=key, width="content",
                            height=26 * (int(layout.line.max()) + 1) + 110)
    if figure is not None:
        name, caption = figure
        what = "attention" if showing_attention else "saliency"
        figure_buttons(chart, name=f"{name}-{what}", caption=caption, key=f"figure.{key}",
                       latex=lambda: figures.saliency_latex(shown_tokens, shown_values, diverging=diverging,
                                                            caption=f"{title} · {caption}"))
    points = selected(event, charts.TOKEN)
    clicked = groups[int(points[0]["index"])][0] if points else None
    if state.newly_clicked(f"{key}_click", clicked):
        state.select_token(clicked, show_attention=selected_head is not None)
        st.rerun()
    return token_index, showing_attention


def saliency_controls(method_column, merge_column, colour_column, *, selected_head: tuple[int, int] | None,
                      coloured: str = "the others"):
    """The Instance views' controls: saliency method, merging word pieces, colouring by a head's attention.

    Returns (method, merge, colour_by_attention); ``coloured`` names what a clicked token's attention colours.
    """
    from t3vis.attribution import METHODS

    method_name = state.choice(method_column.selectbox, "Saliency method", list(METHODS), name="instance_method",
                               format_func=lambda name: METHODS[name].label,
                               help="\n\n".join(f"**{m.label}**: {m.description}" for m in METHODS.values()))
    with merge_column:
        merge = state.toggle("Merge word pieces", name="merge_pieces", help="Show words; their scores are summed.")
    with colour_column:
        colour_by_attention = state.toggle("Colour by attention", name=state.COLOUR_BY_ATTENTION,
                                           disabled=selected_head is None,
                                           help="With a head selected in the Attention heads view, click a token "
                                                f"to colour {coloured} by what it attends to.")
    return METHODS[method_name], merge, colour_by_attention


def attribution_on_request(method, key: tuple, compute):
    """``compute()`` once per key in the session; a slow method only after the user asks (a button), else None."""
    from t3vis_app.models import session_cached

    requested: set = st.session_state.setdefault("_requested", set())  # slow methods the user asked for
    if method.slow and key not in requested:
        st.caption(f"{method.label} is slower ({method.description}).")
        if st.button(f"Compute {method.label}"):
            requested.add(key)
            st.rerun()
        return None
    with st.spinner(f"Computing {method.label} ..."):
        return session_cached("attribution", key, compute)
