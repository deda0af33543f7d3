"""LoRA and other ``peft`` adapters: a checkpoint that is an adapter folder over a base model.

An adapter folder holds ``adapter_config.json`` and the adapter's weights (``adapter_model.safetensors``),
and names its base model (``base_model_name_or_path``; ``base_model`` overrides it, e.g. when the base
was moved); a hub repository holding an adapter works too (:func:`hub_adapter_folder`). The base model is
loaded like any checkpoint, once per process for all its adapters (every adapter checkpoint of a run gets a
copy of the base's modules that shares its weights), then the adapter is attached with
``PeftModel.from_pretrained``, unmerged: attention capture, head masks, head importance and every
saliency method run through the adapted layers. A LoRA layer adds B·A·x to its base layer's output, a
linear map, so LRP stays conservative through it.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import torch

from t3vis.errors import ModelError, option

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


# What an adapter repository on the hub holds that t3vis reads: its settings, weights and tokenizer.
_HUB_ADAPTER_FILES = [ADAPTER_CONFIG, "adapter_model.safetensors", "tokenizer*", "vocab*", "merges.txt",
                      "special_tokens_map.json", "*.model"]


def hub_adapter_folder(name: str) -> Path | None:
    """The local copy of a hub repository that holds an adapter (``owner/name`` with ``adapter_config.json``),
    downloaded or found in the hub cache; None when ``name`` is not one (or the hub cannot be reached and the
    cache has no copy)."""
    if Path(name).expanduser().exists() or name.count("/") != 1 or name.startswith(("/", ".", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name, allow_patterns=_HUB_ADAPTER_FILES))
    except (OSError, ValueError):  # not on the hub, offline without a cached copy, not a repository name
        return None
    return folder if is_adapter_folder(folder) else None


def shared_weights_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the model's modules that shares its parameters and buffers (no weight is copied): an adapter
    attached to the copy leaves the original as it was, and both read the same base weights."""
    memo = {id(tensor): tensor for tensor in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)


def adapter_settings(path: str | Path) -> dict:
    """The adapter's ``adapter_config.json``."""
    try:
        return json.loads((Path(path) / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read {Path(path) / ADAPTER_CONFIG}: {exc}.") from exc


HEAD_NAMES = ("classifier", "score")  # the classification heads a peft adapter saves (modules_to_save)


def adapter_head_size(path: str | Path) -> int | None:
    """The number of labels of the classification head an adapter saved, read from its safetensors weights
    (no code runs); None when it saved no head."""
    if not set(adapter_settings(path).get("modules_to_save") or ()) & set(HEAD_NAMES):
        return None
    weights = Path(path) / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as tensors:
        ranked = [(_head_rank(name), name) for name in tensors.keys()]
        rank, name = min(ranked, default=(len(_HEAD_LAYERS), ""))
        return int(tensors.get_slice(name).get_shape()[0]) if rank < len(_HEAD_LAYERS) else None


# The last layer of each kind of classification head: RoBERTa/ELECTRA's out_proj, BERT's classifier, a decoder's score.
_HEAD_LAYERS = ("classifier.out_proj.weight", "classifier.weight", "score.weight")


def _head_rank(name: str) -> int:
    return next((rank for rank, ending in enumerate(_HEAD_LAYERS) if name.endswith(ending)), len(_HEAD_LAYERS))


def attach_adapter(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """The base model with the adapter in ``path`` attached (a ``PeftModel``, in eval mode)."""
    try:
        from peft import PeftModel
    except ImportError as exc:  # a dependency of t3vis; say what to do if it was removed
        raise ModelError("Loading an adapter needs the `peft` package: pip install peft.") from exc
    try:
        adapted = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"Cannot attach the adapter in {path} to its base model: {exc}. Check that the base "
                         f"model is the one it was trained on ({option('base_model')}) and that the number of "
                         f"labels is the adapter's ({option('label_names')} or {option('num_labels')}).") from exc
    return adapted.eval()


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a ``PeftModel`` (the model itself otherwise)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
