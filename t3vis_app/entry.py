"""The app's entry point in an installed t3vis (``t3vis app``, ``t3vis.show``): the same routing as the checkout's
streamlit_app.py."""

import streamlit as st

from t3vis_app.navigation import pages

st.set_page_config(page_title="t3vis", layout="wide")
st.navigation(pages()).run()
