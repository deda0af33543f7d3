"""Model access: loading a classifier, running it with an attention probe, pooling its hidden states.

Attention capture and head masks are one mechanism for every family (:mod:`t3vis.model.attention`):
:func:`run_with_probe` hands the call's :class:`AttentionProbe` to the attention of any supported model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from safetensors import SafetensorError

from t3vis.errors import ModelError, option
from t3vis.model.attention import (  # noqa: F401 (AttentionProbe and ATTENTION_NAME are used from here too)
    ATTENTION_NAME,
    PROBE_KWARG,
    AttentionProbe,
    install_module_attention,
    probe_context,
    remove_module_attention,
    routes_module_attention,
)
from t3vis.model.adapters import (
    adapter_head_size,
    attach_adapter,
    hub_adapter_folder,
    is_adapter_folder,
    shared_weights_copy,
)
from t3vis.model.families import family_of, family_of_model, set_padding_token
from t3vis.model.checkpoint_folders import find_base, weights_status
from t3vis.model.pooling import classifier_positions, pool_hidden_states  # noqa: F401 (re-exported)
from t3vis.model.tokenizers import (MAX_UNKNOWN_SHARE, MIN_VOCABULARY_SHARE, TOKENIZER_FILES,  # noqa: F401
                                    _check_tokenizer_matches, _load_tokenizer, check_tokens_are_known)
from t3vis.tasks import SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION

# The classifiers load_model loads: the Auto class, and how a checkpoint's architecture name ends when it has its head.
_CLASSIFIERS = {
    SEQUENCE_CLASSIFICATION: (AutoModelForSequenceClassification, "ForSequenceClassification"),
    TOKEN_CLASSIFICATION: (AutoModelForTokenClassification, "ForTokenClassification"),
}


def routes_attention_through_t3vis(model: torch.nn.Module) -> bool:
    """Whether a probe passed to :func:`run_with_probe` reaches every attention layer of the model."""
    if family_of_model(model).attention == "module":
        return routes_module_attention(model)
    return model.config._attn_implementation == ATTENTION_NAME


def run_with_probe(model: PreTrainedModel, probe: AttentionProbe, **inputs) -> tuple[object, AttentionProbe]:
    """Run ``model(**inputs)`` with the probe; returns ``(output, probe)``.

    Raises :class:`ModelError` when the model does not route attention through t3vis.
    """
    if not routes_attention_through_t3vis(model):
        raise ModelError(
            f"The model uses attention implementation {model.config._attn_implementation!r}; load it with "
            "t3vis.model.access.load_model or wrap the call in `using_t3vis_attention(model)`."
        )
    probe.layers_seen.clear()
    probe.head_mask_is_ones = probe.head_mask is not None and bool((probe.head_mask.detach() == 1).all())
    if "token_type_ids" in inputs and not family_of_model(model).token_types:
        inputs = {name: value for name, value in inputs.items() if name != "token_type_ids"}
    with probe_context(probe):  # module-level attention (DeBERTa) reads the probe from here
        output = model(**inputs, **{PROBE_KWARG: probe})
    if len(set(probe.layers_seen)) != model.config.num_hidden_layers:
        raise ModelError(
            f"{type(model).__name__} did not route its {model.config.num_hidden_layers} attention layers through "
            f"transformers' AttentionInterface (seen: {sorted(set(probe.layers_seen))}); t3vis cannot capture "
            "attention or mask heads for this architecture."
        )
    return output, probe


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model in eval mode (no dropout) for the block, whatever mode it came in; restored in ``finally``.

    Each module gets its own mode back, not the model's: a part the user put in eval mode while the rest trains
    (a frozen layer) stays in eval mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:  # parents first: train() sets a subtree, whose modules then fix their own
            if module.training != training:
                module.train(training)


@contextmanager
def using_t3vis_attention(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Temporarily switch a model (e.g. one being trained) to the t3vis attention; restored in ``finally``."""
    if family_of_model(model).attention == "module":
        installed = install_module_attention(model)
        try:
            yield model
        finally:
            remove_module_attention(installed)
        return
    previous = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION_NAME)
    try:
        yield model
    finally:
        model.set_attn_implementation(previous)


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model (a classifier, tagger, summarizer or language model) with what t3vis needs to know about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    label_names: tuple[str, ...]
    num_layers: int
    num_heads: int
    max_length: int  # longest input the model accepts, in tokens
    classifier_was_initialised: bool  # True when the weights had no classification head (or sentence scorer)
    task: str = SEQUENCE_CLASSIFICATION  # what the model does: one of t3vis.tasks.TASKS

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def decoder(self) -> bool:
        """A causal model: its pooled token is the last real token of each example."""
        return family_of_model(self.model).decoder

    @property
    def pad_token_id(self) -> int:
        """The id batches are padded with: a decoder classifier's own padding id (it finds each example's last
        token by it), else the tokenizer's, else 0."""
        own = getattr(self.model.config, "pad_token_id", None) if self.decoder else None
        pad = own if own is not None else self.tokenizer.pad_token_id
        return pad if pad is not None else 0


