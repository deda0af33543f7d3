"""A page's main controls kept in view: a container that sticks under the app's header while the page scrolls."""

from __future__ import annotations

import streamlit as st

HEADER_OFFSET = "3.75rem"  # the height of Streamlit's header bar, which the controls stop under


def sticky_controls(key: str = "controls"):
    """A container (``st.container(key=...)``, which Streamlit gives the CSS class ``st-key-<key>``) that stays
    at the top of the window as a long page (the Instance view's tokens, the head grid and its matrices)
    scrolls, on the page's own background colour."""
    dark = getattr(st.context.theme, "type", None) == "dark"
    background = "#0e1117" if dark else "#ffffff"
    # Streamlit wraps the container in a layout wrapper of its own height: that wrapper is what must stick
    st.html(f'<style>div[data-testid="stLayoutWrapper"]:has(> .st-key-{key}), .st-key-{key} {{position: sticky; '
            f"top: {HEADER_OFFSET}; z-index: 990; background-color: {background};}} .st-key-{key} {{position: static; "
            "padding: 0.4rem 0 0.2rem 0; border-bottom: 1px solid rgba(128, 128, 128, 0.25);}</style>")
    return st.container(key=key)
