"""Parts of a page drawn a moment after its first draw, so that what the visitor came for draws first.

A fresh browser loads the code of each kind of Streamlit element the first time a page shows one. The
Data table's code (a grid with its number and date formatting) is the largest, and the browser loads it in
the same moments as the chart's: on a view of a million points in a fresh browser the chart drew 0.2-0.9 s
later with the table than without it (three runs). So, the first time a browser session draws a deferred
part, :func:`ready` draws a placeholder instead and a fragment (``st.fragment(run_every=DEFER_SECONDS)``)
reruns the whole app once, DEFER_SECONDS later (by then a fresh browser has usually drawn the chart); that
run draws the part. Every later run of the session draws it at once. The same pattern as "Follow training"
(:mod:`t3vis_app.follow`): the browser drops the fragment's timer when the app reruns.
``T3VIS_DEFER_SECONDS=0`` draws everything at once.

Parts above the placeholder can wait for the same rerun (:func:`pending`): a large view's hover cells, whose
data (with the nearest example's text per cell) is most of the chart's message and whose marks are most of
its drawing. The first draw sends the chart with no cells; the rerun's cells only change its data, so the
browser keeps the chart it drew. A million points then showed 0.3-0.4 s sooner in a fresh browser; with the
table deferred too, 0.9 s sooner than with everything at once, and the first hover came as early (one run of
six fresh browsers each, timed in turn).
"""

from __future__ import annotations

import os

import streamlit as st

# after the first draw's messages have reached the browser: a fresh browser has drawn the chart by then
DEFER_SECONDS = float(os.environ.get("T3VIS_DEFER_SECONDS", 1.0))
_DRAWN = "_deferred.drawn"  # the names of the parts this session has drawn (or is about to draw)
_WAITING = "_deferred.waiting"  # set by the full run that drew a placeholder: its fragment's first call


def pending(name: str) -> bool:
    """Whether this run draws the placeholder of ``name`` (called before :func:`ready` in the same run): the
    session's first run to reach it. Parts drawn above the placeholder that should wait for the rerun too (the
    hover cells of a large view's chart) use it."""
    return DEFER_SECONDS > 0 and name not in st.session_state.get(_DRAWN, set())


def ready(name: str, *, placeholder: str) -> bool:
    """Whether the part ``name`` is to be drawn in this run. False the first time in a browser session: then
    ``placeholder`` (Markdown, trusted) is drawn in its place and the app reruns DEFER_SECONDS later."""
    if not pending(name):
        return True
    st.session_state.setdefault(_DRAWN, set()).add(name)
    st.caption(placeholder)
    st.session_state[_WAITING] = True
    _rerun_soon()
    return False


@st.fragment(run_every=max(DEFER_SECONDS, 0.1))
def _rerun_soon() -> None:
    """Called inline by the full run that drew the placeholder (nothing to do), then by the browser's timer:
    rerun the app, which draws the deferred parts and stops this timer."""
    if st.session_state.pop(_WAITING, False):
        return
    st.rerun(scope="app")
