"""The look the charts share: colour schemes, and SVG rendering for small charts."""

from __future__ import annotations

CATEGORY_SCHEME = "tableau10"
SATURATION_SCHEME = "blues"
SVG = {"embedOptions": {"renderer": "svg"}}  # small charts: crisp, and their marks are DOM elements
