"""t3vis app entry point: it only routes to the pages (t3vis_app/navigation.py lists them).

Run with `streamlit run streamlit_app.py`.
"""

import streamlit as st

from t3vis_app.navigation import pages

st.set_page_config(page_title="t3vis", layout="wide")
st.navigation(pages()).run()
