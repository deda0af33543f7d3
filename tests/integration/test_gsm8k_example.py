"""examples/gsm8k_smollm2.py, as a user runs it, on a tiny random Llama (SmolLM2 itself in bench/generation.py): both
trainers record a store that every page of the app opens."""

from __future__ import annotations

import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from helpers import PROJECT, SHARED_DATA
from page_helpers import open_page
from t3vis.fixtures.tiny_models import save_tiny_language_model
from t3vis.model.pretrained import minilm_path
from t3vis.store.database import Store

GSM8K = SHARED_DATA / "gsm8k_train.jsonl"
pytestmark = pytest.mark.skipif(not GSM8K.exists(), reason=f"{GSM8K} is not here (the shared GSM8K data)")
PAGES = ["projection", "heads", "instance", "training", "sql", "overview"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.eos_token = "[SEP]"  # TRL ends each completion with the tokenizer's EOS
    return save_tiny_language_model(tmp_path_factory.mktemp("lm") / "tiny-llama", "llama", tokenizer=tokenizer)


@pytest.mark.parametrize("trainer", ["transformers", "trl"])
def test_the_example_records_a_run_that_every_page_opens(tmp_path, tiny_lm, trainer):
    if trainer == "trl":
        pytest.importorskip("trl", reason="TRL is the optional extra t3vis[trl]")
    store_path = tmp_path / "gsm8k.duckdb"
    done = subprocess.run(
        [sys.executable, str(PROJECT / "examples" / "gsm8k_smollm2.py"), "--model", str(tiny_lm), "--trainer", trainer,
         "--train-examples", "8", "--eval-examples", "4", "--epochs", "1", "--max-length", "96",
         "--max-new-tokens", "4", "--store", str(store_path), "--run", f"tiny-{trainer}",
         "--train", str(GSM8K), "--evaluation", str(SHARED_DATA / "gsm8k_test.jsonl")],
        capture_output=True, text=True, timeout=900, cwd=PROJECT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "streamlit run streamlit_app.py" in done.stdout
    store = Store(store_path)
    assert store.run(f"tiny-{trainer}").task == "generation"
    assert "not recorded" not in done.stdout, done.stdout
    # every training pair the trainer trained on has its text and its Data Map point (TRL drops a pair whose prompt
    # fills --max-length alone, and the example leaves it out of train_examples too)
    trained = store.scalar("SELECT count(*) FROM examples WHERE split = 'train'")
    assert (trained == 8 if trainer == "transformers" else 6 <= trained <= 8)
    assert store.scalar("SELECT count(*) FROM data_map") == trained
    assert store.scalar("SELECT count(*) FROM generations") == 4
    example = int(store.scalar("SELECT min(example_id) FROM generations"))
    for page in PAGES:
        app = open_page(str(PROJECT / "pages" / f"{page}.py"), store_path, split="validation", example_id=example)
        assert not app.exception, (page, app.exception)
