"""Filter widgets: a range slider per continuous attribute, a multiselect per categorical one."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from t3vis.queries import explore
from t3vis.markdown_text import escape_markdown as md


def filter_widgets(known: list[explore.Attribute], summary_of: Callable[[explore.Attribute], tuple]) -> tuple:
    """Draw the filters chosen by the user; returns the filters (hashable, for caching).

    ``summary_of(attribute)``: (min, max) of a continuous attribute or the distinct values of a categorical one,
    over the unfiltered points (``explore.attribute_summary`` of a frame, or ``FrameTable.summary``)."""
    by_name = {attribute.name: attribute for attribute in known}
    saved: dict = st.session_state.setdefault("filters", {})
    _apply_pending_zoom(saved, by_name)
    with st.expander("Filters", expanded=bool(saved)):
        if "w.filter_on" not in st.session_state:
            st.session_state["w.filter_on"] = [name for name in saved if name in by_name]
        else:
            st.session_state["w.filter_on"] = [n for n in st.session_state["w.filter_on"] if n in by_name]
        chosen = st.multiselect("Filter on", list(by_name), key="w.filter_on",
                                format_func=lambda name: by_name[name].label,
                                help="Pick attributes, then narrow them below. Filtering runs in DuckDB.")
        for name in list(saved):
            if name not in chosen:
                del saved[name]
        result = []
        for name in chosen:
            attribute = by_name[name]
            summary = summary_of(attribute)
            key = f"w.filter.{name}"
            if attribute.kind == "continuous":
                low, high = summary
                if low == high:
                    st.caption(f"{md(attribute.label)}: every example has {low:g}")
                    continue
                value = saved.get(name, (low, high))
                value = (max(low, min(value[0], high)), min(high, max(value[1], low)))
                if key not in st.session_state:
                    st.session_state[key] = value
                chosen_range = st.slider(md(attribute.label), min_value=low, max_value=high, key=key)
                saved[name] = chosen_range
                if chosen_range != (low, high):
                    result.append(explore.RangeFilter(name, float(chosen_range[0]), float(chosen_range[1])))
            else:
                values = saved.get(name, list(summary))
                if key not in st.session_state:
                    st.session_state[key] = [value for value in values if value in summary]
                picked = st.multiselect(md(attribute.label), list(summary), key=key)
                saved[name] = picked
                if set(picked) != set(summary):
                    result.append(explore.ValuesFilter(name, tuple(picked)))
    return tuple(result)


ZOOM_AXES = ("x", "y")  # the layout's coordinates, filterable: their ranges are the zoom
PENDING_ZOOM = "pending_zoom"


def zoom_to(box: tuple[float, float, float, float] | None) -> None:
    """Zoom into ``box`` = (x0, x1, y0, y1) of the layout, or back out with None, on the next run (a widget's
    value cannot change once it is drawn): the x and y filters are set before their sliders are."""
    st.session_state[PENDING_ZOOM] = box or "reset"


def zoomed(filters: tuple) -> bool:
    """Whether the filters hold a zoom (a range on the layout's x or y)."""
    return any(isinstance(kept, explore.RangeFilter) and kept.column in ZOOM_AXES for kept in filters)


def _apply_pending_zoom(saved: dict, by_name: dict) -> None:
    pending = st.session_state.pop(PENDING_ZOOM, None)
    if pending is None or not all(axis in by_name for axis in ZOOM_AXES):
        return
    chosen = [name for name in st.session_state.get("w.filter_on", list(saved)) if name in by_name]
    for axis in ZOOM_AXES:
        st.session_state.pop(f"w.filter.{axis}", None)  # set again from ``saved``, within the slider's range
        saved.pop(axis, None)
    if pending == "reset":
        chosen = [name for name in chosen if name not in ZOOM_AXES]
    else:
        x0, x1, y0, y1 = pending
        saved["x"], saved["y"] = (float(min(x0, x1)), float(max(x0, x1))), (float(min(y0, y1)), float(max(y0, y1)))
        chosen += [axis for axis in ZOOM_AXES if axis not in chosen]
    st.session_state["w.filter_on"] = chosen
