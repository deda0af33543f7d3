"""Runs and checkpoints of the open store."""

import streamlit as st

from t3vis.markdown_text import escape_markdown as md
from t3vis_app import data, sidebar

ctx = sidebar.render()
st.title("Runs & checkpoints")
st.subheader("Runs")
runs = data.runs(ctx.store)
st.dataframe(runs[["run_id", "model", "task", "dataset", "label_names", "num_layers", "num_heads", "max_length"]],
             hide_index=True)
st.subheader(f"Checkpoints of {md(ctx.run.run_id)}")
st.dataframe(ctx.checkpoints[["checkpoint", "step", "epoch", "path", "metrics", "ingested_at"]], hide_index=True)