def model_max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest input both the tokenizer and the position embeddings allow."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and getattr(model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        # RoBERTa's position ids start after the padding index: 514 embeddings hold 512 tokens.
        positions -= (model.config.pad_token_id or 0) + 1
    limits = [positions, tokenizer.model_max_length]
    limits = [int(limit) for limit in limits if limit is not None and 0 < limit < 1_000_000]
    return min(limits) if limits else 512


def load_model(
    name_or_path: str | Path,
    *,
    num_labels: int | None = None,
    label_names: tuple[str, ...] | list[str] | None = None,
    tokenizer: str | Path | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    task: str = SEQUENCE_CLASSIFICATION,
    base_model: str | Path | None = None,
) -> ModelBundle:
    """Load a sequence- or token-classification model and its tokenizer, in eval mode, with t3vis attention.

    ``name_or_path`` may be a ``peft`` adapter folder (``adapter_config.json``, e.g. LoRA): its base model
    (``base_model``, default the one the adapter names) is loaded and the adapter attached
    (:mod:`t3vis.model.adapters`).

    Parameters
    ----------
    name_or_path : str or Path
        A local folder (a Trainer checkpoint, a saved model) or a hub name (needs network).
    num_labels : int, optional
        Size of the classification head; needed only when the weights have no head yet.
    label_names : sequence of str, optional
        Names of the labels in id order; default: the config's ``id2label``.
    tokenizer : str or Path, optional
        Where to load the tokenizer from when the checkpoint folder has none.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default: CUDA when available.
    trust_remote_code : bool
        Run model code shipped with the weights. Off by default: it executes arbitrary code.
    task : str
        ``sequence-classification`` (``AutoModelForSequenceClassification``) or ``token-classification``
        (``AutoModelForTokenClassification``).
    """
    if is_adapter_folder(name_or_path):
        return _load_adapter(name_or_path, base_model, num_labels=num_labels, label_names=label_names,
                             tokenizer=tokenizer, device=device, trust_remote_code=trust_remote_code, task=task)
    source = str(name_or_path)
    auto_class, suffix = _CLASSIFIERS[task]
    if label_names is not None and num_labels is None:
        num_labels = len(label_names)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        hub_adapter = hub_adapter_folder(source)  # a hub repository may hold an adapter (no config.json)
        if hub_adapter is not None:
            return _load_adapter(hub_adapter, base_model, num_labels=num_labels, label_names=label_names,
                                 tokenizer=tokenizer, device=device, trust_remote_code=trust_remote_code, task=task)
        raise ModelError(
            f"Cannot load a model config from {source!r}: {exc}. Give a folder with config.json "
            "(a Trainer checkpoint or a saved model) or, when online, a hub model name."
        ) from exc
    family = family_of(config)  # an unsupported architecture is refused before its weights are read
    trained_head = any(name.endswith(suffix) for name in (config.architectures or []))
    if trained_head and num_labels is not None and num_labels != config.num_labels:
        raise ModelError(
            f"{len(label_names) if label_names is not None else num_labels} labels were asked for "
            f"({'label names' if label_names is not None else 'num_labels'}), but the checkpoint {source!r} has a "
            f"trained classification head with {config.num_labels} labels. Give {config.num_labels} label names "
            f"({option('label_names')}), or leave them out to use the checkpoint's own."
        )
    overrides = {}
    if num_labels is not None and num_labels != config.num_labels:
        overrides["num_labels"] = num_labels
    if label_names is not None:
        overrides["id2label"] = dict(enumerate(label_names))
        overrides["label2id"] = {name: index for index, name in enumerate(label_names)}
    try:
        model, info = auto_class.from_pretrained(
            source,
            attn_implementation=ATTENTION_NAME,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **overrides,
        )
    except SafetensorError as exc:
        raise ModelError(
            f"The weights file {_weights_file(source)} is truncated or corrupt ({exc}). Copy or save the checkpoint "
            "again (an interrupted copy or download leaves such files)."
        ) from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"Cannot load a {task} model from {source!r}: {exc}") from exc
    tokenizer_obj = _load_tokenizer(source, tokenizer, trust_remote_code=trust_remote_code)
    _check_tokenizer_matches(model, tokenizer_obj, source)
    if family.decoder:
        set_padding_token(model, tokenizer_obj)

    _number_attention_layers(model)
    install_module_attention(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    names = label_names or tuple(model.config.id2label[index] for index in range(model.config.num_labels))
    initialised = any("classifier" in key or "score" in key for key in info.get("missing_keys", []))
    return ModelBundle(
        model=model,
        tokenizer=tokenizer_obj,
        name=source,
        label_names=tuple(str(name) for name in names),
        num_layers=int(model.config.num_hidden_layers),
        num_heads=int(model.config.num_attention_heads),
        max_length=model_max_length(model, tokenizer_obj),
        classifier_was_initialised=initialised,
        task=task,
    )


def _load_adapter(folder, base_model, *, tokenizer, device, **options) -> ModelBundle:
    """The base classifier with the adapter attached; the tokenizer from the adapter folder when it has one."""
    head = adapter_head_size(folder)  # the adapter's own classification head decides the number of labels
    if head is not None and options.get("num_labels") is None and options.get("label_names") is None:
        options["num_labels"] = head
    bundle = load_adapter(folder, base_model, lambda base, tokenizer_source, on: load_model(
        base, tokenizer=tokenizer or tokenizer_source, device=on, **options), key=tuple(sorted(
            (name, repr(value)) for name, value in options.items())) + (str(tokenizer),), device=device)
    # A base model without a trained head gets its head from the adapter when the adapter saved it.
    return replace(bundle, classifier_was_initialised=bundle.classifier_was_initialised and head is None)


BASES_KEPT = 2  # base models kept for their adapters, per process (least recently used first out)
_bases: OrderedDict[tuple, ModelBundle] = OrderedDict()
_bases_lock = threading.RLock()  # reentrant: a base that fails to load may name another adapter (refused below)


def load_adapter(folder, base_model, load_base: Callable[[str, str | None, str], ModelBundle], *, key: tuple = (),
                 device: str | None = None) -> ModelBundle:
    """An adapter checkpoint: its base model, loaded once per process and device by ``load_base(base, tokenizer
    folder or None, device)`` and kept (``key`` tells apart loads of one base with different options), with the
    adapter attached to a copy of the base's modules that shares its weights. The checkpoints of one LoRA run so
    read the base weights once and hold them once; each gets its own folder's tokenizer when it saved one."""
    status = weights_status(folder, base_model=base_model)
    status.require()  # the base cannot be found: say which one, and how to give another
    base = find_base(status.base)
    if is_adapter_folder(base):
        raise ModelError(f"The base model of the adapter in {folder}, {base}, is itself an adapter: give the full "
                         f"model it was trained on with {option('base_model')}.")
    own_tokenizer = str(folder) if any((Path(folder) / name).is_file() for name in TOKENIZER_FILES) else None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cache_key = (base, _modified(base), device, *key)  # a base saved again is loaded again
    with _bases_lock:  # one load of a base at a time; sessions asking for the same base wait for it
        bundle = _bases.get(cache_key)
        if bundle is None:
            try:
                bundle = load_base(base, own_tokenizer, device)
            except ModelError as exc:
                raise ModelError(f"{exc} (The base model of the adapter in {folder}; give another one with "
                                 f"{option('base_model')}.)") from exc
            _bases[cache_key] = bundle
        _bases.move_to_end(cache_key)
        while len(_bases) > BASES_KEPT:
            _bases.popitem(last=False)
    tokenizer = bundle.tokenizer
    if own_tokenizer is not None and own_tokenizer != bundle.tokenizer.name_or_path:
        tokenizer = _load_tokenizer(own_tokenizer, None, trust_remote_code=False)
        _check_tokenizer_matches(bundle.model, tokenizer, str(folder))
    adapted = attach_adapter(shared_weights_copy(bundle.model), folder)  # the base's weights are on `device`
    return replace(bundle, model=adapted.to(device), tokenizer=tokenizer, name=str(folder))


def _modified(folder: str) -> float | None:
    """The latest modification time of a local model folder's files (None for a hub name)."""
    path = Path(folder)
    return max((item.stat().st_mtime for item in path.iterdir() if item.is_file()), default=None) \
        if path.is_dir() else None


def forget_base_models() -> None:
    """Drop the base models kept for adapters (their memory is freed once no adapter uses them)."""
    with _bases_lock:
        _bases.clear()


def _number_attention_layers(model: PreTrainedModel) -> None:
    """Give each self-attention module a ``layer_idx`` when the architecture does not (e.g. DistilBERT).

    The attention function tells layers apart by ``module.layer_idx``. Candidates are the innermost
    modules whose class name says attention; they are numbered in order when there is one per layer.
    """
    candidates = [
        module for module in model.modules()
        if "attention" in type(module).__name__.lower() and "output" not in type(module).__name__.lower()
    ]
    innermost = [
        module for module in candidates
        if not any(child is not module and child in candidates for child in module.modules())
    ]
    if len(innermost) == model.config.num_hidden_layers and all(
        getattr(module, "layer_idx", None) is None for module in innermost
    ):
        for index, module in enumerate(innermost):
            module.layer_idx = index


# Files that hold a tokenizer's vocabulary; a folder with none of them has no tokenizer.
def _weights_file(source: str) -> str:
    folder = Path(source)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return str(files[0]) if len(files) == 1 else f"in {source}"
