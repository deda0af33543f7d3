"""Colour scales shared by the charts and by renderings outside Vega (the LaTeX saliency snippet of
:mod:`t3vis.charts.figures`), so that a token has the same colour on screen, in an exported figure and in a paper."""

from __future__ import annotations

import numpy as np

# Token colours, written out so that other renderings (the LaTeX snippet of t3vis.charts.figures) give the same colours:
# ColorBrewer's RdBu from blue (against the explained class) through white to red (for it), and its Purples for
# attention. A value's colour is the linear RGB interpolation between the two stops around it.
SALIENCY_COLOURS = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
                    "#d6604d", "#b2182b", "#67001f")
ATTENTION_COLOURS = ("#fcfbfd", "#efedf5", "#dadaeb", "#bcbddc", "#9e9ac8", "#807dba", "#6a51a3", "#54278f",
                     "#3f007d")
DARK_TEXT_SHARE = 0.6  # tokens whose |value| is above this share of the largest get white text


def token_extent(values: np.ndarray) -> float:
    """The largest |value| (1 when all are 0): the colour scale spans [-extent, extent], or [0, extent]."""
    largest = float(np.max(np.abs(values))) if len(values) else 0.0
    return largest if largest > 0 else 1.0


def token_scale(extent: float, diverging: bool) -> tuple[list[float], tuple[str, ...]]:
    """(domain, colours) of the token colour scale: one domain value per colour stop, evenly spaced."""
    colours = SALIENCY_COLOURS if diverging else ATTENTION_COLOURS
    low = -extent if diverging else 0.0
    return [float(value) for value in np.linspace(low, extent, len(colours))], colours


def token_colour(value: float, extent: float, diverging: bool) -> tuple[int, int, int]:
    """The RGB colour a token with ``value`` gets (as Vega interpolates: linear per channel, rounded half up)."""
    domain, colours = token_scale(extent, diverging)
    stops = np.array([[int(colour[i:i + 2], 16) for i in (1, 3, 5)] for colour in colours], dtype=float)
    position = float(np.clip(value, domain[0], domain[-1]))
    upper = int(np.clip(np.searchsorted(domain, position, side="right"), 1, len(domain) - 1))
    share = (position - domain[upper - 1]) / (domain[upper] - domain[upper - 1])
    rgb = stops[upper - 1] + share * (stops[upper] - stops[upper - 1])
    return tuple(int(np.floor(channel + 0.5)) for channel in rgb)
