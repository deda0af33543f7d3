"""The files Streamlit Community Cloud reads agree with the project (see the README's deployment section)."""

from __future__ import annotations

import re

import pytest

from helpers import PROJECT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

# Community Cloud installs from the first of these it finds; requirements.txt must come first in this repository.
PREFERRED_OVER_REQUIREMENTS = ("uv.lock", "Pipfile", "environment.yml")


def _pyproject() -> dict:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_requirements_install_the_project_with_the_pinned_cpu_torch():
    """requirements.txt pins torch's CPU build: the version the Makefile and CI install, within the range
    pyproject.toml declares (a library's range, so that t3vis installs beside the torch a user has)."""
    lines = [line.strip() for line in (PROJECT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert "-e ." in lines  # the project, with every dependency pyproject.toml declares
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    [pinned] = [match.group(1) for line in lines if (match := re.fullmatch(r"torch==([\d.]+)\+cpu", line))]
    [floor] = [re.fullmatch(r"torch>=([\d.]+)", dep).group(1) for dep in _pyproject()["project"]["dependencies"]
               if dep.startswith("torch")]
    assert _version(pinned) >= _version(floor)
    assert f"torch=={pinned}" in (PROJECT / "Makefile").read_text()
    assert (PROJECT / ".ci" / "torch-override.txt").read_text().strip() == f"torch=={pinned}"


def test_every_runtime_dependency_is_a_range_with_a_floor():
    for dependency in _pyproject()["project"]["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+>=[\d.]+(,<[\d.]+)?", dependency), dependency


def test_no_dependency_file_that_the_platform_would_read_instead():
    assert not [name for name in PREFERRED_OVER_REQUIREMENTS if (PROJECT / name).exists()]


def test_the_config_file_parses_and_the_entry_point_is_at_the_root():
    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
    assert (PROJECT / "streamlit_app.py").is_file()
