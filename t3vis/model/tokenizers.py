"""A checkpoint's tokenizer: found in its folder (or given), and checked against the model and the data.

A tokenizer far smaller than the model's vocabulary, or one that maps most of the data to its unknown token, is
the wrong one for the checkpoint: both are refused with a message saying what to give instead.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from t3vis.errors import ModelError, option


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model", "spm.model")


def _load_tokenizer(source: str, tokenizer: str | Path | None, *, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    where = str(tokenizer) if tokenizer is not None else source
    folder = Path(where)
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()] if folder.is_dir() else []
    if folder.is_dir() and not present:
        hint = "Pass the tokenizer the model was trained with" + (f" ({option('tokenizer')})." if tokenizer is None
                                                                  else ".")
        raise ModelError(f"{folder} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}). {hint}")
    try:
        return AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except Exception as exc:  # a corrupt file raises anything from JSON to Rust errors
        if present:
            raise ModelError(
                f"Cannot read the tokenizer files {', '.join(str(folder / name) for name in present)}: {exc}. "
                "A file may be truncated or corrupt: save the tokenizer again, or pass another one "
                f"({option('tokenizer')})."
            ) from exc
        raise ModelError(f"Cannot load a tokenizer from {where!r}: {exc}. Pass a tokenizer folder or, when online, "
                         f"a hub name ({option('tokenizer')}).") from exc


def _check_tokenizer_matches(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: str) -> None:
    """Refuse a tokenizer whose ids do not fit the model's embedding matrix, or one far smaller than it."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelError(
            f"The tokenizer has {len(tokenizer)} tokens but the model at {source!r} has {rows} token embeddings: "
            "the checkpoint does not match this tokenizer. Pass the tokenizer the model was trained with "
            f"({option('tokenizer')})."
        )
    if len(tokenizer) < MIN_VOCABULARY_SHARE * rows:
        raise ModelError(
            f"The tokenizer has only {len(tokenizer)} tokens but the model at {source!r} has {rows} token embeddings: "
            "this is not the tokenizer the model was trained with (an empty or placeholder vocabulary maps every word "
            f"to the unknown token). Pass the right tokenizer ({option('tokenizer')})."
        )


MIN_VOCABULARY_SHARE = 0.5  # a tokenizer covering less than this share of the embedding rows is refused
MAX_UNKNOWN_SHARE = 0.5  # data whose word pieces are mostly the unknown token is refused


def check_tokens_are_known(tokenizer: PreTrainedTokenizerBase, input_ids: list[list[int]]) -> None:
    """Refuse data that the tokenizer maps mostly to its unknown token (the wrong tokenizer, or garbled text)."""
    unknown = tokenizer.unk_token_id
    if unknown is None:
        return
    special = set(tokenizer.all_special_ids) - {unknown}
    total = hits = 0
    for ids in input_ids:
        for token in ids:
            if token not in special:
                total += 1
                hits += token == unknown
    if total and hits / total > MAX_UNKNOWN_SHARE:
        raise ModelError(
            f"{hits / total:.0%} of the data's word pieces are the unknown token {tokenizer.unk_token!r}: the "
            "tokenizer does not fit this text (a wrong or empty vocabulary, or undecoded bytes). Pass the "
            f"tokenizer the model was trained with ({option('tokenizer')}), or check the data's encoding ({option('encoding')})."
        )
