"""Import paths of earlier releases, kept working: each old module warns (DeprecationWarning) and names the new one.

A script written against the first release (``from t3vis.callback import T3visCallback``) runs unchanged, with a
warning saying what to write instead; CHANGELOG.md lists the moves.
"""

from __future__ import annotations

import importlib
import warnings

# old module -> (the module that holds its names now, what to write instead)
MOVED = {
    "t3vis.callback": ("t3vis.record.callback", "from t3vis import T3visCallback"),
    "t3vis.data_loading": ("t3vis.data.loading", "from t3vis import load_examples"),
    "t3vis.model_access": ("t3vis.model.access", "from t3vis import load_model"),
    "t3vis.ingest": ("t3vis.record.ingest", "from t3vis import IngestConfig, ingest_checkpoint"),
    "t3vis.dynamics": ("t3vis.record.dynamics", "from t3vis import DynamicsRecorder"),
    "t3vis.sql_console": ("t3vis.queries.sql_console", "from t3vis import run_query"),
    # the second release's modules of what is drawn, now in the t3vis.charts package
    "t3vis.point_cloud": ("t3vis.charts.point_cloud", "from t3vis.charts import point_cloud"),
    "t3vis.point_raster": ("t3vis.charts.point_raster", "from t3vis.charts import point_raster"),
    "t3vis.figures": ("t3vis.charts.figures", "from t3vis.charts import figures"),
    "t3vis.colour_scales": ("t3vis.charts.colour_scales", "from t3vis.charts import colour_scales"),
}
# names the first release documented in a package that still exists: (package, name) -> its module now
MOVED_NAMES = {
    ("t3vis.store", "Store"): ("t3vis.store.database", "from t3vis import Store"),
    ("t3vis.store", "RunInfo"): ("t3vis.store.database", "from t3vis import RunInfo"),
}


def moved_module(old: str, namespace: dict) -> None:
    """Fill an old module's namespace with the new module's names, warning that it moved."""
    new, instead = MOVED[old]
    warnings.warn(f"{old} is deprecated: it moved to {new}. Write `{instead}`.", DeprecationWarning, stacklevel=3)
    module = importlib.import_module(new)
    namespace.update({name: value for name, value in vars(module).items() if not name.startswith("__")})


def moved_name(package: str, name: str):
    """A name an old release exported from ``package``, with a warning naming where it is now; AttributeError
    for any other name."""
    if (package, name) not in MOVED_NAMES:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    new, instead = MOVED_NAMES[(package, name)]
    warnings.warn(f"{package}.{name} is deprecated: it moved to {new}.{name}. Write `{instead}`.",
                  DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(new), name)
