"""What is drawn: Altair and deck.gl chart specs built from DataFrames (no Streamlit here: the app only shows them).

One module per view: ``projection`` (a point per example), ``instance`` (one example's probabilities and tokens),
``heads`` (the layers x heads grid, one head's attention), ``completion`` (a completion's tokens by probability),
``tags`` (tagged words, the tag confusion matrix), ``training`` (curves over checkpoints, the SQL console's
chart); large views are drawn by ``point_raster`` (one image, in ``point_cloud``'s colour classes) or
``point_cloud`` (WebGL); ``figures`` turns any chart into a publication figure; ``colour_scales`` and ``style``
are the colours they share. The chart functions and their selection names are importable from here:
``from t3vis import charts; charts.projection_chart(...)``.
"""

import altair as alt

from t3vis.charts.completion import COMPLETION, completion_chart, probability_change_chart
from t3vis.charts.heads import (HEAD, QUERY, RASTER_ABOVE, RASTER_SIDE, attention_image_url, attention_matrix_chart,
                                attention_raster_chart, head_importance_chart, head_pattern_chart, pooled_attention)
from t3vis.charts.instance import SVG_TOKENS, TOKEN, probability_chart, token_chart
from t3vis.charts.projection import (BOX, HOVER, LARGE, PICK, TOOLTIP_TEXT_LARGE, ZOOM, axis_titles,
                                     point_cloud_figure_chart, point_size, projection_chart, raster_projection_spec)
from t3vis.charts.style import CATEGORY_SCHEME, SATURATION_SCHEME, SVG
from t3vis.charts.tags import CELL, WORD, confusion_chart, tagged_words_chart
from t3vis.charts.training import auto_chart, learning_curve_chart, per_class_accuracy_chart

# A large inline dataset is shipped by Streamlit as Arrow; Altair's own row limit does not apply.
alt.data_transformers.disable_max_rows()

__all__ = [
    "BOX", "CATEGORY_SCHEME", "CELL", "COMPLETION", "HEAD", "HOVER", "LARGE", "PICK", "QUERY", "RASTER_ABOVE",
    "RASTER_SIDE", "SATURATION_SCHEME", "SVG", "SVG_TOKENS", "TOKEN", "TOOLTIP_TEXT_LARGE", "WORD", "ZOOM",
    "attention_image_url", "attention_matrix_chart", "attention_raster_chart", "auto_chart", "axis_titles",
    "completion_chart", "confusion_chart", "head_importance_chart", "head_pattern_chart", "learning_curve_chart",
    "per_class_accuracy_chart", "point_cloud_figure_chart", "point_size", "pooled_attention",
    "probability_change_chart", "probability_chart", "projection_chart", "raster_projection_spec",
    "tagged_words_chart", "token_chart",
]
