"""Store overview: the runs and checkpoints of the open store; builds the demo when there is no store."""

from pathlib import Path

import streamlit as st

from t3vis.demo import DEFAULT_DEMO_PATH, build_demo
from t3vis.errors import StoreError
from t3vis.store import Store


@st.cache_resource
def open_store(path: str) -> Store:
    return Store(path, create=False)


def offer_demo(path: str) -> None:
    st.info(f"No store at `{path}` yet.")
    st.markdown(
        "Build the **built-in demo**: the pretrained MiniLM fine-tuned for 4 epochs on a generated topic "
        "corpus with 10% flipped labels (about 1.5 minutes on 2 CPU cores, no network needed), "
        f"or record your own run with `t3vis ingest --model CHECKPOINT --data FILE --store {path}`."
    )
    if st.button("Build the demo store", type="primary"):
        bar = st.progress(0.0, text="Starting ...")

        def report(phase: str, done: int, total: int) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=f"{phase}: {done} / {total}")

        result = build_demo(path, progress=report)
        bar.progress(1.0, text=f"Built in {result.seconds:.0f} s")
        st.rerun()


st.title("t3vis")
st.caption("Visual analytics for training and fine-tuning Transformer models.")
path = st.sidebar.text_input("Store file", value=st.session_state.get("store_path", str(DEFAULT_DEMO_PATH)))
st.session_state["store_path"] = path

if not Path(path).is_file():
    offer_demo(path)
    st.stop()
try:
    store = open_store(path)
except StoreError as error:
    st.error(str(error))
    st.stop()

runs = store.runs()
if runs.empty:
    st.info("This store has no runs yet. Record one with `t3vis ingest`, or build the demo with `t3vis demo`.")
    st.stop()
st.subheader("Runs")
st.dataframe(runs[["run_id", "model", "task", "label_names", "num_layers", "num_heads", "max_length"]],
             hide_index=True)
run_id = st.selectbox("Run", runs.run_id.tolist())
st.subheader("Checkpoints")
st.dataframe(store.checkpoints(run_id)[["checkpoint", "step", "epoch", "path", "metrics", "ingested_at"]],
             hide_index=True)
