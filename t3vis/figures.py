"""Publication figures: any Altair chart of the app as SVG or PNG, rendered on the server by vl-convert.

vl-convert (Altair's own engine) renders the Vega-Lite spec without a browser, so a figure is the same on
every machine and exported twice from the same state gives the same bytes. A figure gets a caption line
(run, checkpoint, layer, split: what a reader of the paper needs to know) under its title, and fonts a
size up from the screen's, for a page printed at column width.
"""

from __future__ import annotations

import altair as alt

PNG_SCALE = 2  # pixels per chart pixel: sharp on paper and on high-density screens
FONT = "Helvetica, Arial, sans-serif"


def figure_spec(chart: alt.TopLevelMixin, *, caption: str = "") -> str:
    """The chart's Vega-Lite JSON as a figure: its title with the caption under it, readable fonts, and
    no interactive parameters (zoom and click selections have no meaning on paper)."""
    figure = chart.copy(deep=True)
    title = getattr(figure, "title", alt.Undefined)
    text = title.text if isinstance(title, alt.TitleParams) else title
    if caption:
        figure = figure.properties(title=alt.TitleParams(text=text if text is not alt.Undefined else "",
                                                         subtitle=caption, anchor="start"))
    figure = figure.configure(font=FONT).configure_axis(labelFontSize=12, titleFontSize=13) \
        .configure_legend(labelFontSize=12, titleFontSize=13).configure_title(fontSize=15, subtitleFontSize=12)
    return figure.to_json()


def figure_svg(chart: alt.TopLevelMixin, *, caption: str = "") -> str:
    """The chart as an SVG document."""
    import vl_convert

    return vl_convert.vegalite_to_svg(figure_spec(chart, caption=caption))


def figure_png(chart: alt.TopLevelMixin, *, caption: str = "", scale: int = PNG_SCALE) -> bytes:
    """The chart as a PNG image at ``scale`` times its size on screen."""
    import vl_convert

    return vl_convert.vegalite_to_png(figure_spec(chart, caption=caption), scale=scale)
