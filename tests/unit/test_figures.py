"""Publication figures: valid SVG and PNG at twice the size, the caption in them, the same bytes twice."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from t3vis import charts
from t3vis.charts import figures
from t3vis.charts.colour_scales import DARK_TEXT_SHARE
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


# -- every chart of the app exports ------------------------------------------------------------------------

def _token_chart(values, *, diverging=True):
    from t3vis.analysis.token_view import layout_tokens

    return charts.token_chart(layout_tokens(TOKENS), np.asarray(values, dtype=float), value_title="relevance",
                              diverging=diverging, title="LRP for class sports")


TOKENS = ["[CLS]", "the", "50%", "rise_of", "#1", "{team}", "won", "[SEP]"]
VALUES = [0.0, 0.12, -0.4, 0.05, 0.9, -0.81, 0.3, -0.02]


def _every_chart() -> dict:
    grid = pd.DataFrame([{"layer": l, "head": h, "value": float(l * 4 + h)} for l in range(3) for h in range(4)])
    patterns = pd.DataFrame([{"layer": l, "head": h, "query": q, "key": k, "weight": 1 / 3}
                             for l in range(2) for h in range(2) for q in range(3) for k in range(3)])
    confusion = pd.DataFrame({"gold": ["O", "B-PER", "B-PER"], "predicted": ["O", "O", "B-PER"],
                              "count": [40, 2, 8], "rate": [1.0, 0.2, 0.8]})
    words = pd.DataFrame({"unit": range(3), "word": ["Ada", "met", "Alan"], "tag": ["B-PER", "O", "B-PER"],
                          "predicted": ["B-PER", "O", "O"]})
    from t3vis.charts.point_cloud import LegendEntry

    dots = pd.DataFrame({"x": [0.1, 0.2, 0.3], "y": [0.5, 0.9, 0.2], "n": [1, 1, 1], "colour": ["a", "b", "a"]})
    return {
        "head importance": charts.head_importance_chart(grid, value_title="importance", selected=(1, 2),
                                                        pruned=frozenset({(0, 0)}), title="Importance at epoch-3"),
        "head patterns": charts.head_pattern_chart(patterns, selected=(0, 1), title="Mean attention at epoch-3"),
        "attention matrix": charts.attention_matrix_chart(TOKENS, np.full((8, 8), 1 / 8), title="L1·H2"),
        "long attention matrix": charts.attention_matrix_chart([f"t{i}" for i in range(100)],
                                                               np.full((100, 100), 0.01), title="L1·H2"),
        "probabilities": charts.probability_chart(["business", "sports"], [0.3, 0.7], gold="business",
                                                  predicted="sports"),
        "confusion matrix": charts.confusion_chart(confusion, tags=["O", "B-PER"]),
        "tagged words": charts.tagged_words_chart(words, selected_word=1, title="#7 · gold, then predicted"),
        "SQL result": charts.auto_chart(pd.DataFrame({"region": ["ambiguous", "easy-to-learn"], "n": [12, 80]})),
        "token saliency": _token_chart(VALUES),
        "WebGL view": charts.point_cloud_figure_chart(dots, (LegendEntry("a", "#4c78a8"), LegendEntry("b", "#f58518")),
                                                      legend_title="label", layout="datamap", layer=None,
                                                      title="Data Map · train"),
    }


@pytest.mark.parametrize("name", list(_every_chart()))
def test_every_chart_exports_as_svg_and_png_with_its_caption_byte_identical_twice(name):
    chart = _every_chart()[name]
    caption = "run sst2 · epoch-3 · layer 6 · validation split"
    svg = figures.figure_svg(chart, caption=caption)
    root = ElementTree.fromstring(svg)
    width, height = float(root.get("width")), float(root.get("height"))
    text = " ".join(node.text or "" for node in root.iter() if node.tag.endswith("text"))
    assert caption in text  # under the title, or the title line when the chart has none
    png = figures.figure_png(chart, caption=caption)
    assert Image.open(io.BytesIO(png)).size == (round(width * 2), round(height * 2))
    assert figures.figure_svg(_every_chart()[name], caption=caption) == svg
    assert figures.figure_png(_every_chart()[name], caption=caption) == png


# -- token saliency as LaTeX ----------------------------------------------------------------------------

def _svg_token_fills(svg: str) -> list[tuple[int, int, int]]:
    """The token blocks' fill colours in an exported token chart, in token order."""
    fills = re.findall(r'fill="rgb\((\d+), (\d+), (\d+)\)"', svg)
    return [tuple(int(channel) for channel in fill) for fill in fills][:len(TOKENS)]


