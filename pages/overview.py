"""Store overview: the runs and checkpoints of the open store."""

from pathlib import Path

import streamlit as st

from t3vis.errors import StoreError
from t3vis.store import DEFAULT_STORE_PATH, Store


@st.cache_resource
def open_store(path: str) -> Store:
    return Store(path, create=False)


st.title("t3vis")
st.caption("Visual analytics for training and fine-tuning Transformer models.")
path = st.sidebar.text_input("Store file", value=st.session_state.get("store_path", str(DEFAULT_STORE_PATH)))
st.session_state["store_path"] = path

if not Path(path).is_file():
    st.info(
        f"No store at `{path}` yet. Record a checkpoint with "
        f"`t3vis ingest --model CHECKPOINT --data FILE --store {path}`, then reload this page."
    )
    st.stop()
try:
    store = open_store(path)
except StoreError as error:
    st.error(str(error))
    st.stop()

runs = store.runs()
if runs.empty:
    st.info("This store has no runs yet. Record one with `t3vis ingest`.")
    st.stop()
st.subheader("Runs")
st.dataframe(runs[["run_id", "model", "task", "label_names", "num_layers", "num_heads", "max_length"]],
             hide_index=True)
run_id = st.selectbox("Run", runs.run_id.tolist())
st.subheader("Checkpoints")
st.dataframe(store.checkpoints(run_id)[["checkpoint", "step", "epoch", "metrics", "ingested_at"]], hide_index=True)
