"""t3vis app entry point: it only routes to the pages (t3vis_app/navigation.py lists them).

Run with `streamlit run streamlit_app.py`.
"""

from t3vis_app.navigation import run_app

run_app()
