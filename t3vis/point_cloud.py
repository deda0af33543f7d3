"""Deprecated: moved into the t3vis.charts package (see t3vis.deprecated_paths.MOVED)."""

from t3vis.deprecated_paths import moved_module

moved_module(__name__, globals())
