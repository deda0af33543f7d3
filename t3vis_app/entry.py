"""The app's entry file in an installed t3vis: ``streamlit run <site-packages>/t3vis_app/entry.py`` (``t3vis app``)."""

from t3vis_app.navigation import run_app

run_app()
