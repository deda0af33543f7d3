"""t3vis: visual analytics for training and fine-tuning Transformer models (after T3-Vis, EMNLP 2021).

The library: the DuckDB analysis store, ingestion, model access, attributions and chart specs.
It never imports streamlit; the app (streamlit_app.py, pages/) is built on top of it.
"""

__version__ = "0.1.0"
