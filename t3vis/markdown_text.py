"""Text from a store (dataset text, label, run, checkpoint and split names, tokens) made safe to show as Markdown.

Streamlit renders Markdown in ``st.markdown``, ``st.caption``, alerts, headings, widget labels and help
texts. A label named ``![x](http://127.0.0.1/x)`` would show an image fetched from that address there, and
``:red[boom]`` would be coloured. :func:`escape_markdown` returns a string that shows the text literally.

Three things are needed, because Streamlit's renderer (react-markdown with GFM, directives, math and
emoji plugins) does more than CommonMark:

* every ASCII punctuation character gets a backslash, which CommonMark allows for each of them: no
  emphasis, link, image, code span, HTML tag, table, heading, list, ``$`` math or ``:red[...]`` directive
  can start inside the text;
* an invisible WORD JOINER (U+2060) goes after ``:`` and ``@``, between ``www`` and ``.``, and between the
  characters of ``->``-like arrows. Some plugins search the text *after* backslash escapes are resolved:
  GFM's bare-URL and e-mail links (``http://...``, ``www.x.y``, ``a@b.c``), Streamlit's ``:material/icon:``,
  ``:streamlit:`` and emoji shortcodes, and its typographic arrows. A backslash cannot stop those, a joiner
  breaks their patterns without showing;
* line breaks become spaces, so that a label stays one line (a blank line would start a new paragraph), and
  the text is stripped (a leading indent would start a code block, ``** x **`` is not bold).

HTML is not escaped as entities: Markdown would decode ``&lt;`` back to ``<``, and with ``unsafe_allow_html``
off Streamlit does not render HTML tags anyway; the backslash before ``<`` already keeps them text.
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"

_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]\s*")
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Where a joiner goes: after ':' and '@', between 'www' and '.', inside runs of arrow characters.
_JOINER_AT = re.compile(r"(?<=[:@])|(?i:(?<=www)(?=\.))|(?<=[-<>~=])(?=[-<>=])")


def escape_markdown(text: object) -> str:
    """``text`` (``str()`` of it) escaped to render literally, on one line, inside Streamlit Markdown.

    Use it for every store-derived string placed in a Markdown-rendering call (``st.markdown``,
    ``st.caption``, ``st.info`` and the other alerts, headings, widget labels, ``help``). Not for
    literal outputs (``st.text``, ``st.code``, dataframes, select options, chart titles), which would
    show the backslashes, nor inside a Markdown code span, where backslashes are literal too.

    For example ``[a](http://x.org)`` becomes ``\\[a\\]\\(http\\:`` + joiner + ``\\/\\/x\\.org\\)``.
    """
    one_line = _LINE_BREAKS.sub(" ", str(text)).strip()
    joined = _JOINER_AT.sub(WORD_JOINER, one_line)
    return _ASCII_PUNCTUATION.sub(r"\\\1", joined)
