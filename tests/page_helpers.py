"""Helpers for AppTest page tests: open a page on a store, read the data behind its Altair charts."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest


def open_page(page: str, store_path, **state) -> AppTest:
    """Run a page file with ``store_path`` and the given session state."""
    app = AppTest.from_file(page, default_timeout=90)
    app.session_state["store_path"] = str(store_path)
    for name, value in state.items():
        app.session_state[name] = value
    return app.run()


def _walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


def vega_charts(app: AppTest) -> list[tuple[dict, dict[str, pd.DataFrame]]]:
    """(Vega-Lite spec, {dataset name: rows}) of every Altair chart on the page, in page order."""
    found = []
    for element in _walk(app._tree):
        if getattr(element, "type", None) == "vega_lite_chart":
            datasets = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets}
            found.append((json.loads(element.proto.spec), datasets))
    return found


def chart_with(app: AppTest, selection: str) -> list[tuple[dict, pd.DataFrame]]:
    """(spec, largest dataset) of the charts that declare the named selection."""
    return [(spec, max(datasets.values(), key=len)) for spec, datasets in vega_charts(app)
            if f'"{selection}"' in json.dumps(spec.get("params", []))]


def raster_charts(app: AppTest) -> list[tuple[dict, dict[str, pd.DataFrame]]]:
    """(spec, datasets) of the rasterised projections (t3vis.charts.point_raster) on the page, in page order."""
    return [(spec, datasets) for spec, datasets in vega_charts(app) if "cells" in datasets and "image" in datasets]


def deck_charts(app: AppTest) -> list[dict]:
    """The deck.gl JSON spec of every pydeck chart on the page, in page order."""
    return [json.loads(element.proto.json) for element in _walk(app._tree)
            if getattr(element, "type", None) == "deck_gl_json_chart"]


def deck_points(spec: dict) -> pd.DataFrame:
    """The rows of a point cloud's colour layers (CSV data URLs), with the layer's id in ``layer``."""
    import base64
    import io

    frames = []
    for layer in spec["layers"]:
        data = layer.get("data")
        if isinstance(data, str) and data.startswith("data:text/csv;base64,"):
            text = base64.b64decode(data.split(",", 1)[1]).decode("utf-8")
            frames.append(pd.read_csv(io.StringIO(text), dtype={"l": str, "r": str, "v": str}).assign(layer=layer["id"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def token_saliency(app: AppTest) -> pd.DataFrame | None:
    """The rows of the page's token chart (a ``token`` and a ``value`` column), or None when there is none."""
    frames = [max(datasets.values(), key=len) for _, datasets in vega_charts(app)]
    return next((rows for rows in frames if {"token", "value"} <= set(rows.columns)), None)


def assert_live_views(store_path, run_id: str, checkpoint: str, example_id: int, *, split: str = "validation",
                      **state) -> None:
    """What a checkpoint's weights give in the app: the Instance page colours the selected example's tokens by
    saliency, and the Attention heads page's instance scale draws a grid of the example's own head importance,
    which a pruned head changes."""
    from helpers import PROJECT
    from t3vis.store.database import Store

    chosen = dict(run_id=run_id, checkpoint=checkpoint, split=split, example_id=example_id, **state)
    instance = open_page(str(PROJECT / "pages" / "instance.py"), store_path, **chosen)
    assert not instance.exception, instance.exception
    assert not [info.value for info in instance.info], "the live views are unavailable"
    tokens = token_saliency(instance)
    assert tokens is not None and (tokens.value.abs() > 0).any(), "no token is coloured by saliency"

    heads = open_page(str(PROJECT / "pages" / "heads.py"), store_path, heads_scale="instance", **chosen)
    assert not heads.exception, heads.exception
    assert not [info.value for info in heads.info], "the instance scale is unavailable"
    [(_, grid)] = chart_with(heads, "head")
    run = Store(store_path).run(run_id)
    assert len(grid) == run.num_layers * run.num_heads and (grid.value.abs() > 0).any()
    heads.session_state["pruned"] = {run_id: [(0, 0)]}
    heads.run()
    assert not heads.exception, heads.exception
    [(_, pruned)] = chart_with(heads, "head")
    assert set(pruned[pruned.pruned].apply(lambda row: (row.layer, row["head"]), axis=1)) == {(0, 0)}
    assert any("Pruned: L0·H0" in caption.value for caption in heads.caption)
