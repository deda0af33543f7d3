"""The built wheel carries the library, the app's layer, the page files and the entry, so that an installed t3vis
serves the app without a checkout (pyproject.toml maps pages/ onto t3vis_app/pages/)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile

import pytest

from helpers import PROJECT


def _declared_packages() -> list[str]:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_declared():
    found = {".".join(init.parent.relative_to(PROJECT).parts) for folder in ("t3vis", "t3vis_app")
             for init in (PROJECT / folder).rglob("__init__.py")}
    assert found | {"t3vis_app.pages"} == set(_declared_packages())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(out), str(PROJECT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    [path] = out.glob("t3vis-*.whl")
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def test_the_wheel_carries_the_pages_and_the_entry(wheel):
    pages = {path.name for path in (PROJECT / "pages").glob("*.py")}
    assert {name.removeprefix("t3vis_app/pages/") for name in wheel if name.startswith("t3vis_app/pages/")} == pages
    assert {"t3vis_app/entry.py", "t3vis_app/navigation.py", "t3vis_app/sidebar.py",
            "t3vis_app/tasks/classification.py", "t3vis/store/schema.sql", "t3vis/charts/point_raster.py"} <= wheel
    from t3vis_app.navigation import PAGES

    assert {f"{stem}.py" for stem, _, _ in PAGES} == pages  # the navigation lists every page file


def test_the_wheel_holds_every_module_of_the_checkout(wheel):
    modules = {str(path.relative_to(PROJECT)) for folder in ("t3vis", "t3vis_app")
               for path in (PROJECT / folder).rglob("*.py")}
    assert modules <= wheel
