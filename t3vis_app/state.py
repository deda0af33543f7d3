"""Choices that live in session state, survive moving between pages, and show in the URL.

Streamlit forgets a widget's value when a page without that widget runs. Each choice is
therefore kept under its own name in ``st.session_state`` (e.g. ``"run_id"``) and copied into
the widget's key (``"w.run_id"``) only when the widget is first drawn on a page. The choices
named in ``URL_KEYS`` are mirrored in the query string, so that a link reopens the same view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

# choice name -> query parameter name
URL_KEYS = {
    "run_id": "run",
    "checkpoint": "checkpoint",
    "split": "split",
    "layout": "layout",
    "points": "points",
    "layer": "layer",
    "color": "color",
    "compare": "compare",
    "compare_checkpoint": "checkpoint2",
    "compare_layer": "layer2",
    "example_id": "example",
    "heads_show": "heads",
    "heads_scale": "scale",
}
_INTEGER_KEYS = {"layer", "compare_layer", "example_id"}
_LOADED = "_t3vis_url_loaded"


def load_url_once() -> None:
    """Copy the query string into session state at the start of a browser session."""
    if st.session_state.get(_LOADED):
        return
    st.session_state[_LOADED] = True
    for name, parameter in URL_KEYS.items():
        if parameter in st.query_params:
            value: Any = st.query_params[parameter]
            if name in _INTEGER_KEYS:
                try:
                    value = int(value)
                except ValueError:
                    continue
            if name == "compare":
                value = value == "1"
            st.session_state[name] = value


def write_url() -> None:
    """Mirror the current choices in the query string."""
    for name, parameter in URL_KEYS.items():
        value = st.session_state.get(name)
        if value is None or (name.startswith("compare_") and not st.session_state.get("compare")):
            if parameter in st.query_params:
                del st.query_params[parameter]
            continue
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        if st.query_params.get(parameter) != text:
            st.query_params[parameter] = text


def get(name: str, default: Any = None) -> Any:
    return st.session_state.get(name, default)


def put(name: str, value: Any) -> None:
    """Set a choice from code (e.g. a click on a chart); its widget picks it up on the next run."""
    st.session_state[name] = value
    st.session_state.pop(f"w.{name}", None)


def _keep(name: str, key: str) -> None:
    """on_change of a bound widget: the choice follows what the user picked."""
    st.session_state[name] = st.session_state[key]


def bind(name: str, value: Any) -> dict:
    """Keyword arguments that bind a widget to the persisted choice ``name``, currently ``value``.

    Streamlit scopes widget state to a page, so the widget's key is re-seeded from the choice
    on every run, and the choice follows the widget through ``on_change``.
    """
    key = f"w.{name}"
    st.session_state[key] = value
    return {"key": key, "on_change": _keep, "args": (name, key)}


def choice(widget: Callable, label: str, options: Sequence, *, name: str, default: Any = None,
           format_func: Callable = str, **kwargs) -> Any:
    """A select widget bound to the persisted choice ``name``; returns the chosen option."""
    options = list(options)
    if not options:
        st.session_state[name] = None
        return None
    current = st.session_state.get(name, default)
    if current not in options:
        current = default if default in options else options[0]
    value = widget(label, options, format_func=format_func, **bind(name, current), **kwargs)
    st.session_state[name] = value
    return value


def toggle(label: str, *, name: str, default: bool = False, **kwargs) -> bool:
    value = st.toggle(label, **bind(name, bool(st.session_state.get(name, default))), **kwargs)
    st.session_state[name] = value
    return value


def newly_clicked(key: str, current: Any) -> bool:
    """True once per new click: ``current`` (a chart or table selection) is set and differs from the
    selection seen on the previous run under ``key``. Widgets keep reporting a selection on every rerun."""
    last = f"_last.{key}"
    previous = st.session_state.get(last)
    st.session_state[last] = current
    return current is not None and current != previous


def select_example(split: str, example_id: int | None) -> None:
    """Make an example the selected one for every page."""
    st.session_state["split"] = split
    st.session_state["example_id"] = None if example_id is None else int(example_id)


# -- selections shared by several pages ---------------------------------------------------------------
# The selected example is ("split", "example_id") above; the keys below are read by more than one page.
PRUNED = "pruned"  # run_id -> sorted [(layer, head), ...] pruned in this session
HEAD = "head"  # (layer, head) chosen in the Attention heads view
TOKEN = "token"  # token index clicked in the Instance view
COLOUR_BY_ATTENTION = "colour_by_attention"


def selected_example() -> tuple[str | None, int | None]:
    """(split, example_id) of the selected example, or Nones."""
    example_id = st.session_state.get("example_id")
    return st.session_state.get("split"), None if example_id is None else int(example_id)


def pruned_heads(run_id: str) -> frozenset[tuple[int, int]]:
    """The heads pruned in this session for the run."""
    return frozenset(tuple(head) for head in st.session_state.get(PRUNED, {}).get(run_id, []))


def set_pruned_heads(run_id: str, heads) -> None:
    st.session_state.setdefault(PRUNED, {})[run_id] = sorted(tuple(head) for head in heads)


def selected_head(num_layers: int, num_heads: int) -> tuple[int, int] | None:
    """The selected (layer, head), or None when none is selected or it does not exist in this run."""
    head = st.session_state.get(HEAD)
    if head is None:
        return None
    layer, index = (int(part) for part in head)
    return (layer, index) if layer < num_layers and index < num_heads else None


def select_head(head: tuple[int, int]) -> None:
    st.session_state[HEAD] = head


def selected_token(num_tokens: int) -> int | None:
    """The clicked token's index, or None when none is clicked or the example is shorter."""
    token = st.session_state.get(TOKEN)
    return token if token is not None and token < num_tokens else None


def select_token(token: int, *, show_attention: bool) -> None:
    """Click a token; with a head selected, the Instance view then colours by its attention."""
    st.session_state[TOKEN] = token
    if show_attention:
        st.session_state[COLOUR_BY_ATTENTION] = True
