"""t3vis on a CUDA GPU: every path that moves tensors, run on the device and compared with the CPU.

    python bench/gpu_check.py [--device cuda] [--families bert,gpt2,...] [--json results.json]

Tiny random models built from configs (:mod:`t3vis.fixtures.tiny_models`, no download) are run on ``--device``
(default: cuda) and, where a result can be compared, also on the CPU:

- loading each family's classifier on the device (``load_model(device=...)``);
- ``t3vis ingest --device`` (the CLI, BERT, t-SNE) and ``ingest_files`` (the other families) into temporary
  DuckDB stores, the stored predictions, head importance and attention patterns compared with a CPU ingest;
- ``t3vis ingest --task extractive-summarization / token-classification --device``, compared with the CPU;
- ``transformers.Trainer`` runs with :class:`T3visCallback` on the device: a BERT classifier (also in bf16
  mixed precision, and fp16 on CUDA), a LoRA adapter (peft), a BertSum summarizer and a token classifier; any recording
  problem the callback reports fails the step, with the traceback of its cause;
- every attribution method of ``t3vis.attribution.METHODS`` on each family, the summarizer and the tagger, with
  and without pruned heads, compared with the CPU; LRP's conservation on bias-free copies;
- head importance and attention maps (``t3vis.analysis``: instance heads, attention on demand, document and
  sentence views, evaluation with pruned heads), compared with the CPU;
- a one-process ``torchrun`` launch of ``t3vis ingest`` (``launched_process_group`` on the device).

Each step prints PASS or FAIL (with the traceback) and the run goes on. Last line:
``BENCH gpu_check passed=N failed=M``. On a machine without CUDA, ``--device cpu`` runs the same steps (the
comparisons are then CPU against CPU), to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import write_topic_csv  # noqa: E402  (the tests' 15 topic sentences)
FAMILIES = ("bert", "distilbert", "roberta", "electra", "modernbert", "deberta-v2", "gpt2", "llama", "qwen2",
            "qwen3", "mistral")
TEXT = "the striker scored twice and the fans cheered as the team won the final match"
PAIR = "the coach praised the defence"
SENTENCES = ["The council met on Monday.", "It approved the new budget after a long debate.",
             "Critics called it reckless.", "The vote was close."]
WORDS = ["Peter", "Blackburn", "visited", "Grzegorzewski", "on", "Monday", "."]
NEWS_CSV = ('id,article,highlights\n'
            'a1,"The council met on Monday. It approved the new budget. Critics called it reckless. '
            'The vote was close.","The council approved the budget ."\n'
            'b2,"Rain is expected tomorrow. Rivers may flood. Residents should prepare sandbags.",'
            '"Rivers may flood .\\nResidents should prepare ."\n')
CONLL = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n"
         "to TO B-VP O\nboycott VB I-VP O\nBritish JJ B-NP B-MISC\nlamb NN I-NP O\n. . O O\n\n"
         "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\nBRUSSELS NNP B-NP B-LOC\n1996-08-22 CD I-NP O\n")

RESULTS: list[dict] = []


def run_step(name: str, function, *args, **kwargs):
    """Run one step; print and record PASS/FAIL with the traceback; never raise. Returns the step's value."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            value = function(*args, **kwargs)
    except Exception:  # every failure is reported, and the next step runs
        error = traceback.format_exc()
        RESULTS.append({"step": name, "ok": False, "seconds": time.perf_counter() - start, "error": error})
        print(f"FAIL {name} ({time.perf_counter() - start:.1f}s)\n{error}", flush=True)
        return None
    RESULTS.append({"step": name, "ok": True, "seconds": time.perf_counter() - start})
    print(f"PASS {name} ({time.perf_counter() - start:.1f}s)", flush=True)
    return value


