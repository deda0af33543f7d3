"""Training page: learning curves over checkpoints, and the examples whose outputs changed (by the run's task)."""

import streamlit as st

from t3vis import charts
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app import data, sidebar
from t3vis_app.tasks import app_task

ctx = sidebar.render()
run_id = ctx.run.run_id
st.title("Training")

curves = data.learning_curves(ctx.store, run_id)
x_title = "epoch" if ctx.checkpoints.epoch.notna().any() else "step"


def curve_with_figure(frame, metric: str, split: str | None = None) -> None:
    """One learning curve, with its figure export buttons."""
    chart = charts.learning_curve_chart(frame, metric, x_title=x_title)
    st.altair_chart(chart)
    figure_buttons(chart, name=f"t3vis-{run_id}-{metric}", caption=f"run {run_id}" + (f" · {split} split" if split
                                                                                      else ""), key=f"figure.{metric}")


app_task(ctx.run.task).training_view(ctx, curves, curve_with_figure)
