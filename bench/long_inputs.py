"""A 2,048-token example in the browser: the Instance view and a head's attention image, timed end to end.

    python bench/long_inputs.py [--model-type llama] [--repeats 3]

A random Llama-style classifier with 2,048 positions (bench/families.py's size: 4 layers x 4 heads, width
256) is saved, six validation texts of 2,048 down to 32 tokens are ingested into a store (the ingestion of
a 2,048-token example is part of what is measured), then `streamlit run` serves the app and headless
Chromium (/usr/bin/chromium) opens, each time in a fresh browser context (a new session: nothing of the
example is cached but the loaded model):

- ``instance``: the Instance page of the 2,048-token example, from navigation until its 2,048 tokens are
  drawn, coloured by LRP (the server's work: every head's pooled attention with the example's head
  importance, then LRP; then the token chart sent and drawn);
- ``attention``: on the Attention heads page at instance scale, from the click on a head of the grid until
  that head's 2,048 x 2,048 attention matrix is drawn as a pooled image (the head's matrix computed on
  demand, the image built, sent and drawn).

Medians over ``--repeats`` runs after one warm-up. Last line:
``BENCH long_inputs tokens=2048 ingest_s=... browser_instance_ms_2048=... browser_attention_ms_2048=...``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(PROJECT / "bench"))

TOKENS = 2048
LENGTHS = (TOKENS, 1024, 512, 128, 64, 32)
TOKEN_LINES = 100  # the 2,048 tokens wrap onto more lines than this in the Instance view (26 px each)

# Token chart drawn: a canvas (long texts are drawn on one) at least as tall as the text's lines, with blocks
# painted (opaque pixels on its transparent background) over its lower half, so the last lines are there too.
TOKENS_DRAWN = """(height) => {
    for (const canvas of document.querySelectorAll('[data-testid=stVegaLiteChart] canvas')) {
        if (canvas.height < height) continue;
        const lower = canvas.getContext('2d').getImageData(0, Math.floor(canvas.height / 2), canvas.width,
                                                           Math.floor(canvas.height / 2) - 80).data;
        let painted = 0;
        for (let i = 3; i < lower.length; i += 16) if (lower[i] > 0) painted++;
        if (painted > 10000) return true;
    }
    return false;
}"""
# Attention image drawn: as an SVG image element holding its data URL, or, on a canvas, the plot area painted in
# its middle (the image covers it; before, only the transparent row bands and thin grid lines are there).
IMAGE_DRAWN = """() => {
    if ([...document.querySelectorAll('[data-testid=stVegaLiteChart] g.mark-image image')]
            .some(image => (image.getAttribute('href') || '').startsWith('data:image'))) return true;
    for (const canvas of document.querySelectorAll('[data-testid=stVegaLiteChart] canvas')) {
        if (canvas.width < 400 || canvas.height < 400) continue;
        const middle = canvas.getContext('2d').getImageData(Math.floor(canvas.width / 2) - 50,
                                                            Math.floor(canvas.height / 2) - 50, 100, 100).data;
        let painted = 0;
        for (let i = 3; i < middle.length; i += 4) if (middle[i] > 200) painted++;
        if (painted > 5000) return true;
    }
    return false;
}"""


def build_store(folder: Path, model_type: str) -> tuple[Path, float]:
    """The long-input model and a store with its six examples ingested; returns (store path, ingest seconds)."""
    from transformers import AutoTokenizer

    from family_models import build, text_of
    from t3vis.data.loading import ExampleSet
    from t3vis.model.pretrained import minilm_path
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.store.database import Store

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    bundle, longest = build(model_type, folder / "model", tokenizer)
    assert longest >= TOKENS, f"{model_type} takes {longest} tokens, not {TOKENS}"
    texts = [text_of(bundle.tokenizer, length) for length in LENGTHS]
    examples = ExampleSet(example_ids=np.arange(len(texts)), texts=texts, text_pairs=None,
                          labels=np.arange(len(texts)) % 3, label_names=["a", "b", "c"],
                          extra=pd.DataFrame(index=range(len(texts))), text_columns=("text",), label_column="label",
                          source="bench")
    store = Store(folder / "long.duckdb", create=True)
    started = time.perf_counter()
    ingest_checkpoint(store, bundle, examples, run_id=model_type, checkpoint="c1", step=1, path=folder / "model",
                      config=IngestConfig(projection="pca", batch_size=2, max_length=TOKENS))
    seconds = time.perf_counter() - started
    del store  # the app opens the file on its own
    return folder / "long.duckdb", seconds


def instance_ms(browser, url: str) -> float:
    page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    started = time.perf_counter()
    page.goto(f"{url}/instance?split=validation&example=0")
    page.wait_for_function(TOKENS_DRAWN, arg=TOKEN_LINES * 26, timeout=300_000, polling=50)
    elapsed = (time.perf_counter() - started) * 1000
    page.context.close()
    return elapsed


def attention_ms(browser, url: str, head_index: int) -> float:
    from app_browser import wait_until_idle

    page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    page.goto(f"{url}/heads?split=validation&example=0&scale=instance")
    cells = page.locator("[data-testid=stVegaLiteChart]").first.locator("g.mark-rect").first.locator("path")
    cells.first.wait_for(timeout=300_000)
    wait_until_idle(page)
    started = time.perf_counter()
    cells.nth(head_index).click()
    page.wait_for_function(IMAGE_DRAWN, timeout=300_000, polling=50)
    elapsed = (time.perf_counter() - started) * 1000
    page.context.close()
    return elapsed


def browser_times(store_path: Path, repeats: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    from app_browser import CHROMIUM, CHROMIUM_FLAGS, serve_app

    with serve_app(store_path) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            instance = [instance_ms(browser, url) for _ in range(1 + repeats)][1:]  # the first loads the model
            attention = [attention_ms(browser, url, head) for head in range(1 + repeats)][1:]
        finally:
            browser.close()
    return instance, attention


def measure(model_type: str = "llama", repeats: int = 3) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store_path, ingest_s = build_store(Path(folder), model_type)
        instance, attention = browser_times(store_path, repeats)
    print(f"{model_type}: ingestion of {len(LENGTHS)} examples up to {TOKENS} tokens {ingest_s:.1f} s; "
          f"Instance page {', '.join(f'{t:.0f}' for t in instance)} ms; "
          f"head attention image {', '.join(f'{t:.0f}' for t in attention)} ms", flush=True)
    return {"ingest_s": ingest_s, "browser_instance_ms_2048": statistics.median(instance),
            "browser_attention_ms_2048": statistics.median(attention)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="llama")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = measure(args.model_type, args.repeats)
    print(f"BENCH long_inputs tokens={TOKENS} ingest_s={times['ingest_s']:.1f} "
          f"browser_instance_ms_2048={times['browser_instance_ms_2048']:.0f} "
          f"browser_attention_ms_2048={times['browser_attention_ms_2048']:.0f}")


if __name__ == "__main__":
    main()
