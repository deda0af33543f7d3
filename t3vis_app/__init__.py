"""The Streamlit layer shared by the pages: session state, the sidebar, cached store access.

Only the app imports this package; the library (``t3vis``) never imports Streamlit.
"""
