"""Publication figures: any Altair chart of the app as SVG or PNG, rendered on the server by vl-convert.

vl-convert (Altair's own engine) renders the Vega-Lite spec without a browser, so a figure is the same on
every machine and exported twice from the same state gives the same bytes. A figure gets a caption line
(run, checkpoint, layer, split: what a reader of the paper needs to know) under its title, and fonts a
size up from the screen's, for a page printed at column width.
"""

from __future__ import annotations

import json
import re

import altair as alt

from t3vis.charts.colour_scales import DARK_TEXT_SHARE, token_colour, token_extent

PNG_SCALE = 2  # pixels per chart pixel: sharp on paper and on high-density screens
FONT = "Helvetica, Arial, sans-serif"


def figure_spec(chart: alt.TopLevelMixin, *, caption: str = "") -> str:
    """The chart's Vega-Lite JSON as a figure: its title with the caption under it, readable fonts, and
    no interactive parameters (zoom and click selections have no meaning on paper)."""
    figure = chart.copy(deep=True)
    own_view = figure.config.view if figure.config is not alt.Undefined else alt.Undefined  # e.g. no frame
    title = getattr(figure, "title", alt.Undefined)
    text = title.text if isinstance(title, alt.TitleParams) else title
    if caption:  # Vega draws no subtitle under an empty title: then the caption is the title line
        titled = text is not alt.Undefined and text not in ("", [])
        figure = figure.properties(title=alt.TitleParams(text=text, subtitle=caption, anchor="start") if titled
                                   else alt.TitleParams(text=caption, anchor="start", fontWeight="normal"))
    figure = figure.configure(font=FONT).configure_axis(labelFontSize=12, titleFontSize=13) \
        .configure_legend(labelFontSize=12, titleFontSize=13).configure_title(fontSize=15, subtitleFontSize=12)
    if own_view is not alt.Undefined:  # configure() replaced the chart's own configuration: keep its view's
        figure = figure.configure_view(**own_view.to_dict())
    spec = json.loads(figure.to_json())
    datasets = spec.pop("datasets", None)  # the data are left as they are: a value may well read "view_3"
    spec = json.loads(_numbered_in_order(json.dumps(spec, sort_keys=True)))
    if datasets is not None:
        spec["datasets"] = datasets
    return json.dumps(spec, sort_keys=True)


def _numbered_in_order(spec_json: str) -> str:
    """Altair names views and parameters from a counter that runs for the whole process (``view_17``,
    ``param_4``): the same chart made again on the next run gets other names, and its figure other bytes.
    Renumber them in order of appearance, so that the same state always gives the same figure."""
    return _renumbered(spec_json, r'(")(view_|param_)(\d+)(?=")')  # a whole JSON string: a name


def figure_svg(chart: alt.TopLevelMixin, *, caption: str = "") -> str:
    """The chart as an SVG document."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg(figure_spec(chart, caption=caption))
    # Vega numbers gradients and clip paths from counters that run for the whole process: renumber them
    return _renumbered(svg, r'(id="|url\(#)(gradient_|clip)(\d+)(?=[")])')


def _renumbered(text: str, pattern: str) -> str:
    """Each distinct id matched by ``pattern`` (groups: what leads it, its prefix, its number; only ids in the
    places a renderer writes them, never data) numbered from 0 in order of appearance, per prefix."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}

    def renumber(match: re.Match) -> str:
        lead, prefix, number = match.groups()
        if prefix + number not in names:
            names[prefix + number] = f"{prefix}{counts.get(prefix, 0)}"
            counts[prefix] = counts.get(prefix, 0) + 1
        return lead + names[prefix + number]

    return re.sub(pattern, renumber, text)


def figure_png(chart: alt.TopLevelMixin, *, caption: str = "", scale: int = PNG_SCALE) -> bytes:
    """The chart as a PNG image at ``scale`` times its size on screen."""
    import vl_convert

    return vl_convert.vegalite_to_png(figure_spec(chart, caption=caption), scale=scale)


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "#": r"\#", "$": r"\$", "%": r"\%", "&": r"\&",
                  "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


WORD_START_MARKS = ("\u2581", "\u0120")  # SentencePiece's ▁ and byte-level BPE's Ġ: a token that starts a word


def latex_escape(text: str) -> str:
    """``text`` as LaTeX source that prints it as it is (tokens come from the dataset: never trusted as markup).
    Line breaks and other control characters become spaces (TeX would drop the rest of a line after a carriage
    return, unbalancing the braces)."""
    text = "".join(" " if character.isspace() or not character.isprintable() else character for character in str(text))
    return "".join(LATEX_SPECIALS.get(character, character) for character in text)


def saliency_latex(tokens: list[str], values, *, diverging: bool = True, caption: str = "") -> str:
    """The tokens as a LaTeX snippet, the way saliency figures appear in papers: each token in a ``\\colorbox``
    of the colour it has in the app (:func:`t3vis.charts.colour_scales.token_colour`), white text on strong colours.

    Needs ``\\usepackage{xcolor}`` in the preamble (said in the snippet's first lines, with the caption).
    """
    values = [float(value) for value in values]
    if len(values) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(values)} values: give one value per token.")
    extent = token_extent(values)
    caption = " ".join(str(caption).split())  # one line: a line break would end the comment
    lines = ["% Saliency figure made by t3vis" + (f": {caption}" if caption else ""),
             "% Needs \\usepackage{xcolor} in the preamble (and XeLaTeX or LuaLaTeX for characters pdfLaTeX's fonts lack). "
             "Colour scale: "
             + (f"blue (against) to red (for), ±{extent:.4g}" if diverging else f"white to purple, 0 to {extent:.4g}"),
             "{\\setlength{\\fboxsep}{1.5pt}\\noindent%"]
    for token, value in zip(tokens, values):
        red, green, blue = token_colour(value, extent, diverging)
        word = token.lstrip("".join(WORD_START_MARKS))  # the boxes are spaced already
        text = latex_escape(word) if word else r"\textvisiblespace{}"
        if abs(value) > DARK_TEXT_SHARE * extent:
            text = f"\\textcolor{{white}}{{{text}}}"
        lines.append(f"\\colorbox[RGB]{{{red},{green},{blue}}}{{\\strut {text}}}")  # the line's end: a space
    lines.append("}")
    return "\n".join(lines) + "\n"
