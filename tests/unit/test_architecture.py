"""The layout's rules, checked on the source: t3vis/ is layered and has no Streamlit; pages read through one layer."""

from __future__ import annotations

import ast

from helpers import PROJECT

# Lower layers never import higher ones: a newcomer reads store/data/model, then what is built on them.
LAYERS = (
    {"errors", "progress", "markdown_text", "tasks", "deprecated_paths"},
    {"store", "data", "model", "app_server"},  # the store file; dataset files; models; the command serving the app
    {"queries", "attribution"},  # what the pages read; saliency methods
    {"record", "charts"},  # ingestion, the Trainer callback; what is drawn (Altair and deck.gl charts, figures)
    {"analysis", "demo", "fixtures"},  # live analyses and validation; the demo; test and benchmark fixtures
    {"cli", "notebook"},  # the command line (t3vis app among its commands); the app in a notebook (t3vis.show)
    # the first release's import paths, each a deprecated alias of where its names are now
    {"callback", "data_loading", "model_access", "ingest", "dynamics", "sql_console", "point_cloud", "point_raster",
     "figures", "colour_scales"},
)


def _imports(path) -> set[str]:
    """Every module a Python file imports (import x / from x import y, at any depth)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _part(path) -> str:
    """The subpackage (or top-level module) of t3vis that a file belongs to."""
    return path.relative_to(PROJECT / "t3vis").parts[0].removesuffix(".py")


def test_the_import_guard_sees_every_form_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import streamlit\nfrom streamlit import cache_data\n"
                      "def f():\n    from streamlit.runtime import x\n    import altair as alt\n")
    assert _imports(source) == {"streamlit", "streamlit.runtime", "altair"}


def test_library_never_imports_streamlit():
    offenders = [str(path.relative_to(PROJECT)) for path in (PROJECT / "t3vis").rglob("*.py")
                 if any(name.split(".")[0] == "streamlit" for name in _imports(path))]
    assert offenders == []


def test_production_code_never_imports_the_fixtures():
    offenders = [str(path.relative_to(PROJECT)) for path in (PROJECT / "t3vis").rglob("*.py")
                 if "fixtures" not in path.parts and any(name.startswith("t3vis.fixtures") for name in _imports(path))]
    assert offenders == []


def test_each_subpackage_says_its_job():
    for init in (PROJECT / "t3vis").glob("*/__init__.py"):
        assert init.read_text().startswith('"""'), f"{init} has no docstring naming its job"


def test_layers_import_only_layers_below_them():
    level = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    upward = []
    for path in (PROJECT / "t3vis").rglob("*.py"):
        own = _part(path)
        if own == "__init__":
            continue
        assert own in level, f"{own} is in no layer: add it to LAYERS"
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "t3vis" and len(parts) > 1 and parts[1] != own and level[parts[1]] >= level[own]:
                upward.append(f"{path.relative_to(PROJECT)} imports {name}")
    assert upward == []


def test_pages_read_the_store_through_the_cached_data_layer():
    """Pages (and the tasks' app sides they call) pass the StoreHandle to t3vis_app.data; the raw Store is used only
    for the two user actions that must not be cached (a SQL query, the pruning evaluation's pass over the
    examples, which each task reads in its own way)."""
    raw = []
    for path in [*(PROJECT / "pages").glob("*.py"), *(PROJECT / "t3vis_app" / "tasks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "database":
                raw.append(path.name)
            if isinstance(node, ast.Call) and any(isinstance(arg, ast.Attribute) and arg.attr == "database"
                                                  for arg in node.args):
                raw.append((path.name, ast.unparse(node.func)))
    assert sorted(raw, key=str) == sorted([
        ("classification.py", "stored_examples"), "classification.py", ("summarization.py", "stored_documents"),
        "summarization.py", ("tagging.py", "stored_sentences"), "tagging.py", ("generation_instance.py",
                                                                                "stored_completions"),
        "generation_instance.py", ("sql.py", "run_query"), "sql.py"],
        key=str)


def _task_branches(path) -> list[str]:
    """What in a page file branches on the task: an import of t3vis.tasks, or a comparison of ``<x>.task``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "t3vis.tasks":
            found.append(f"imports {', '.join(alias.name for alias in node.names)} from t3vis.tasks")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(side, ast.Attribute) and side.attr == "task" for side in sides):
                found.append(f"compares .task on line {node.lineno}")
    return found


def test_the_guard_sees_a_page_that_branches_on_the_task(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("from t3vis.tasks import TOKEN_CLASSIFICATION\nif ctx.run.task == TOKEN_CLASSIFICATION:\n    pass\n")
    assert _task_branches(page) == ["imports TOKEN_CLASSIFICATION from t3vis.tasks", "compares .task on line 2"]


def test_pages_never_branch_on_the_task():
    """What differs by task goes through the app side of the task seam (t3vis_app/tasks), not through a page."""
    branches = {str(path.relative_to(PROJECT)): found for path in (PROJECT / "pages").glob("*.py")
                if (found := _task_branches(path))}
    assert branches == {}


MAX_MODULE_LINES = 450


def _module_name(path, root) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(folders: dict[str, object]) -> dict[str, set[str]]:
    """module -> the modules of these folders it imports (at any depth: a function's import counts too).
    ``folders``: a root to resolve names against, by the prefix its modules' names start with ("" for bench/)."""
    modules = {}
    for prefix, folder in folders.items():
        root = folder.parent if prefix else folder
        for path in folder.rglob("*.py"):
            modules[_module_name(path, root)] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for imported in _imports(path):
            candidates = [imported, imported.rsplit(".", 1)[0]]
            found |= {candidate for candidate in candidates if candidate in modules and candidate != name}
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # from package import submodule
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {f"{node.module}.{alias.name}" for alias in node.names
                          if f"{node.module}.{alias.name}" in modules and f"{node.module}.{alias.name}" != name}
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_the_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    """Package __init__ files that gather their package's names are left out: importing a package runs them, so an
    edge to them is an edge to every module they gather."""
    graph = _import_graph({"t3vis": PROJECT / "t3vis", "t3vis_app": PROJECT / "t3vis_app", "": PROJECT / "bench"})
    packages = {name for name in graph if (PROJECT / name.replace(".", "/") / "__init__.py").is_file()}
    graph = {name: edges - packages for name, edges in graph.items() if name not in packages}
    assert _cycles(graph) == []


def test_every_module_is_at_most_450_lines():
    long = {str(path.relative_to(PROJECT)): lines for folder in ("t3vis", "t3vis_app")
            for path in (PROJECT / folder).rglob("*.py")
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}
