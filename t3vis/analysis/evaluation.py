"""Accuracy and loss over a whole split with chosen heads pruned (the head view's evaluation button)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from t3vis.data.loading import ExampleSet
from t3vis.model.access import AttentionProbe, ModelBundle, run_with_probe
from t3vis.model.encoding import encode, iterate_batches
from t3vis.model.heads import Head, head_mask
from t3vis.progress import Progress, no_progress


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float  # mean cross-entropy
    n_examples: int


def evaluate(bundle: ModelBundle, examples: ExampleSet, *, pruned: Iterable[Head] = (), batch_size: int = 32,
             progress: Progress = no_progress) -> Evaluation:
    """Accuracy and mean loss over a split with the pruned heads masked (no gradient)."""
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    encoded = encode(bundle.tokenizer, examples.texts, examples.text_pairs, max_length=bundle.max_length)
    labels = torch.tensor(np.array(examples.labels), dtype=torch.long)  # (N,)
    pad = bundle.pad_token_id
    correct, loss, done = 0, 0.0, 0
    progress("evaluate", 0, len(examples))
    with torch.no_grad():
        for indices, inputs in iterate_batches(encoded, batch_size, pad_token_id=pad, device=bundle.device):
            output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
            logits = output.logits.float().cpu()  # (B, K)
            gold = labels[indices]
            correct += int((logits.argmax(-1) == gold).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
            done += len(indices)
            progress("evaluate", done, len(examples))
    return Evaluation(accuracy=correct / len(examples), loss=loss / len(examples), n_examples=len(examples))


@dataclass(frozen=True)
class SummaryEvaluation:
    rouge1: float  # mean ROUGE-1 F1 of the predicted summaries (the 3 highest-scoring sentences)
    rouge2: float
    rougeL: float
    loss: float  # mean over documents of the mean sentence binary cross-entropy
    n_examples: int


def evaluate_summaries(bundle: ModelBundle, documents, *, pruned: Iterable[Head] = (), batch_size: int = 8,
                       progress: Progress = no_progress) -> SummaryEvaluation:
    """ROUGE and loss of a summarizer over a split of documents with the pruned heads masked (no gradient)."""
    from t3vis.data.rouge import rouge
    from t3vis.model.summarizer import collate_documents, encode_documents, uses_segments
    from t3vis.record.summarization import SUMMARY_SIZE, document_losses
    from t3vis.store.rows import top_units

    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    encoded = encode_documents(bundle.tokenizer, documents.sentences, max_length=bundle.max_length,
                               segments=uses_segments(bundle.model))
    scores, losses = [], []
    progress("evaluate", 0, len(encoded))
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start: start + batch_size]
            inputs = collate_documents(batch, pad_token_id=bundle.pad_token_id,
                                       labels=documents.oracle[start: start + batch_size])
            inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
            output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
            losses += document_losses(output, inputs).float().cpu().tolist()
            logits = output.logits.float().cpu().numpy()  # (B, S)
            scores += [logits[row, : document.n_kept] for row, document in enumerate(batch)]
            progress("evaluate", start + len(batch), len(encoded))
    results = [rouge([sentences[i] for i in top_units(score, SUMMARY_SIZE)], reference)
               for score, sentences, reference in zip(scores, documents.sentences, documents.references)]
    return SummaryEvaluation(
        rouge1=float(np.mean([r.rouge1 for r in results])), rouge2=float(np.mean([r.rouge2 for r in results])),
        rougeL=float(np.mean([r.rougeL for r in results])), loss=float(np.mean(losses)), n_examples=len(encoded),
    )


def document_pruning_table(sentences, before: np.ndarray, after: np.ndarray, pruned_label: str):
    """One document's sentences with their probability and summary membership, with all heads and pruned."""
    import pandas as pd

    from t3vis.record.summarization import SUMMARY_SIZE
    from t3vis.store.rows import top_units

    kept = len(before)
    chosen_before, chosen_after = set(top_units(before, SUMMARY_SIZE)), set(top_units(after, SUMMARY_SIZE))
    rows = sentences[sentences.unit < kept]
    return pd.DataFrame({
        "#": rows.unit.to_numpy(),
        "sentence": rows.text.to_numpy(),
        "oracle": ["✓" if label == 1 else "" for label in rows.label],
        "all heads": [f"{before[i]:.3f}" + (" ✓" if i in chosen_before else "") for i in rows.unit],
        pruned_label: [f"{after[i]:.3f}" + (" ✓" if i in chosen_after else "") for i in rows.unit],
    })


@dataclass(frozen=True)
class TaggingEvaluation:
    f1: float  # entity-level F1 (strict IOB2, micro over types); NaN when the tags are not IOB
    precision: float
    recall: float
    accuracy: float  # word accuracy
    loss: float  # mean cross-entropy over the words
    n_examples: int


def evaluate_tagging(bundle: ModelBundle, sentences, *, pruned: Iterable[Head] = (), batch_size: int = 32,
                     max_length: int | None = None, progress: Progress = no_progress) -> TaggingEvaluation:
    """Entity F1, word accuracy and loss of a token classifier over a split with the pruned heads masked
    (sentences cut at ``max_length`` tokens, default the model's limit: pass the run's)."""
    from t3vis.data.entity_metrics import entity_scores
    from t3vis.data.tagging import outside_tag
    from t3vis.model.word_encoding import collate_words, encode_words

    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    encoded = encode_words(bundle.tokenizer, sentences.words, max_length=min(max_length or bundle.max_length,
                                                                             bundle.max_length))
    outside = outside_tag(bundle.label_names)
    predicted, losses, correct = [], [], []
    progress("evaluate", 0, len(encoded))
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start: start + batch_size]
            inputs = collate_words(batch, pad_token_id=bundle.pad_token_id)
            inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
            output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
            log_probs = torch.log_softmax(output.logits.float(), -1).cpu()  # (B, T, K)
            for row, sentence in enumerate(batch):
                tags = torch.as_tensor(sentences.tags[start + row][: sentence.n_kept])  # (W,)
                word_log_probs = log_probs[row, sentence.first_pieces]  # (W, K)
                guess = np.full(sentence.n_words, outside, dtype=np.int64)  # words cut at the limit count as "O"
                guess[: sentence.n_kept] = word_log_probs.argmax(-1).numpy()
                predicted.append(guess)
                losses += (-word_log_probs[torch.arange(len(tags)), tags]).tolist()
                correct += (guess[: sentence.n_kept] == tags.numpy()).tolist()
            progress("evaluate", start + len(batch), len(encoded))
    scores = entity_scores(sentences.tags, predicted, bundle.label_names)
    return TaggingEvaluation(
        f1=scores.get("f1", float("nan")), precision=scores.get("precision", float("nan")),
        recall=scores.get("recall", float("nan")), accuracy=float(np.mean(correct)), loss=float(np.mean(losses)),
        n_examples=len(encoded),
    )
