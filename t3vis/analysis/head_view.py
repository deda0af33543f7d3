"""The Attention Head view's computations: instance-scale importance and patterns, pruning, ablation.

Pruning is a head mask (L, H) of ones and zeros passed with each call through an
:class:`~t3vis.model.access.AttentionProbe`: the model object, which the app shares between
all sessions, is never modified, so pruning is reversible and private to whoever passes the
mask. A pruned head's attention probabilities are multiplied by zero, hence its context output
is zero (what Michel et al. 2019 call masking a head).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from t3vis.data.loading import ExampleSet
from t3vis.model.encoding import collate, encode, iterate_batches
from t3vis.record.head_importance import head_mask_gradient
from t3vis.model.access import AttentionProbe, ModelBundle, eval_mode, run_with_probe
from t3vis.progress import Progress, no_progress
from t3vis.store.database import Store

Head = tuple[int, int]  # (layer, head), both 0-based


def head_mask(pruned: Iterable[Head], num_layers: int, num_heads: int) -> torch.Tensor:
    """A (L, H) mask: ones, with zeros at the pruned heads."""
    mask = torch.ones(num_layers, num_heads)  # (L, H)
    for layer, head in pruned:
        if not (0 <= layer < num_layers and 0 <= head < num_heads):
            raise ValueError(f"head ({layer}, {head}) is outside the {num_layers} x {num_heads} grid")
        mask[layer, head] = 0.0
    return mask


@dataclass(frozen=True)
class InstanceHeads:
    """One example through the model, with a head mask: what the head view shows at instance scale."""

    tokens: list[str]  # (T,) word pieces, special tokens included
    logits: np.ndarray  # (K,)
    probs: np.ndarray  # (K,)
    attentions: np.ndarray  # (L, H, T, T) after the mask: a pruned head's rows are zero
    importance: np.ndarray  # (L, H) |dL/dm| of this example, L = cross-entropy of `label`
    label: int  # the class whose loss the importance is taken of
    truncated: bool  # the text was longer than the model's limit

    @property
    def importance_global(self) -> np.ndarray:
        """Importance divided by its largest value, in [0, 1] (as ``head_importance.importance_global``)."""
        largest = self.importance.max()
        return self.importance / largest if largest > 0 else self.importance


def encode_one(bundle: ModelBundle, text: str, text_pair: str | None = None) -> tuple[dict, list[str], bool]:
    """Model inputs (batch of one) for a text, its tokens, and whether it was truncated."""
    encoded = encode(bundle.tokenizer, [text], None if text_pair is None else [text_pair],
                     max_length=bundle.max_length)
    pad = bundle.pad_token_id
    inputs = collate(encoded, np.array([0]), pad_token_id=pad, device=bundle.device)
    tokens = bundle.tokenizer.convert_ids_to_tokens(encoded.input_ids[0])
    return inputs, tokens, bool(encoded.truncated[0])


def instance_heads(bundle: ModelBundle, text: str, text_pair: str | None = None, *, label: int,
                   pruned: Iterable[Head] = ()) -> InstanceHeads:
    """One forward and one backward pass over one example, with the pruned heads masked.

    Parameters
    ----------
    label : int
        Class whose cross-entropy the importance is the gradient of (the gold label, usually).
    pruned : iterable of (layer, head)
        Heads to mask for this call only.
    """
    if not 0 <= label < len(bundle.label_names):
        raise ValueError(f"label {label} is not one of the model's {len(bundle.label_names)} classes")
    inputs, tokens, truncated = encode_one(bundle, text, text_pair)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads)  # (L, H)
    probe = AttentionProbe(record=True)
    with eval_mode(bundle.model):
        output, gradient = head_mask_gradient(bundle.model, inputs, torch.tensor([label], device=bundle.device),
                                              probe=probe, head_mask=mask)
    logits = output.logits.detach().float().cpu()[0]  # (K,)
    return InstanceHeads(
        tokens=tokens,
        logits=logits.numpy(),
        probs=torch.softmax(logits, -1).numpy(),
        attentions=probe.stacked_attentions()[:, 0].float().cpu().numpy(),  # (L, H, T, T)
        importance=gradient[0].abs().numpy(),  # (L, H)
        label=label,
        truncated=truncated,
    )


def pool_pattern(attention: np.ndarray, bins: int) -> np.ndarray:
    """A (T, T) attention matrix averaged into (bins, bins) blocks of relative position; rows keep sum 1.

    With T <= bins the matrix is returned unchanged.
    """
    size = attention.shape[0]
    if size <= bins:
        return attention
    edges = np.linspace(0, size, bins + 1).round().astype(int)
    rows = np.add.reduceat(attention, edges[:-1], axis=0) / np.diff(edges)[:, None]  # (bins, T) row means
    return np.add.reduceat(rows, edges[:-1], axis=1)  # (bins, bins) attention summed over key blocks


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


def ablation_loss_increase(bundle: ModelBundle, examples: ExampleSet, *, batch_size: int = 32,
                           progress: Progress = no_progress) -> np.ndarray:
    """(L, H): the increase of mean validation loss when each head alone is masked (the ground truth
    that the first-order importance estimates)."""
    base = evaluate(bundle, examples, batch_size=batch_size).loss
    result = np.zeros((bundle.num_layers, bundle.num_heads))
    total = bundle.num_layers * bundle.num_heads
    for index in range(total):
        layer, head = divmod(index, bundle.num_heads)
        result[layer, head] = evaluate(bundle, examples, pruned=[(layer, head)], batch_size=batch_size).loss - base
        progress("ablation", index + 1, total)
    return result


def checkpoint_weights(store: Store, run_id: str, checkpoint: str) -> Path | None:
    """The folder of a checkpoint's weights (relative paths are relative to the store's folder), or None."""
    path = store.scalar("SELECT path FROM checkpoints WHERE run_id = ? AND checkpoint = ?", [run_id, checkpoint])
    if not path:
        return None
    folder = Path(path)
    if not folder.is_absolute():
        folder = store.path.resolve().parent / folder
    return folder if (folder / "config.json").is_file() else None


def stored_examples(store: Store, run_id: str, split: str) -> ExampleSet:
    """A split's examples as the store holds them (texts as fed to the model, gold labels)."""
    import pandas as pd

    rows = store.query("SELECT example_id, text, text_pair, label FROM examples WHERE run_id = ? AND split = ? "
                       "ORDER BY example_id", [run_id, split])
    names = store.scalar("SELECT label_names FROM runs WHERE run_id = ?", [run_id])
    has_pairs = bool(rows.text_pair.notna().any())
    return ExampleSet(
        example_ids=rows.example_id.to_numpy(np.int64), texts=rows.text.tolist(),
        text_pairs=rows.text_pair.fillna("").tolist() if has_pairs else None,
        labels=rows.label.to_numpy(np.int64), label_names=list(names or []), extra=pd.DataFrame(index=rows.index),
        text_columns=("text", "text_pair") if has_pairs else ("text",), label_column="label",
        source=f"{store.path}:{run_id}/{split}",
    )