def close(actual, expected, what: str, *, rtol: float = 1e-3, atol: float = 1e-4, scale: float = 0.0) -> None:
    """``actual`` equals ``expected`` within ``rtol`` and ``atol`` times the larger of ``scale`` and the largest
    |expected| (attributions: the explained logit, whose float32 rounding bounds how exact near-zero scores are)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != {expected.shape}")
    scale = max(float(np.abs(expected).max(initial=0.0)), abs(scale), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def on_device(model: torch.nn.Module, device: str) -> None:
    found = {parameter.device.type for parameter in model.parameters()}
    if found != {torch.device(device).type}:
        raise AssertionError(f"the model's parameters are on {found}, not {device}")


def check_numpy(value, what: str) -> None:
    """Results handed to the app are numpy arrays (never tensors), finite."""
    if isinstance(value, torch.Tensor):
        raise AssertionError(f"{what} is a torch tensor on {value.device}, not a numpy array")
    array = np.asarray(value)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise AssertionError(f"{what} has non-finite values")


class Context:
    """Folders, data files and models shared by the steps."""

    def __init__(self, device: str, folder: Path, families: tuple[str, ...]):
        self.device, self.folder, self.families = device, folder, families
        self.models: dict[str, Path] = {}
        self.bundles: dict[tuple[str, str], object] = {}

    def bundle(self, key: str, device: str):
        return self.bundles[(key, device)]


# -- setup ---------------------------------------------------------------------------------------------------------


def environment(ctx: Context) -> None:
    import transformers

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"cuda available {torch.cuda.is_available()}", flush=True)
    if ctx.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AssertionError("CUDA is not available")
        print(f"device {torch.cuda.get_device_name(0)}, tf32 matmul {torch.backends.cuda.matmul.allow_tf32}",
              flush=True)
    for name in ("duckdb", "captum", "openTSNE", "pysbd", "rouge_score", "seqeval", "peft", "accelerate"):
        module = __import__(name)
        print(f"  {name} {getattr(module, '__version__', '?')}", flush=True)


def build_models(ctx: Context) -> None:
    from t3vis.data.loading import load_examples
    from t3vis.fixtures.tiny_models import save_tiny_model, save_tiny_summarizer, save_tiny_tagger

    for family in ctx.families:
        ctx.models[family] = save_tiny_model(ctx.folder / "models" / family, family, num_labels=3)
    ctx.models["summarizer"] = save_tiny_summarizer(ctx.folder / "models" / "summarizer")
    ctx.conll = ctx.folder / "sample.conll"
    ctx.conll.write_text(CONLL)
    from t3vis.data.tagging import load_tagged

    ctx.tags = load_tagged(ctx.conll).tag_names
    ctx.models["tagger"] = save_tiny_tagger(ctx.folder / "models" / "tagger", ctx.tags)
    ctx.topics = ctx.folder / "topics.csv"
    write_topic_csv(ctx.topics)
    ctx.examples = load_examples(ctx.topics)
    ctx.news = ctx.folder / "news.csv"
    ctx.news.write_text(NEWS_CSV)


def load_family(ctx: Context, family: str) -> None:
    from t3vis.model.access import load_model

    for device in dict.fromkeys((ctx.device, "cpu")):
        bundle = load_model(ctx.models[family], device=device)
        on_device(bundle.model, device)
        if bundle.device.type != torch.device(device).type:
            raise AssertionError(f"bundle.device is {bundle.device}, not {device}")
        ctx.bundles[(family, device)] = bundle
    if family == "bert":  # no device given: CUDA when available, as `t3vis ingest` without --device
        default = load_model(ctx.models[family]).device.type
        if default != ("cuda" if torch.cuda.is_available() else "cpu"):
            raise AssertionError(f"load_model without a device put the model on {default}")


def load_tasks(ctx: Context) -> None:
    from t3vis.model.access import load_model
    from t3vis.model.summarizer_loading import load_summarizer

    for device in dict.fromkeys((ctx.device, "cpu")):
        ctx.bundles[("summarizer", device)] = load_summarizer(ctx.models["summarizer"], device=device)
        ctx.bundles[("tagger", device)] = load_model(ctx.models["tagger"], device=device, task="token-classification")
        for key in ("summarizer", "tagger"):
            on_device(ctx.bundles[(key, device)].model, device)


def bias_free(bundle):
    """A bias-free copy (biases zeroed, LayerNorm weights in [0.5, 1.5]): LRP conserves the logit exactly."""
    import copy
    from dataclasses import replace

    model = copy.deepcopy(bundle.model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm) and module.weight is not None:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
    return replace(bundle, model=model)


# -- ingestion -----------------------------------------------------------------------------------------------------


def _stored(store_path: Path) -> dict:
    from t3vis.store.database import Store

    store = Store(store_path)
    out = {}
    predictions = store.query("SELECT example_id, logits, probs FROM predictions ORDER BY example_id")
    out["logits"] = np.stack(predictions.logits)
    out["probs"] = np.stack(predictions.probs)
    out["importance"] = store.query("SELECT importance FROM head_importance ORDER BY layer, head").importance
    out["patterns"] = [np.asarray(p) for p in
                       store.query("SELECT pattern FROM attention_patterns ORDER BY layer, head").pattern]
    out["n_projections"] = store.scalar("SELECT count(*) FROM projections")
    return out


def _compare_stores(device_path: Path, cpu_path: Path, what: str) -> None:
    mine, reference = _stored(device_path), _stored(cpu_path)
    close(mine["logits"], reference["logits"], f"{what}: stored logits")
    close(mine["probs"], reference["probs"], f"{what}: stored probs")
    close(mine["importance"], reference["importance"], f"{what}: stored head importance", rtol=2e-3, atol=1e-3)
    close(np.concatenate(mine["patterns"]), np.concatenate(reference["patterns"]), f"{what}: attention patterns")
    if mine["n_projections"] != reference["n_projections"] or not mine["n_projections"]:
        raise AssertionError(f"{what}: {mine['n_projections']} projections, CPU {reference['n_projections']}")


def cli_ingest_bert(ctx: Context) -> None:
    """``t3vis ingest --device`` as the command line runs it (t-SNE, the default projection), and on the CPU."""
    from t3vis.cli import run

    paths = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        paths[device] = ctx.folder / "stores" / f"cli-bert-{device.replace(':', '')}.duckdb"
        code = run(["ingest", "--model", str(ctx.models["bert"]), "--data", str(ctx.topics), "--store",
                    str(paths[device]), "--device", device, "--quiet", "--importance-examples", "-1"])
        if code != 0:
            raise AssertionError(f"t3vis ingest --device {device} exited {code}")
    _compare_stores(paths[ctx.device], paths["cpu"], "t3vis ingest")


def ingest_family(ctx: Context, family: str) -> None:
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.record.ingest_files import DataSource, ModelSource, ingest_files
    from t3vis.store.database import Store

    paths = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        paths[device] = ctx.folder / "stores" / f"{family}-{device.replace(':', '')}.duckdb"
        done = ingest_files(Store(paths[device], create=True), ModelSource(ctx.models[family], device=device),
                            DataSource(ctx.topics),
                            config=IngestConfig(projection="pca", batch_size=4, importance_examples=-1))
        if done is None or done.summary.n_examples != len(ctx.examples):
            raise AssertionError(f"ingest_files on {device}: {done}")
    _compare_stores(paths[ctx.device], paths["cpu"], f"ingest_files {family}")


def cli_ingest_task(ctx: Context, task: str) -> None:
    from t3vis.cli import run
    from t3vis.store.database import Store

    model, data = (ctx.models["summarizer"], ctx.news) if task == "extractive-summarization" else \
        (ctx.models["tagger"], ctx.conll)
    tables = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        path = ctx.folder / "stores" / f"{task}-{device.replace(':', '')}.duckdb"
        code = run(["ingest", "--task", task, "--model", str(model), "--data", str(data), "--store", str(path),
                    "--device", device, "--projection", "pca", "--quiet"])
        if code != 0:
            raise AssertionError(f"t3vis ingest --task {task} --device {device} exited {code}")
        store = Store(path)
        tables[device] = (
            store.query("SELECT example_id, unit, score, prob, gold_prob FROM unit_predictions "
                        "ORDER BY example_id, unit"),
            store.query("SELECT importance FROM head_importance ORDER BY layer, head").importance.to_numpy(),
        )
    (mine, mine_importance), (reference, reference_importance) = tables[ctx.device], tables["cpu"]
    if len(mine) == 0 or mine.unit.tolist() != reference.unit.tolist():
        raise AssertionError(f"{task}: {len(mine)} unit predictions, CPU {len(reference)}")
    for column in ("score", "prob", "gold_prob"):
        close(mine[column].to_numpy(), reference[column].to_numpy(), f"{task}: unit_predictions.{column}")
    close(mine_importance, reference_importance, f"{task}: head importance", rtol=2e-3, atol=1e-3)


def torchrun_ingest(ctx: Context) -> None:
    """``torchrun --nproc_per_node=1 -m t3vis.cli ingest``: the launched process group on the device."""
    path = ctx.folder / "stores" / "torchrun.duckdb"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_port=29531", "-m",
               "t3vis.cli", "ingest", "--model", str(ctx.models["bert"]), "--data", str(ctx.topics), "--store",
               str(path), "--run-id", "launched", "--device", ctx.device, "--projection", "pca", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise AssertionError(f"torchrun exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    from t3vis.store.database import Store

    n = Store(path).scalar("SELECT count(*) FROM predictions")
    if n != len(ctx.examples):
        raise AssertionError(f"{n} predictions after the launch")


# -- training with the callback ------------------------------------------------------------------------------------


def _tracing_callback(*args, **kwargs):
    """A T3visCallback that keeps the traceback of each problem it reports (problems are warnings otherwise)."""
    from t3vis.record.callback import T3visCallback

    class Tracing(T3visCallback):
        def _problem(self, message: str) -> None:
            self.tracebacks.append(traceback.format_exc() if sys.exc_info()[0] is not None else "")
            super()._problem(message)

    callback = Tracing(*args, **kwargs)
    callback.tracebacks = []
    return callback


def _train(trainer, callback, model, device: str) -> None:
    from t3vis.store.background_writer import RecordingWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecordingWarning)
        trainer.train()
        callback.flush(120)
    recording = [str(w.message) for w in caught if issubclass(w.category, RecordingWarning)]
    if callback.problems or recording:
        causes = "\n".join(t for t in callback.tracebacks if t)
        raise AssertionError(f"recording problems: {callback.problems or recording}\n{causes}")
    on_device(model, device)


def _training_args(ctx: Context, name: str, **overrides):
    from transformers import TrainingArguments

    values = dict(output_dir=str(ctx.folder / "trainer" / name), num_train_epochs=2, per_device_train_batch_size=4,
                  learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no", seed=0,
                  use_cpu=ctx.device == "cpu", disable_tqdm=True)
    values.update(overrides)
    return TrainingArguments(**values)


def train_classifier(ctx: Context, *, precision: str = "fp32") -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    from t3vis.model.access import load_model
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.store.database import Store

    name = "bert" if precision == "fp32" else f"bert-{precision}"
    mixed = {precision: True} if precision in ("bf16", "fp16") else {}
    tokenizer = AutoTokenizer.from_pretrained(ctx.models["bert"])
    model = AutoModelForSequenceClassification.from_pretrained(ctx.models["bert"])
    examples = ctx.examples
    store = Store(ctx.folder / "stores" / f"train-{name}.duckdb", create=True)
    callback = _tracing_callback(store, run_id=name, eval_examples=examples, train_examples=examples,
                                 checkpoint_dir=ctx.folder / "weights" / name,
                                 ingest_config=IngestConfig(projection="pca", importance_examples=8, batch_size=4))
    train = [dict(tokenizer(text), labels=int(label)) for text, label in zip(examples.texts, examples.labels)]
    trainer = Trainer(model=model, args=_training_args(ctx, name, **mixed), train_dataset=train,
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    _train(trainer, callback, model, ctx.device)
    n = len(examples)
    counts = {table: store.scalar(f"SELECT count(*) FROM {table}") for table in
              ("training_dynamics", "predictions", "head_importance", "attention_patterns")}
    if counts["training_dynamics"] != 2 * n or counts["predictions"] != 2 * n or not counts["head_importance"]:
        raise AssertionError(f"rows written: {counts}")
    dynamics = store.query("SELECT gold_prob FROM training_dynamics").gold_prob.to_numpy()
    if not np.isfinite(dynamics).all():
        raise AssertionError("non-finite gold probabilities in the training dynamics")
    # The stored logits of the last checkpoint are the saved weights' own in full precision, also after a
    # mixed-precision run (whose autocast would change them by ~1e-4, bf16's rounding).
    bundle = load_model(ctx.folder / "weights" / name / "epoch-2", device="cpu")
    inputs = dict(bundle.tokenizer(list(examples.texts), padding=True, return_tensors="pt"))
    with torch.no_grad():
        expected = bundle.model(**inputs).logits.numpy()
    stored = store.query("SELECT logits FROM predictions WHERE checkpoint = 'epoch-2' ORDER BY example_id")
    close(np.stack(stored.logits), expected, "the callback's stored logits vs the saved weights on CPU",
          rtol=1e-4, atol=1e-4)


def train_lora(ctx: Context) -> None:
    import peft
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    from t3vis.attribution import METHODS, prepare
    from t3vis.model.access import load_model
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.record.ingest import ingest_checkpoint
    from t3vis.store.database import Store

    tokenizer = AutoTokenizer.from_pretrained(ctx.models["bert"])
    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained(ctx.models["bert"]),
                                peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"],
                                                init_lora_weights=False))
    store = Store(ctx.folder / "stores" / "lora.duckdb", create=True)
    callback = _tracing_callback(store, run_id="lora", eval_examples=ctx.examples, checkpoint_dir=ctx.folder / "lora",
                                 label_names=list(ctx.examples.label_names),
                                 ingest_config=IngestConfig(projection="pca", batch_size=4))
    train = [dict(tokenizer(text), labels=int(label)) for text, label in zip(ctx.examples.texts, ctx.examples.labels)]
    trainer = Trainer(model=model, args=_training_args(ctx, "lora"), train_dataset=train,
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    _train(trainer, callback, model, ctx.device)
    folder = ctx.folder / "lora" / "epoch-2"
    results = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        bundle = load_model(folder, device=device)
        on_device(bundle.model, device)
        ingest_checkpoint(store, bundle, ctx.examples, run_id=f"lora-{device.replace(':', '')}", checkpoint="epoch-2",
                          step=2, path=folder, config=IngestConfig(projection="pca", batch_size=4))
        results[device] = METHODS["lrp"].attribute(bundle, prepare(bundle, TEXT), None)
    probs = {device: np.stack(store.query(f"SELECT probs FROM predictions WHERE run_id = 'lora-{device.replace(':', '')}' "
                                          "ORDER BY example_id").probs) for device in results}
    close(probs[ctx.device], probs["cpu"], "LoRA ingest: stored probabilities")
    close(results[ctx.device].scores, results["cpu"].scores, "LoRA LRP scores")


def train_summarizer(ctx: Context) -> None:
    from transformers import AutoTokenizer, Trainer

    from t3vis.fixtures.summarization_store import synthetic_documents
    from t3vis.fixtures.tiny_models import tiny_config
    from t3vis.model.summarizer import ExtractiveSummarizer, ExtractiveSummarizerConfig
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.record.trainer_data import SummarizationCollator, SummarizationDataset
    from t3vis.store.database import Store

    tokenizer = AutoTokenizer.from_pretrained(ctx.models["bert"])
    train, evaluation = synthetic_documents(12, seed=1), synthetic_documents(6, seed=2, first_id=1000)
    torch.manual_seed(0)
    model = ExtractiveSummarizer(ExtractiveSummarizerConfig(encoder=tiny_config("bert").to_dict()))
    store = Store(ctx.folder / "stores" / "train-summarizer.duckdb", create=True)
    callback = _tracing_callback(store, run_id="bertsum", eval_examples=evaluation, train_examples=train,
                                 checkpoint_dir=ctx.folder / "weights" / "summarizer",
                                 ingest_config=IngestConfig(projection="pca", importance_examples=4, batch_size=4))
    trainer = Trainer(model=model, args=_training_args(ctx, "summarizer"),
                      train_dataset=SummarizationDataset(train, tokenizer, max_length=128),
                      data_collator=SummarizationCollator(tokenizer), processing_class=tokenizer, callbacks=[callback])
    _train(trainer, callback, model, ctx.device)
    kept = sum(document.n_kept for document in SummarizationDataset(train, tokenizer, max_length=128).encoded)
    if store.scalar("SELECT count(*) FROM training_dynamics") != 2 * kept:
        raise AssertionError("the summarizer's per-sentence dynamics are incomplete")
    if store.scalar("SELECT count(DISTINCT checkpoint) FROM document_scores") != 2:
        raise AssertionError("the summarizer's checkpoints were not both scored")


def train_tagger(ctx: Context) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer

    from t3vis.fixtures.tagging_store import TAGS, synthetic_sentences
    from t3vis.fixtures.tiny_models import tiny_config
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.record.trainer_data import TaggingDataset
    from t3vis.store.database import Store

    tokenizer = AutoTokenizer.from_pretrained(ctx.models["bert"])
    train, evaluation = synthetic_sentences(16, seed=1), synthetic_sentences(8, seed=2, first_id=1000)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(tiny_config(
        "bert", num_labels=len(TAGS), id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)}))
    store = Store(ctx.folder / "stores" / "train-tagger.duckdb", create=True)
    callback = _tracing_callback(store, run_id="ner", eval_examples=evaluation, train_examples=train,
                                 checkpoint_dir=ctx.folder / "weights" / "tagger",
                                 ingest_config=IngestConfig(projection="pca", importance_examples=8, batch_size=8))
    trainer = Trainer(model=model, args=_training_args(ctx, "tagger", per_device_train_batch_size=8),
                      train_dataset=TaggingDataset(train, tokenizer, max_length=64),
                      data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    _train(trainer, callback, model, ctx.device)
    words = sum(len(w) for w in train.words)
    if store.scalar("SELECT count(*) FROM training_dynamics") != 2 * words:
        raise AssertionError("the tagger's per-word dynamics are incomplete")


# -- attribution ---------------------------------------------------------------------------------------------------


def attribution_family(ctx: Context, family: str) -> None:
    from t3vis.attribution import METHODS, prepare

    results = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        bundle = ctx.bundle(family, device)
        example = prepare(bundle, TEXT)
        if any(value.device.type != torch.device(device).type for value in example.inputs.values()):
            raise AssertionError(f"prepare() put inputs on {[v.device for v in example.inputs.values()]}")
        for name, method in METHODS.items():
            for target, pruned in ((None, ()), (1, [(0, 1), (1, 2)])):
                result = method.attribute(bundle, example, target, pruned=pruned)
                for field in ("scores", "probs"):
                    check_numpy(getattr(result, field), f"{name}.{field}")
                results[(device, name, target)] = result
    for (device, name, target), result in results.items():
        if device == "cpu":
            continue
        reference = results[("cpu", name, target)]
        if result.target != reference.target:
            raise AssertionError(f"{name}: explained class {result.target} on {device}, {reference.target} on CPU")
        # Input×Gradient of a model whose embedding LayerNorm sees the word embeddings alone (DeBERTa-v3,
        # ModernBERT) is zero up to rounding (the LayerNorm is scale-invariant): compare at the logit's scale.
        close(result.scores, reference.scores, f"{family} {name} target={target}: scores", scale=reference.logit)
        close(result.probs, reference.probs, f"{family} {name} target={target}: probs")
        close(result.logit, reference.logit, f"{family} {name} target={target}: logit")


def lrp_conservation(ctx: Context, family: str) -> None:
    from t3vis.attribution import METHODS, prepare

    bundle = bias_free(ctx.bundle(family, ctx.device))
    example = prepare(bundle, TEXT, PAIR if family == "bert" else None)
    worst = 0.0
    for target in range(len(bundle.label_names)):
        for pruned in ((), [(0, 1), (1, 2)]):
            result = METHODS["lrp"].attribute(bundle, example, target, pruned=pruned)
            worst = max(worst, abs(result.total - result.logit) / max(abs(result.logit), 1e-6))
    if worst > 1e-3:
        raise AssertionError(f"LRP on the bias-free {family} loses {worst:.2e} of the logit")


def attribution_tasks(ctx: Context) -> None:
    from t3vis.attribution import METHODS
    from t3vis.attribution.base import prepare_document, prepare_words, word_target

    results = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        summarizer, tagger = ctx.bundle("summarizer", device), ctx.bundle("tagger", device)
        document = prepare_document(summarizer, SENTENCES)
        words = prepare_words(tagger, WORDS)
        for name, method in METHODS.items():
            results[(device, name, "summarizer")] = method.attribute(summarizer, document, 1, pruned=[(0, 1)])
            results[(device, name, "tagger")] = method.attribute(tagger, words, word_target(tagger, words, 3, 1))
    for (device, name, key), result in results.items():
        if device != "cpu":
            reference = results[("cpu", name, key)]
            close(result.scores, reference.scores, f"{key} {name}: scores", scale=reference.logit)
            close(result.probs, reference.probs, f"{key} {name}: probs")
    for key in ("summarizer", "tagger"):  # conservation on bias-free copies, on the device
        bundle = bias_free(ctx.bundle(key, ctx.device))
        example = prepare_document(bundle, SENTENCES) if key == "summarizer" else prepare_words(bundle, WORDS)
        target = 2 if key == "summarizer" else word_target(bundle, example, 3, 1)
        result = METHODS["lrp"].attribute(bundle, example, target)
        if abs(result.total - result.logit) > 1e-3 * max(abs(result.logit), 1e-3):
            raise AssertionError(f"LRP on the bias-free {key}: total {result.total} != logit {result.logit}")


# -- head importance and attention maps ----------------------------------------------------------------------------


def heads_family(ctx: Context, family: str) -> None:
    from t3vis.analysis.attention_maps import head_attention
    from t3vis.analysis.evaluation import evaluate
    from t3vis.analysis.instance_heads import instance_heads, instance_outputs, instance_pattern_frame
    from t3vis.model.heads import encode_one, head_mask
    from t3vis.record.ingest import IngestConfig, sample_importance

    pruned = [(0, 1), (1, 3)]
    found = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        bundle = ctx.bundle(family, device)
        heads = instance_heads(bundle, TEXT, label=1, pruned=pruned)
        for field in ("logits", "probs", "importance"):
            check_numpy(getattr(heads, field), f"instance_heads.{field}")
        instance_pattern_frame(heads.attentions)
        outputs = instance_outputs(bundle, TEXT, pruned=pruned)
        on_demand = outputs.attentions.head(1, 2)  # computed now, by its own forward pass
        inputs, _, _ = encode_one(bundle, TEXT)
        direct = head_attention(bundle, inputs, 0, 3, head_mask=head_mask(pruned, bundle.num_layers,
                                                                           bundle.num_heads).to(bundle.device))
        check_numpy(on_demand, "attention on demand")
        evaluation = evaluate(bundle, ctx.examples, pruned=pruned, batch_size=4)
        importance, count = sample_importance(bundle, ctx.examples, IngestConfig(importance_examples=8, batch_size=4))
        check_numpy(importance, "sample_importance")
        found[device] = dict(importance=heads.importance, logits=heads.logits, patterns=heads.attentions.patterns,
                             full=heads.attentions.head(0, 0), outputs=outputs.probs, on_demand=on_demand,
                             direct=direct, accuracy=evaluation.accuracy, loss=evaluation.loss,
                             sampled=importance)
    if ctx.device != "cpu":
        mine, reference = found[ctx.device], found["cpu"]
        for key in ("logits", "patterns", "full", "outputs", "on_demand", "direct", "loss"):
            close(mine[key], reference[key], f"{family} {key}")
        for key in ("importance", "sampled"):
            close(mine[key], reference[key], f"{family} {key}", rtol=2e-3, atol=1e-3)
        if mine["accuracy"] != reference["accuracy"]:
            raise AssertionError(f"accuracy {mine['accuracy']} on the device, {reference['accuracy']} on CPU")


def heads_tasks(ctx: Context) -> None:
    from t3vis.analysis.document_view import document_attentions, word_attentions
    from t3vis.analysis.evaluation import evaluate_summaries, evaluate_tagging
    from t3vis.analysis.instance_heads import document_heads, sentence_heads
    from t3vis.attribution.base import prepare_document, prepare_words
    from t3vis.data.documents import make_documents
    from t3vis.data.tagging import load_tagged

    documents = make_documents([" ".join(SENTENCES), "Rain is expected tomorrow. Rivers may flood."],
                               ["The council approved the budget .", "Rivers may flood ."])
    sentences = load_tagged(ctx.conll)
    found = {}
    for device in dict.fromkeys((ctx.device, "cpu")):
        summarizer, tagger = ctx.bundle("summarizer", device), ctx.bundle("tagger", device)
        doc = document_heads(summarizer, SENTENCES, np.array([0, 1, 0, 0]), pruned=[(0, 1)])
        sent = sentence_heads(tagger, WORDS, np.array([5, 6, 0, 1, 0, 0, 0]) % len(ctx.tags), pruned=[(1, 0)])
        doc_att, doc_probs = document_attentions(summarizer, prepare_document(summarizer, SENTENCES), [(0, 1)])
        word_att, word_probs = word_attentions(tagger, prepare_words(tagger, WORDS), [(1, 0)])
        summaries = evaluate_summaries(summarizer, documents, pruned=[(0, 1)])
        tagging = evaluate_tagging(tagger, sentences, pruned=[(1, 0)])
        for name, value in (("document importance", doc.importance), ("sentence importance", sent.importance),
                            ("document attentions", doc_att), ("word attentions", word_att)):
            check_numpy(value, name)
        found[device] = dict(doc_importance=doc.importance, doc_probs=doc.probs, doc_head=doc.attentions.head(1, 1),
                             sent_importance=sent.importance, sent_probs=sent.probs, doc_att=doc_att,
                             doc_att_probs=doc_probs, word_att=word_att, word_probs=word_probs,
                             rouge=summaries.rouge1, summary_loss=summaries.loss,
                             tag_loss=getattr(tagging, "loss", 0.0))
    if ctx.device != "cpu":
        for key, value in found[ctx.device].items():
            loose = key.endswith("importance")
            close(value, found["cpu"][key], key, rtol=2e-3 if loose else 1e-3, atol=1e-3 if loose else 2e-3
                  if key.endswith("att") else 1e-4)


# -- main ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--skip-torchrun", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    families = tuple(name for name in args.families.split(",") if name)
    torch.manual_seed(0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="t3vis-gpu-check-") as folder:
        ctx = Context(args.device, Path(folder), families)
        (ctx.folder / "stores").mkdir()
        run_step("environment", environment, ctx)
        if run_step("build tiny models", build_models, ctx) is None and not RESULTS[-1]["ok"]:
            return _finish(args, start)
        loaded = [family for family in families if run_step(f"load_model[{family}]", load_family, ctx, family) is None
                  and RESULTS[-1]["ok"]]
        tasks_loaded = run_step("load summarizer and tagger", load_tasks, ctx) is None and RESULTS[-1]["ok"]
        if "bert" in families:
            run_step("t3vis ingest --device (CLI, bert, t-SNE)", cli_ingest_bert, ctx)
        for family in families:
            run_step(f"ingest_files[{family}]", ingest_family, ctx, family)
        run_step("t3vis ingest --task extractive-summarization", cli_ingest_task, ctx, "extractive-summarization")
        run_step("t3vis ingest --task token-classification", cli_ingest_task, ctx, "token-classification")
        for family in loaded:
            run_step(f"attribution[{family}] vs cpu", attribution_family, ctx, family)
        for family in [f for f in ("bert", "gpt2", "llama", "modernbert", "deberta-v2") if f in loaded]:
            run_step(f"lrp conservation[{family}]", lrp_conservation, ctx, family)
        for family in loaded:
            run_step(f"head importance + attention maps[{family}] vs cpu", heads_family, ctx, family)
        if tasks_loaded:
            run_step("attribution[summarizer, tagger] vs cpu", attribution_tasks, ctx)
            run_step("document/sentence heads + attention views vs cpu", heads_tasks, ctx)
        if "bert" in families:
            run_step("Trainer + T3visCallback[bert]", train_classifier, ctx)
            run_step("Trainer + T3visCallback[bert, bf16 mixed precision]", train_classifier, ctx, precision="bf16")
            if args.device.startswith("cuda"):  # fp16 autocast and its gradient scaler: CUDA only
                run_step("Trainer + T3visCallback[bert, fp16 mixed precision]", train_classifier, ctx,
                         precision="fp16")
            run_step("Trainer + T3visCallback[LoRA bert] + adapter ingest", train_lora, ctx)
        run_step("Trainer + T3visCallback[summarizer]", train_summarizer, ctx)
        run_step("Trainer + T3visCallback[tagger]", train_tagger, ctx)
        if not args.skip_torchrun and "bert" in families:
            run_step("torchrun --nproc_per_node=1 t3vis ingest", torchrun_ingest, ctx)
    return _finish(args, start)


def _finish(args, start: float) -> int:
    passed = sum(result["ok"] for result in RESULTS)
    failed = len(RESULTS) - passed
    if failed:
        print("\nFailed steps:")
        for result in RESULTS:
            if not result["ok"]:
                print(f"  {result['step']}: {result['error'].strip().splitlines()[-1]}")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "results": RESULTS}, indent=1))
    print(f"total {time.perf_counter() - start:.0f}s on {args.device}")
    print(f"BENCH gpu_check passed={passed} failed={failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
