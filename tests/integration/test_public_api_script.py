"""The README's Python examples import only the public API, and a script using only those imports trains with the
callback and opens the app on what it recorded."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from helpers import PROJECT


def _readme_imports() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (PROJECT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(("from t3vis", "import t3vis"))]


def test_the_readme_examples_import_the_public_api_without_a_warning():
    imports = _readme_imports()
    assert imports and all(line.startswith(("from t3vis import ", "import t3vis")) for line in imports), imports
    done = subprocess.run([sys.executable, "-c", CHECK_WARNINGS.format(imports="\n".join(imports))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "no warnings from t3vis", done.stdout


# Every warning is recorded; those raised by t3vis's code or by the README's own lines fail the test. Warnings that
# third-party packages raise about themselves (an old psutil's escape sequences, say, under the lowest versions)
# are not the README's business.
CHECK_WARNINGS = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    exec(compile({imports!r}, "<readme>", "exec"))
ours = [f"{{w.category.__name__}}: {{w.message}} ({{w.filename}})" for w in caught
        if issubclass(w.category, (DeprecationWarning, FutureWarning))
        and ("/t3vis/" in w.filename or w.filename == "<readme>" or "t3vis" in str(w.message))]
print("\\n".join(ours) or "no warnings from t3vis")
"""


SCRIPT = textwrap.dedent("""
    import sys, urllib.request
    import numpy as np, pandas as pd, torch
    from transformers import AutoTokenizer, AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, \\
        TrainingArguments
    from t3vis import T3visCallback, Store, load_examples, show, stop

    folder, model_dir, data = sys.argv[1:4]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = load_examples(data)
    callback = T3visCallback(f"{folder}/runs.duckdb", run_id="script", eval_examples=examples,
                             checkpoint_dir=f"{folder}/weights")
    train = [dict(tokenizer(text), labels=int(label)) for text, label in zip(examples.texts, examples.labels)]
    Trainer(model=AutoModelForSequenceClassification.from_pretrained(model_dir), processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer), train_dataset=train, callbacks=[callback],
            args=TrainingArguments(output_dir=f"{folder}/out", num_train_epochs=1, per_device_train_batch_size=8,
                                   report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)).train()
    assert callback.problems == [], callback.problems
    store = Store(f"{folder}/runs.duckdb")
    app = show(store.path)
    with urllib.request.urlopen(app.url + "/_stcore/health", timeout=10) as answer:
        assert answer.status == 200
    print("checkpoints", store.checkpoints("script").checkpoint.tolist())
    stop()
""")


def test_a_script_using_only_the_public_imports_trains_with_the_callback_and_opens_the_app(tmp_path, tiny_model_dir,
                                                                                            topic_csv):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(tiny_model_dir), str(topic_csv)],
                          capture_output=True, text=True, timeout=600, env={**__import__("os").environ,
                                                                            "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checkpoints ['epoch-1']" in done.stdout
    assert "is deprecated: it moved" not in done.stderr