def instance_pattern_frame(attentions: np.ndarray, *, bins: int = 16):
    """Long frame (layer, head, query, key, weight) of attentions (L, H, T, T), each pooled to <= bins x bins."""
    import pandas as pd

    layers, heads = attentions.shape[:2]
    frames = []
    for layer in range(layers):
        for head in range(heads):
            pooled = pool_pattern(attentions[layer, head], bins)  # (b, b)
            query, key = np.meshgrid(np.arange(pooled.shape[0]), np.arange(pooled.shape[1]), indexing="ij")
            frames.append(pd.DataFrame({"layer": layer, "head": head, "query": query.ravel(), "key": key.ravel(),
                                        "weight": pooled.ravel()}))
    return pd.concat(frames, ignore_index=True)


def importance_on(bundle: ModelBundle, examples: ExampleSet, *, batch_size: int = 32) -> np.ndarray:
    """(L, H) first-order importance over the examples: the mean of per-example |dL(x)/dm| (as at ingest)."""
    encoded = encode(bundle.tokenizer, examples.texts, examples.text_pairs, max_length=bundle.max_length)
    labels = torch.tensor(np.array(examples.labels), dtype=torch.long)  # (N,)
    pad = bundle.pad_token_id
    total = torch.zeros(bundle.num_layers, bundle.num_heads, dtype=torch.float64)
    for indices, inputs in iterate_batches(encoded, batch_size, pad_token_id=pad, device=bundle.device):
        _, gradient = head_mask_gradient(bundle.model, inputs, labels[indices].to(bundle.device))
        total += gradient.abs().double().sum(0)  # (L, H)
    return (total / len(examples)).numpy()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays of the same size (average ranks for ties)."""
    def ranks(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        order = np.argsort(values, kind="stable")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        for value in np.unique(values):  # ties share their mean rank
            tied = values == value
            ranked[tied] = ranked[tied].mean()
        return ranked

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])
