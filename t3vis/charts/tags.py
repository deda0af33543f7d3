"""Token classification's charts: a sentence's words with gold and predicted tags, and the tag confusion matrix."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from t3vis.charts.style import SVG

WORD = "word"  # the click selection of the tagged-sentence view, over the word's index


def tagged_words_chart(words: pd.DataFrame, *, selected_word: int | None = None, char_px: int = 9,
                       line_chars: int = 100, title: str = "") -> alt.LayerChart:
    """A sentence's words with the gold tag and the predicted tag under each: each tag's box is coloured by its
    entity type (so an entity spans its words), a wrong prediction is red and marked ✗.

    ``words``: columns unit, word, tag, predicted (None for words the model never saw). Click a word to select it
    (selection ``WORD`` over ``unit``).
    """
    rows, line, start = [], 0, 0
    for item in words.itertuples():
        width = max(len(str(item.word)), len(str(item.tag)), len(str(item.predicted or "—")) + 2, 2) + 1
        if start and start + width > line_chars:
            line, start = line + 1, 0
        predicted = item.predicted if isinstance(item.predicted, str) else None
        rows.append({"unit": int(item.unit), "word": str(item.word), "tag": str(item.tag),
                     "predicted": predicted or "—", "wrong": predicted is not None and predicted != item.tag,
                     "gold_type": _entity_type(item.tag), "predicted_type": _entity_type(predicted or "O"),
                     "line": line, "start": start, "width": width})
        start += width
    data = pd.DataFrame(rows)
    line_px, row_px, margin = 70, 21, 72  # the margin holds the row names
    data["x0"], data["x1"] = margin + data.start * char_px, margin + (data.start + data.width - 0.4) * char_px
    data["xc"] = (data.x0 + data.x1) / 2
    data["y_word"] = data.line * line_px
    data["y_gold"], data["y_pred"] = data.y_word + row_px, data.y_word + 2 * row_px
    data["shown_prediction"] = np.where(data.wrong, "✗ " + data.predicted, data.predicted)
    width = int(max(data.x1.max(), 640)) if len(data) else 640
    height = int(data.y_pred.max() + row_px + 4) if len(data) else 60
    types = sorted({t for t in (*data.gold_type, *data.predicted_type) if t != "O"})
    colour = alt.Scale(domain=["O", *types], range=["#f3f3f3", *_TYPE_COLOURS[: len(types)]])
    x, x2 = alt.X("x0:Q", axis=None, scale=None), alt.X2("x1:Q")
    pick = alt.selection_point(name=WORD, fields=["unit"], on="click")
    selected = -1 if selected_word is None else int(selected_word)
    tooltip = [alt.Tooltip("word:N"), alt.Tooltip("unit:Q", title="word"), alt.Tooltip("tag:N", title="gold"),
               alt.Tooltip("predicted:N", title="predicted")]

    for name in ("y_word", "y_gold", "y_pred"):
        data[f"{name}_end"] = data[name] + row_px - 3
        data[f"{name}_mid"] = data[name] + (row_px - 3) / 2

    def boxes(y: str, kind: str, legend: bool) -> alt.Chart:
        return alt.Chart(data).mark_rect(cornerRadius=3).encode(
            x=x, x2=x2, y=alt.Y(f"{y}:Q", axis=None, scale=None), y2=alt.Y2(f"{y}_end:Q"),
            color=alt.Color(f"{kind}:N", scale=colour, title="entity type",
                            legend=alt.Legend(orient="right") if legend else None),
            tooltip=tooltip)

    word_boxes = alt.Chart(data).mark_rect(cornerRadius=3, fill="white").encode(
        x=x, x2=x2, y=alt.Y("y_word:Q", axis=None, scale=None), y2=alt.Y2("y_word_end:Q"),
        stroke=alt.condition(alt.datum.unit == selected, alt.value("black"), alt.value("#bbbbbb")),
        strokeWidth=alt.condition(alt.datum.unit == selected, alt.value(2.5), alt.value(0.6)),
        tooltip=tooltip)
    # The click target: a transparent box over the word and its two tags, on top of the texts.
    targets = alt.Chart(data).mark_rect(opacity=0).encode(
        x=x, x2=x2, y=alt.Y("y_word:Q", axis=None, scale=None), y2=alt.Y2("y_pred_end:Q"),
        tooltip=tooltip).add_params(pick)

    def texts(y: str, field: str, **style) -> alt.Chart:
        return alt.Chart(data).mark_text(**style).encode(
            x=alt.X("xc:Q", axis=None, scale=None), y=alt.Y(f"{y}_mid:Q", axis=None, scale=None), text=f"{field}:N",
            tooltip=tooltip)

    word_text = texts("y_word", "word", fontSize=13, fontWeight="bold")
    gold_text = texts("y_gold", "tag", fontSize=11)
    predicted_text = alt.Chart(data).mark_text(fontSize=11).encode(
        x=alt.X("xc:Q", axis=None, scale=None), y=alt.Y("y_pred_mid:Q", axis=None, scale=None),
        text="shown_prediction:N", color=alt.condition("datum.wrong", alt.value("#c0392b"), alt.value("black")),
        tooltip=tooltip)
    names = pd.DataFrame({"name": ["word", "gold", "predicted"] * (int(data.line.max()) + 1 if len(data) else 1),
                          "line": np.repeat(np.arange(int(data.line.max()) + 1 if len(data) else 1), 3)})
    names["y"] = names.line * line_px + np.tile([0, row_px, 2 * row_px], len(names) // 3) + (row_px - 3) / 2
    row_names = alt.Chart(names).mark_text(align="left", fontSize=11, color="#777777").encode(
        x=alt.value(0), y=alt.Y("y:Q", axis=None, scale=None), text="name:N")
    return alt.layer(
        word_boxes, boxes("y_gold", "gold_type", True), boxes("y_pred", "predicted_type", False),
        word_text, gold_text, predicted_text, row_names, targets,
    ).properties(width=width, height=height, title=title, usermeta=SVG).configure_view(strokeWidth=0)


_TYPE_COLOURS = ["#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#f7b6d2", "#c49c94", "#dbdb8d", "#9edae5"]


def _entity_type(tag: str) -> str:
    return tag[2:] if tag[:2] in ("B-", "I-", "E-", "S-") and len(tag) > 2 else "O"


def confusion_chart(confusion: pd.DataFrame, *, tags: list[str], value: str = "count",
                    title: str = "") -> alt.LayerChart:
    """The tag confusion matrix: gold tags as rows, predicted tags as columns, in ``tags`` order (every tag, so
    an empty row or column shows), colour and text = ``value`` (``count`` or ``rate``). Click a cell to select it
    (selection ``CELL`` over gold and predicted)."""
    order = list(tags) + [tag for tag in dict.fromkeys(confusion.gold.tolist() + confusion.predicted.tolist())
                          if tag not in tags]
    confusion = confusion.copy()
    # White text where the cell is dark: the colour scale is sqrt for counts, linear for rates.
    shade = (np.sqrt(confusion["count"] / max(int(confusion["count"].max()), 1)) if value == "count"
             else confusion["rate"] / max(float(confusion["rate"].max()), 1e-12))
    confusion["dark"] = shade > 0.6
    pick = alt.selection_point(name=CELL, fields=["gold", "predicted"], on="click")
    base = alt.Chart(confusion).encode(
        x=alt.X("predicted:N", scale=alt.Scale(domain=order), title="predicted tag",
                axis=alt.Axis(labelAngle=-45, orient="top")),
        y=alt.Y("gold:N", scale=alt.Scale(domain=order), title="gold tag"),
        tooltip=[alt.Tooltip("gold:N"), alt.Tooltip("predicted:N"), alt.Tooltip("count:Q"),
                 alt.Tooltip("rate:Q", format=".1%", title="rate (of the gold tag's words)")])
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues", type="sqrt" if value == "count" else "linear"),
                        title="words" if value == "count" else "rate"),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55)))
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text(f"{value}:Q", format="d" if value == "count" else ".0%"),
        color=alt.condition("datum.dark", alt.value("white"), alt.value("black")))
    # The click target sits on top, transparent: a click on a cell's number selects the cell too.
    targets = base.mark_rect(opacity=0).add_params(pick)
    return alt.layer(cells, labels, targets).properties(width=alt.Step(44), height=alt.Step(28), title=title,
                                                        usermeta=SVG)


CELL = "cell"  # the click selection of the confusion matrix, over the gold and predicted tags
