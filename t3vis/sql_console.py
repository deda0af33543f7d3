"""Deprecated (the first release's path to the SQL console): see t3vis.deprecated_paths.MOVED for where it is now."""

from t3vis.deprecated_paths import moved_module

moved_module(__name__, globals())