def _latex_boxes(snippet: str) -> list[tuple[tuple[int, int, int], str]]:
    return [((int(r), int(g), int(b)), text)
            for r, g, b, text in re.findall(r"\\colorbox\[RGB\]\{(\d+),(\d+),(\d+)\}\{\\strut (.*)\}$", snippet,
                                            flags=re.MULTILINE)]


@pytest.mark.parametrize("diverging", [True, False])
def test_the_latex_snippet_gives_each_token_the_colour_it_has_in_the_exported_figure(diverging):
    values = VALUES if diverging else np.abs(VALUES)
    snippet = figures.saliency_latex(TOKENS, values, diverging=diverging, caption="LRP · run r")
    boxes = _latex_boxes(snippet)
    assert len(boxes) == len(TOKENS)
    figure_colours = _svg_token_fills(figures.figure_svg(_token_chart(values, diverging=diverging)))
    assert [colour for colour, _ in boxes] == figure_colours  # the same colours as the SVG and the screen
    extent = max(abs(v) for v in values)
    strongest = int(np.argmax(np.abs(values)))
    assert boxes[strongest][0] == ((103, 0, 31) if diverging and values[strongest] > 0 else
                                   (5, 48, 97) if diverging else (63, 0, 125))  # the scale's end
    zero = TOKENS.index("[CLS]")
    assert boxes[zero][0] == ((247, 247, 247) if diverging else (252, 251, 253))  # the scale's middle / start
    for (colour, text), value in zip(boxes, values):  # white text exactly on the strong colours
        assert text.startswith("\\textcolor{white}") == (abs(value) > DARK_TEXT_SHARE * extent)
    assert "\\usepackage{xcolor}" in snippet and "LRP · run r" in snippet.splitlines()[0]


def test_the_latex_snippet_escapes_the_dataset_text():
    snippet = figures.saliency_latex(["50%", "a_b", "#1", "{x}", "\\end{document}", "~^$&"], [0.0] * 6,
                                     caption="run a\nb")
    texts = [text for _, text in _latex_boxes(snippet)]
    assert texts == [r"50\%", r"a\_b", r"\#1", r"\{x\}", r"\textbackslash{}end\{document\}",
                     r"\textasciitilde{}\textasciicircum{}\$\&"]
    assert snippet.splitlines()[0].endswith("run a b")  # a line break in a caption cannot end the comment
    pieces = _latex_boxes(figures.saliency_latex(["\u2581the", "\u0120cat", "a\rb", "\u2581"], [0.0] * 4))
    assert [text for _, text in pieces] == ["the", "cat", "a b", r"\textvisiblespace{}"]  # markers, control chars
    with pytest.raises(ValueError, match="one value per token"):
        figures.saliency_latex(["a", "b"], [0.1])


def test_renumbering_names_for_identical_bytes_leaves_the_data_alone():
    """Altair's view and parameter names are renumbered; a category that happens to read like one is data."""
    chart = charts.auto_chart(pd.DataFrame({"region": ["view_7", "param_2"], "n": [3, 4]}))
    svg = figures.figure_svg(chart, caption="c")
    assert ">view_7<" in svg and ">param_2<" in svg
