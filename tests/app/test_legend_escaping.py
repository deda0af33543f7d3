"""The legend of large Projection views (the rasterised image, the WebGL point cloud) shows hostile labels as
text (issue 27, item 12).

The legend is HTML inside Markdown (``st.markdown(..., unsafe_allow_html=True)``). Markdown reads an HTML block
up to the first blank line: a label holding one used to end the block, and the rest rendered as Markdown, so a
real browser fetched the image a label named. The stores of tests/app/test_markdown_escaping.py are too small
to draw these views; this one has more points than RASTER_ABOVE.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from helpers import PROJECT
from page_helpers import open_page, raster_charts
from t3vis.charts import point_cloud
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store
from t3vis_app.point_cloud_view import LARGE_VIEW, RASTER_ABOVE

PAGE = str(PROJECT / "pages" / "projection.py")
N = max(LARGE_VIEW, RASTER_ABOVE) + 100  # drawn as one image
# Labels that leave a naive HTML block: a blank line (in several spellings), then Markdown or HTML.
LABELS = (
    "sports\n\n![x](http://127.0.0.1:9/legend.png)",
    "business\r\n\r\n[a link](http://127.0.0.1:9/a) :red[boom] **bold**",
    "science\n \n<img src=http://127.0.0.1:9/img.png>",
    "health <img src=x onerror=alert(1)>\u2028\u2028www.example.com",
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    path = tmp_path_factory.mktemp("legend") / "legend.duckdb"
    return build_synthetic_store(path, SyntheticConfig(n_examples=N, n_train=0, n_checkpoints=1, layers=(1,),
                                                       num_layers=2, num_heads=2, label_names=LABELS))


def _legends(app) -> list[str]:
    """The Markdown source of the page's legends (the HTML blocks with colour swatches)."""
    return [element.value for element in app.markdown if "border-radius:50%" in element.value]


def _rendered(markdown: str) -> str:
    """The HTML a CommonMark renderer with raw HTML allowed (as Streamlit's with unsafe_allow_html) makes of it."""
    return MarkdownIt("commonmark", {"html": True}).render(markdown)


class _Tags(HTMLParser):
    """The tags and attribute names of an HTML text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(name for name, _ in attrs)))


def _check(legend: str) -> None:
    assert "\n" not in legend and "\r" not in legend and "\u2028" not in legend  # one line: one HTML block
    rendered = _rendered(legend)
    tags = _Tags(rendered).tags
    # the legend's own markup only: no paragraph, image, link or emphasis made of a label, no attribute but style
    assert {tag for tag, _ in tags} == {"div", "b", "span"} and {names for _, names in tags} <= {("style",), ()}, tags
    for label in LABELS:  # every label is there, as text on one line
        assert html.escape(" ".join(label.split()), quote=True) in legend


@pytest.mark.parametrize("drawn_as", ["image", "webgl"])
def test_hostile_labels_stay_text_in_the_legend_of_a_large_view(hostile, drawn_as, monkeypatch):
    if drawn_as == "webgl":
        monkeypatch.setattr(point_cloud, "WEBGL_THRESHOLD", 100)
    app = open_page(PAGE, hostile.path).run()
    assert not app.exception
    if drawn_as == "image":
        assert raster_charts(app)
    [legend] = _legends(app)
    _check(legend)


def test_the_check_catches_a_legend_that_leaves_its_html_block():
    naive = f'<div><b>label</b>: <span>{LABELS[0]}</span></div>'
    with pytest.raises(AssertionError):
        _check(naive)
    assert '<img src="http://127.0.0.1:9/legend.png"' in _rendered(naive)
