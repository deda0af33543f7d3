"""Publication figures: valid SVG and PNG at twice the size, the caption in them, the same bytes twice."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ElementTree

import pandas as pd
import pytest
from PIL import Image

from t3vis import charts, figures
from t3vis.queries.explore import Attribute


@pytest.fixture(scope="module")
def curves() -> pd.DataFrame:
    return pd.DataFrame({"x": [1, 2, 3] * 2, "accuracy": [0.5, 0.6, 0.7, 0.4, 0.6, 0.8],
                         "loss": [1.0, 0.8, 0.6, 1.1, 0.7, 0.5], "source": ["train"] * 3 + ["validation"] * 3,
                         "checkpoint": ["epoch-1", "epoch-2", "epoch-3"] * 2})


def test_a_chart_exports_as_svg_and_a_png_twice_its_size_with_its_caption(curves):
    chart = charts.learning_curve_chart(curves, "accuracy", x_title="epoch")
    svg = figures.figure_svg(chart, caption="run sst2 · validation split")
    root = ElementTree.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    width, height = float(root.get("width")), float(root.get("height"))
    text = " ".join(node.text or "" for node in root.iter() if node.tag.endswith("text"))
    for expected in ("Accuracy over training", "run sst2 · validation split", "epoch", "accuracy", "validation"):
        assert expected in text
    png = figures.figure_png(chart, caption="run sst2 · validation split")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size == (round(width * 2), round(height * 2))


def test_exporting_twice_gives_the_same_bytes(curves):
    chart = charts.learning_curve_chart(curves, "loss", x_title="epoch")
    assert figures.figure_png(chart, caption="c") == figures.figure_png(chart, caption="c")
    assert figures.figure_svg(chart, caption="c") == figures.figure_svg(chart, caption="c")


def test_a_projection_with_its_selections_exports_too():
    frame = pd.DataFrame({"example_id": range(5), "x": [0.0, 1, 2, 3, 4], "y": [1.0, 0, 1, 0, 1],
                          "label": ["a", "b", "a", "b", "a"]})
    chart = charts.projection_chart(frame, color=Attribute("label", "label", "categorical"), layout="tsne",
                                    layer=6, title="epoch-3 · layer 6")
    svg = figures.figure_svg(chart, caption="run r · validation split")
    assert "epoch-3 · layer 6" in svg and "run r · validation split" in svg
    assert svg.count("<path") >= 5  # the five points
