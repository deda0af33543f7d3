"""t3vis app entry point: it only lists the pages. Run with `streamlit run streamlit_app.py`."""

import streamlit as st

st.set_page_config(page_title="t3vis", layout="wide")
navigation = st.navigation([
    st.Page("pages/projection.py", title="Projection & data", icon=":material/scatter_plot:", default=True),
    # Every page reads the selected example, run and checkpoint from st.session_state.
    st.Page("pages/heads.py", title="Attention heads", icon=":material/grid_view:"),
    st.Page("pages/instance.py", title="Instance", icon=":material/text_fields:"),
    st.Page("pages/training.py", title="Training", icon=":material/show_chart:"),
    st.Page("pages/sql.py", title="SQL", icon=":material/database:"),
    st.Page("pages/overview.py", title="Runs & checkpoints", icon=":material/table_view:"),
])
navigation.run()
