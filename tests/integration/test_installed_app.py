"""An installed t3vis, outside the checkout: the built wheel goes into a fresh virtual environment whose torch is
already installed, keeps that torch, and ``t3vis app --store ...`` serves every page from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_browser import CHROMIUM, CHROMIUM_FLAGS, free_port
from helpers import PROJECT
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

pytestmark = pytest.mark.slow
TORCH = "torch==2.13.0"  # the CPU build on this machine's disk (a CUDA build elsewhere would be several GB)


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a fresh venv with torch, then the t3vis wheel installed; pip's output of that install)."""
    folder = tmp_path_factory.mktemp("installed")
    wheels = folder / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(PROJECT)], timeout=600)
    [wheel] = wheels.glob("t3vis-*.whl")
    _run([sys.executable, "-m", "venv", str(folder / "venv")], timeout=300)
    bin_folder = folder / "venv" / "bin"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([str(bin_folder / "pip"), "install", "-q", TORCH], env=env, timeout=900)
    torch_before = _run([str(bin_folder / "python"), "-c", "import torch; print(torch.__version__, torch.__file__)"],
                        env=env, timeout=120).stdout
    installing = _run([str(bin_folder / "pip"), "install", str(wheel)], env=env, timeout=1800)
    torch_after = _run([str(bin_folder / "python"), "-c", "import torch; print(torch.__version__, torch.__file__)"],
                       env=env, timeout=120).stdout
    return bin_folder, env, installing.stdout, torch_before, torch_after


def test_installing_the_wheel_keeps_the_torch_that_is_there(installed):
    _, _, output, before, after = installed
    assert before == after and before.startswith("2.13.0")
    touched = [line for line in output.splitlines() if "torch" in line.lower()
               and line.startswith(("Collecting", "Downloading", "Installing", "Attempting uninstall"))]
    assert touched == [], touched
    assert "Requirement already satisfied: torch" in output


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)")
def test_t3vis_app_serves_every_page_from_another_folder(installed, tmp_path):
    from playwright.sync_api import sync_playwright

    bin_folder, env, _, _, _ = installed
    store = build_synthetic_store(tmp_path / "runs.duckdb", SyntheticConfig(n_examples=40, n_train=30,
                                                                           num_layers=2, num_heads=2)).path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    server = subprocess.Popen([str(bin_folder / "t3vis"), "app", "--store", str(store), "--port", str(port),
                               "--address", "127.0.0.1"], cwd=elsewhere, env={**env, "HF_HUB_OFFLINE": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "t3vis app did not start"
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, title in (("", "Projection"), ("heads", "Attention heads"), ("instance", "Instance"),
                                ("training", "Training"), ("sql", "SQL"), ("overview", "Runs")):
                page.goto(f"{url}/{path}")
                page.get_by_role("heading", name=title).first.wait_for(timeout=90_000)
                assert page.locator("[data-testid=stException]").count() == 0, path
            browser.close()
    finally:
        server.terminate()
        server.wait(20)
    try:  # stopping `t3vis app` stops the server itself: it replaced the command's process, no orphan serves on
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
        answered = True
    except OSError:
        answered = False
    assert not answered, "the app server outlived `t3vis app`"
    assert not (elsewhere / "store").exists()  # it opened the store given; it made nothing in the folder
