"""The floor under every browser time of this machine: Streamlit pages with nothing of t3vis in them.

    python bench/browser_floor.py [--repeats 3]

``streamlit run`` serves a one-file app (no store, no t3vis import) and headless Chromium (/usr/bin/chromium)
opens it in a fresh browser each time, timed from navigation until the page has drawn:

- ``text``: one line of text (the fixed cost of a Streamlit page in a fresh browser);
- ``vega_100``, ``vega_50k``: one Altair scatter plot of 100 and of 50,000 random points in 4 colours, no
  tooltip, no selection (the least a Vega chart of that size costs, drawn as Streamlit draws it);
- ``widgets``: the kinds of elements the Projection page has (sidebar inputs, select boxes, toggles, an
  expander with a multiselect, a 100-point Altair chart, download buttons, a number input, a 100-row
  selectable table), with nothing behind them: the floor of a Streamlit page of that shape, timed until its chart
  has drawn; ``widgets_first``: the same without the table, its pager and its download (what a large view draws
  first in a fresh browser session, its table a moment later: t3vis_app/deferred.py);
- ``deck_100``: one ``st.pydeck_chart`` of 100 points (the fixed cost of the WebGL chart; WebGL here is
  software, SwiftShader).

The Projection page's own times (``bench/app.py``, ``bench/scale.py``) are to be read against these. Last line:
``BENCH browser_floor text_s=... vega_100_s=... widgets_s=... widgets_first_s=... vega_50k_s=... deck_100_s=...``
(medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from app_browser import chromium_page, serve_app, webgl_coloured_pixels  # noqa: E402

APP = '''
import altair as alt
import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

kind = st.query_params.get("kind", "text")
st.write("ready")
rng = np.random.default_rng(0)
if kind.startswith("vega"):
    n = 100 if kind == "vega_100" else 50_000
    frame = pd.DataFrame({"x": rng.random(n), "y": rng.random(n), "c": rng.integers(0, 4, n).astype(str)})
    st.altair_chart(alt.Chart(frame).mark_circle(size=8).encode(x="x", y="y", color="c"))
elif kind.startswith("widgets"):  # the Projection page's kinds of elements, with nothing of t3vis behind them
    with st.sidebar:
        st.text_input("Store file", "store/demo.duckdb")
        st.selectbox("Run", ["run"])
        st.selectbox("Checkpoint", ["epoch-1"])
        st.toggle("Follow training")
    st.title("Projection")
    columns = st.columns([2, 1, 2, 1])
    for column, name in zip(columns, ("Layout", "Layer", "Colour by")):
        column.selectbox(name, ["a", "b"])
    columns[3].toggle("Compare")
    with st.expander("Filters"):
        st.multiselect("Filter on", ["label", "loss"])
    st.caption("100 of 100 examples pass the filters.")
    frame = pd.DataFrame({"x": rng.random(100), "y": rng.random(100), "c": rng.integers(0, 4, 100).astype(str)})
    st.altair_chart(alt.Chart(frame).mark_circle(size=8).encode(x="x", y="y", color="c"))
    st.download_button("SVG", "svg", file_name="f.svg")
    st.download_button("PNG", "png", file_name="f.png")
    st.subheader("Data table")
    if kind == "widgets":  # widgets_first: what a large view draws first, its table coming a moment later
        st.number_input("Page", min_value=1, max_value=10, step=1)
        st.dataframe(frame.assign(text=["some text of an example"] * 100), on_select="rerun",
                     selection_mode="single-row")
        st.download_button("Download the filtered rows (CSV)", "csv", file_name="rows.csv")
elif kind == "deck_100":
    points = [{"p": [float(x), float(y)]} for x, y in rng.random((100, 2))]
    layer = pdk.Layer("ScatterplotLayer", points, get_position="p", get_fill_color=[76, 120, 168],
                      get_radius=4, radius_units="pixels")
    view = pdk.View(type="OrthographicView", controller=True)
    st.pydeck_chart(pdk.Deck(layers=[layer], views=[view], map_provider=None,
                             initial_view_state=pdk.ViewState(target=[0.5, 0.5, 0], zoom=8)))
'''
DRAWN = {  # a page has drawn when this holds (JavaScript)
    "vega": "() => { const chart = document.querySelector('[data-testid=stVegaLiteChart]');"
            " return chart !== null && chart.querySelector('canvas, svg.marks, svg .marks') !== null; }",
}


def time_page(url: str, kind: str) -> float:
    """Seconds from navigation until the page of ``kind`` has drawn, in a fresh browser."""
    width, height = (1400, 1600) if kind.startswith("widgets") else (1200, 800)  # bench/scale_app.py's window
    with chromium_page(width=width, height=height) as page:
        started = time.perf_counter()
        page.goto(f"{url}/?kind={kind}")
        page.get_by_text("ready").wait_for(timeout=120_000)
        if kind.startswith(("vega", "widgets")):
            page.wait_for_function(DRAWN["vega"], timeout=120_000)
        elif kind == "deck_100":
            while webgl_coloured_pixels(page) <= 0:  # -1: no canvas yet
                if time.perf_counter() - started > 120:
                    raise TimeoutError("the WebGL chart drew nothing in 2 minutes")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "streamlit_app.py").write_text(APP)
        with serve_app(None, folder=Path(folder)) as url:
            time_page(url, "vega_100")  # the server's first run imports altair, numpy and pandas: not timed
            medians = {}
            for kind in ("text", "vega_100", "widgets", "widgets_first", "vega_50k", "deck_100"):
                times = [time_page(url, kind) for _ in range(args.repeats)]
                medians[kind] = statistics.median(times)
                print(f"{kind}: " + ", ".join(f"{t:.2f} s" for t in times), flush=True)
    print("BENCH browser_floor " + " ".join(f"{kind}_s={value:.2f}" for kind, value in medians.items()))


if __name__ == "__main__":
    main()
