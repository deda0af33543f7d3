"""Store text shown as Markdown renders literally: the escaper, then every page on a store of hostile names.

Label names, run ids, checkpoint and split names and example texts are data: a label called
``![x](http://127.0.0.1/x)`` must show those characters, not fetch an image. The page tests run each
page with AppTest on such a store and read every Markdown-rendering string of the page (bodies of
markdown, captions, alerts and headings; widget labels and help; radio options).
"""

from __future__ import annotations

import csv
import html
import re
import urllib.parse

import pytest
from streamlit.testing.v1 import AppTest

from helpers import PROJECT
from page_helpers import _walk, open_page
from t3vis.data.loading import load_examples
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.markdown_text import WORD_JOINER, escape_markdown
from t3vis.model.access import load_model
from t3vis.store.database import Store
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store
from t3vis.fixtures.tiny_models import save_tiny_model

HOSTILE = (
    "![x](http://127.0.0.1/x)",
    "[a](http://127.0.0.1/a)",
    "<img src=x onerror=alert(1)>",
    ":red[boom]",
    "**bold**",
)
# What must never reach a Markdown renderer unescaped: link and image syntax, HTML, directives, emphasis, URLs.
RAW = ("](http", "<img", ":red[", "**bold**", "://")
LABELS = HOSTILE[:3]
RUN_ID = "**bold** [run](http://127.0.0.1/run)"
CHECKPOINTS = ("![c1](http://127.0.0.1/c1)", ":red[c2] <img src=x onerror=alert(2)>")
SPLIT = "[split](http://127.0.0.1/s)"
TEXT = "![t](http://127.0.0.1/t) <img src=x onerror=alert(1)> :red[boom] **bold** [a](http://127.0.0.1/a)"
EXTRA_COLUMN = "www.example.com"  # a dataset column (a filter's label): a bare domain that GFM would link
STORE_TEXT = (*HOSTILE, RUN_ID, *CHECKPOINTS, SPLIT, EXTRA_COLUMN)
PAGES = ("projection", "heads", "instance", "training", "sql", "overview")


