"""t3vis app entry point: it only lists the pages. Run with `streamlit run streamlit_app.py`."""

import streamlit as st

st.set_page_config(page_title="t3vis", layout="wide")
navigation = st.navigation([
    st.Page("pages/overview.py", title="Store overview", default=True),
])
navigation.run()