def _unescape(markdown: str) -> str:
    """The text CommonMark makes of escaped Markdown: backslash escapes resolved, nothing else."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def _raw_in(value: str) -> list[str]:
    """The RAW forms found in ``value`` with no backslash escaping their first character."""
    return [raw for raw in RAW if re.search(r"(?<!\\)(?:\\\\)*" + re.escape(raw), value)]


def _unescaped_punctuation(markdown: str) -> list[str]:
    """ASCII punctuation of ``markdown`` that no backslash escapes."""
    found, characters = [], iter(markdown)
    for character in characters:
        if character == "\\":
            next(characters, None)
        elif re.fullmatch(r"[!-/:-@\[-`{-~]", character):
            found.append(character)
    return found


# -- the escaper ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [*HOSTILE, TEXT, RUN_ID, SPLIT, "a -> b <= c", "~~x~~ `c` $x$ | t |", "a\\"])
def test_escaped_text_reads_back_unchanged(text):
    escaped = escape_markdown(text)
    assert _unescape(escaped).replace(WORD_JOINER, "") == text
    assert _unescaped_punctuation(escaped) == []


@pytest.mark.parametrize("text", [*HOSTILE, TEXT, "http://127.0.0.1/x", "www.example.com", "WWW.x.org",
                                  "me@example.com", ":material/star: :material_star: :streamlit: :smile: :+1:"])
def test_no_link_or_shortcode_survives_the_escapes(text):
    # GFM bare links and Streamlit's icons, logo and emoji are found in the text *after* escapes are resolved
    # (mdast-util-gfm-autolink-literal, Streamlit's StreamlitMarkdown.tsx): the word joiners must break them.
    shown = _unescape(escape_markdown(text))
    assert not re.search(r"(https?://|www(?=\.))[-.\w]+", shown, re.IGNORECASE)
    assert not re.search(r"[-.\w+]+@[-\w]+(\.[-\w]+)+", shown)
    assert not re.search(r":(material[_/]\w+|streamlit|[\w+-]+):", shown)


def test_lines_and_outer_spaces_go():
    assert escape_markdown("  a\n\n# b\r\nc  ") == "a \\# b c"
    assert escape_markdown(7) == "7"


def test_a_commonmark_renderer_makes_plain_text_of_it():
    markdown_it = pytest.importorskip("markdown_it")
    renderer = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough")
    for text in (*HOSTILE, TEXT, "# h", "- item", "1. one", "> q", "    code", "a | b\n--|--\nc | d", "&amp; &lt;"):
        rendered = renderer.render(f"**{escape_markdown(text)}**").strip()
        assert rendered.startswith("<p><strong>") and rendered.endswith("</strong></p>"), rendered
        inner = rendered[len("<p><strong>"):-len("</strong></p>")]
        assert "<" not in inner, rendered  # no element: every '<' of the text is the entity &lt;
        assert html.unescape(inner).replace(WORD_JOINER, "") == " ".join(text.split())


# -- the pages --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Hostile names without model weights: the pages that need a model say why they cannot."""
    config = SyntheticConfig(n_examples=40, n_train=30, n_checkpoints=2, num_layers=2, num_heads=2,
                             label_names=HOSTILE[:4], run_id=RUN_ID, checkpoint_names=CHECKPOINTS, text_prefix=TEXT)
    return build_synthetic_store(tmp_path_factory.mktemp("hostile") / "synthetic.duckdb", config)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Hostile names, split, texts and a dataset column, recorded from a tiny model kept on disk."""
    folder = tmp_path_factory.mktemp("hostile-model")
    model_dir = save_tiny_model(folder / "model", num_labels=len(LABELS), seed=1)
    with (folder / "data.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", EXTRA_COLUMN])
        for index in range(9):
            writer.writerow([f"{TEXT} {index}", LABELS[index % len(LABELS)], index])
    examples = load_examples(folder / "data.csv", label_names=LABELS)
    bundle = load_model(model_dir, label_names=LABELS, device="cpu")
    store = Store(folder / "recorded.duckdb", create=True)
    for step, checkpoint in enumerate(CHECKPOINTS, start=1):
        ingest_checkpoint(store, bundle, examples, run_id=RUN_ID, checkpoint=checkpoint, step=step,
                          path=str(model_dir), config=IngestConfig(split=SPLIT, projection="pca", batch_size=8,
                                                                   importance_examples=-1))
    return store


LITERAL_ELEMENTS = {"text", "code", "json", "dataframe", "vega_lite_chart", "exception"}


def markdown_strings(app: AppTest) -> list[tuple[str, str]]:
    """(element type, string) of everything on the page that Streamlit renders as Markdown."""
    found = []
    for node in _walk(app._tree):
        proto = getattr(node, "proto", None)
        if getattr(node, "type", None) in LITERAL_ELEMENTS or not hasattr(proto, "ListFields"):
            continue
        for field, value in proto.ListFields():
            if field.name in ("body", "label", "help", "text") and isinstance(value, str):
                found.append((node.type, value))
            elif field.name == "options" and node.type == "radio":
                found += [(node.type, option) for option in value]
    return found


def _run_page(page: str, store: Store, split: str) -> AppTest:
    app = open_page(str(PROJECT / "pages" / f"{page}.py"), store.path, split=split, example_id=1, token=1,
                    heads_scale="aggregate", head=(0, 0), filters={EXTRA_COLUMN: (0.0, 8.0)})
    if page == "sql":  # DuckDB's error message quotes the value it could not convert
        app.text_area(key="sql_text").set_value("SELECT CAST(label_name AS INTEGER) FROM examples").run()
        next(button for button in app.button if button.label == "Run").click().run()
    return app


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("store_name", ["synthetic", "recorded"])
def test_pages_show_store_text_only_escaped(page, store_name, request):
    store = request.getfixturevalue(store_name)
    app = _run_page(page, store, "validation" if store_name == "synthetic" else SPLIT)
    assert not app.exception, app.exception
    strings = markdown_strings(app)
    assert strings
    for element, value in strings:
        assert not _raw_in(value), f"unescaped store text in a {element}: {value!r}"
    if page != "training":  # its only such text (the split, after a row is picked) needs a table click
        assert any(escape_markdown(text) in value for _, value in strings for text in STORE_TEXT), strings


def test_the_recorded_store_reaches_the_model_views(recorded):
    """The hostile names are shown where the pages put them, not only absent in raw form."""
    instance = _run_page("instance", recorded, SPLIT)
    title = next(m.value for m in instance.markdown if "gold label" in m.value)
    assert escape_markdown(SPLIT) in title and escape_markdown(CHECKPOINTS[-1]) in title
    assert escape_markdown(LABELS[1]) in title  # example 1's gold label
    heads = _run_page("heads", recorded, SPLIT)
    assert any(f"(gold {escape_markdown(LABELS[1])})" in m.value for m in heads.markdown)
    projection = _run_page("projection", recorded, SPLIT)
    assert escape_markdown(EXTRA_COLUMN) in [slider.label for slider in projection.slider]
    overview = _run_page("overview", recorded, SPLIT)
    assert escape_markdown(RUN_ID) in overview.subheader[-1].value


# -- in a real browser ------------------------------------------------------------------------------

@pytest.mark.browser
def test_a_browser_shows_the_names_as_text(recorded):
    """Streamlit's own renderer (GFM, directives, emoji) on the real pages: no link, image or colour appears."""
    from app_browser import CHROMIUM, chromium_page, serve_app

    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)")
    query = "?split=" + urllib.parse.quote(SPLIT) + "&example=1"
    pages = {"": "Selected example", "instance": "gold label", "heads": "Effect of pruning",
             "overview": "Checkpoints of"}
    with serve_app(recorded.path) as url, chromium_page() as page:
        for path, landmark in pages.items():
            page.goto(f"{url}/{path}{query}")
            page.get_by_text(landmark).first.wait_for(timeout=90_000)
            page.wait_for_timeout(1500)  # the rest of the run
            found = page.evaluate("""() => {
                const content = [...document.querySelectorAll(
                    '[data-testid=stMain], [data-testid=stSidebarUserContent]')];
                const all = selector => content.flatMap(root => [...root.querySelectorAll(selector)]);
                return {
                    injected: [...all('a, img, .stMarkdownColoredText, .stMarkdownBadge, span[role=img]')]
                        .filter(node => !(node.tagName === 'A' && node.getAttribute('href').startsWith('#')))
                        .map(node => node.outerHTML),
                    text: content.map(root => root.innerText).join(' '),
                }}""")
            assert found["injected"] == [], (path, found["injected"])
            shown = found["text"].replace(WORD_JOINER, "")
            assert RUN_ID in shown or path != "overview"
            assert LABELS[1] in shown or path not in ("", "instance", "heads"), (path, shown[:3000])
