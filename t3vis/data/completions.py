"""Prompt → completion pairs for supervised fine-tuning of decoder language models, and their encoding.

Four layouts are detected (or the columns are given):

- **prompt-completion**: ``prompt`` and ``completion`` columns (TRL's prompt-completion datasets).
- **question-answer**: ``question`` and ``answer`` (GSM8K, whose answers end with ``#### <final answer>``).
- **alpaca**: ``instruction``, optional ``input`` and ``output``. The prompt is the instruction, then, when the
  input is non-empty, a blank line and the input: ``instruction + "\\n\\n" + input``.
- **chat**: a ``messages`` column of ``[{"role": ..., "content": ...}, ...]`` lists ending with the assistant's
  message, rendered with the tokenizer's chat template: the prompt is the conversation before the last message
  rendered with ``add_generation_prompt=True``; the completion is what the full conversation's rendering adds
  after that prompt (the assistant's text and the template's end of turn). ``prompt`` and ``completion`` columns
  that hold lists of messages (TRL's conversational prompt-completion) are one conversation, prompt then completion.

Outside chat data the model reads ``prompt + completion`` as one text. Where the two would run together (the
prompt does not end with whitespace and the completion does not start with it, as in GSM8K) the prompt gets a
newline at its end (:data:`PROMPT_END`), as OpenAI's GSM8K training code does; ``prompts`` holds that text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from t3vis.data.loading import (
    _example_ids,
    _guess_column,
    _jsonable_frame,
    _require_column,
    _rows,
    read_table,
)
from t3vis.errors import DataError, ModelError, option

IGNORED = -100  # the label of prompt and padding positions (PyTorch's cross-entropy ignore_index)
PROMPT_END = "\n"  # ends a prompt that would otherwise run into its completion
FORMATS = ("prompt-completion", "question-answer", "alpaca", "chat")
_DETECTED = (("chat", ("messages",)), ("prompt-completion", ("prompt", "completion")),
             ("alpaca", ("instruction", "output")), ("question-answer", ("question", "answer")))
PROMPT_COLUMN_GUESSES = ("prompt", "question", "instruction", "input", "query")
COMPLETION_COLUMN_GUESSES = ("completion", "answer", "output", "response", "target")
_FINAL = re.compile(r"####[ \t]*([^\n]*)")


@dataclass(frozen=True)
class CompletionSet:
    """Prompt → completion pairs, as the texts the model reads."""

    example_ids: np.ndarray  # (N,) int64, unique
    prompts: list[str]  # (N,) what the model is given (chat: rendered, ending with the generation prompt)
    completions: list[str]  # (N,) the reference completion (chat: the rendering after the prompt)
    answers: list[str | None]  # (N,) the completion's final answer (:func:`final_answer`), else None
    extra: pd.DataFrame  # (N, k) the file's other columns, JSON-serialisable values
    format: str  # one of FORMATS
    columns: tuple[str, ...]  # the columns read: prompt part(s) then completion, or the conversation's
    source: str

    def __len__(self) -> int:
        return len(self.prompts)


def final_answer(text: str) -> str | None:
    """The final answer GSM8K writes after ``####`` (``"... #### 1,080"`` → ``"1080"``), or None without one.

    The first ``####`` counts (a generation may go on after its answer), up to the end of its line; spaces are
    stripped and commas between digits (thousands separators) dropped, so that answers compare as strings.
    """
    found = _FINAL.search(text or "")
    if found is None:
        return None
    answer = re.sub(r"(?<=\d),(?=\d)", "", found.group(1).strip())
    return answer or None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def generated_answer(text: str) -> str | None:
    """The final answer of a generation: what it writes after ``####`` (:func:`final_answer`), else its last number
    (commas between digits dropped, a trailing ``.0`` kept as written), else None — a model not yet fine-tuned
    rarely writes ``####`` but often ends with "The answer is 20."."""
    marked = final_answer(text)
    if marked is not None:
        return marked
    numbers = _NUMBER.findall(text or "")
    return re.sub(r"(?<=\d),(?=\d)", "", numbers[-1]).rstrip(",") if numbers else None


def load_completions(path: str | Path, *, prompt_column: str | None = None, completion_column: str | None = None,
                     messages_column: str | None = None, id_column: str | None = None, limit: int | None = None,
                     file_format: str | None = None, encoding: str = "utf-8", tokenizer=None) -> CompletionSet:
    """Read prompt → completion pairs from a file (see :func:`t3vis.data.loading.read_table` for the formats).

    Parameters
    ----------
    prompt_column, completion_column : str, optional
        The prompt's and the completion's columns, used as they are; one given, the other is detected.
    messages_column : str, optional
        A column of chat conversations (needs ``tokenizer``).
    tokenizer : PreTrainedTokenizerBase, optional
        Renders chat conversations with its ``chat_template``; unused for other layouts.
    limit : int, optional
        Keep the first ``limit`` rows.
    """
    if limit is not None and limit < 1:
        raise DataError(f"{option('limit')} must be at least 1 (the number of examples to use), not {limit}.")
    frame = read_table(path, file_format=file_format, encoding=encoding)
    if frame.empty:
        raise DataError(f"{Path(path).name} contains no rows (only a header).")
    columns = [str(column) for column in frame.columns]
    layout, used = _choose_columns(columns, prompt_column, completion_column, messages_column, path)
    if id_column:
        _require_column(id_column, columns, option("id_column"), path)
    if limit is not None:
        frame = frame.iloc[:limit].reset_index(drop=True)
    if layout == "prompt-completion" and isinstance(frame[used[0]].iloc[0], (list, np.ndarray)):
        layout = "chat"  # TRL's conversational prompt-completion: lists of messages in both columns
    if layout == "chat":
        cells = [[_messages(value) for value in frame[column]] for column in used]
        if len(cells) == 2:  # a prompt conversation and its completion: one conversation, as long as both are lists
            cells = [[p + c if isinstance(p, list) and isinstance(c, list) else c for p, c in zip(*cells)]]
        conversations = [_conversation(value, row, used[-1], path) for row, value in enumerate(cells[0])]
        prompts, completions = _render_chats(conversations, tokenizer, path)
        answers = [final_answer(conversation[-1]["content"]) for conversation in conversations]
    else:
        *prompt_parts, completion_part = used
        prompts = _texts(frame[prompt_parts[0]], "prompt", path)
        if layout == "alpaca" and len(prompt_parts) == 2:
            inputs = frame[prompt_parts[1]]
            prompts = [prompt + ("" if blank else "\n\n" + str(extra))
                       for prompt, extra, blank in zip(prompts, inputs, _blank(inputs))]
        completions = _texts(frame[completion_part], "completion", path)
        prompts = [prompt + PROMPT_END if not prompt[-1:].isspace() and not completion[:1].isspace() else prompt
                   for prompt, completion in zip(prompts, completions)]
        answers = [final_answer(completion) for completion in completions]
    extra = _jsonable_frame(frame.drop(columns=[*used] + ([id_column] if id_column else [])))
    return CompletionSet(example_ids=_example_ids(frame, id_column, path), prompts=prompts, completions=completions,
                         answers=answers, extra=extra, format=layout, columns=tuple(used), source=str(path))


def _choose_columns(columns: list[str], prompt: str | None, completion: str | None, messages: str | None,
                    path) -> tuple[str, list[str]]:
    """The layout and the columns it reads: (prompt[, input], completion) or (messages,)."""
    if messages:
        _require_column(messages, columns, option("messages_column"), path)
        return "chat", [messages]
    if prompt or completion:
        prompt = prompt or _guess_column(PROMPT_COLUMN_GUESSES, columns, "prompt", option("prompt_column"), path)
        completion = completion or _guess_column(COMPLETION_COLUMN_GUESSES, columns, "completion",
                                                 option("completion_column"), path)
        _require_column(prompt, columns, option("prompt_column"), path)
        _require_column(completion, columns, option("completion_column"), path)
        return "prompt-completion", [prompt, completion]
    lowered = {column.lower(): column for column in columns}
    for layout, names in _DETECTED:
        if all(name in lowered for name in names):
            found = [lowered[name] for name in names]
            if layout == "alpaca" and "input" in lowered:
                found.insert(1, lowered["input"])
            return layout, found
    raise DataError(f"Cannot tell which columns of {Path(path).name} hold the prompt and the completion; its columns "
                    f"are {columns}. Name them prompt/completion, question/answer, instruction/input/output or "
                    f"messages, or pass {option('prompt_column')} and {option('completion_column')} (or "
                    f"{option('messages_column')} for chat conversations).")


def _blank(values: pd.Series) -> np.ndarray:
    """(N,) bool: missing or only whitespace."""
    return (values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())).to_numpy()


def _texts(values: pd.Series, what: str, path) -> list[str]:
    missing = _blank(values)
    if missing.any():
        raise DataError(f"{Path(path).name}: column {values.name!r} has no {what} text in data rows {_rows(missing)}. "
                        f"Every example needs a non-empty {what}; fill or drop those rows.")
    return [str(value) for value in values]


def _messages(value):
    """A cell's list of messages: a JSON string (a CSV cell) parsed, an array (Parquet) made a list."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.tolist() if isinstance(value, np.ndarray) else value


def _conversation(value, row: int, column: str, path) -> list[dict]:
    """A conversation, checked: messages with a string role and content, the assistant's last."""
    example = '[{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]'
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value):
        raise DataError(f"{Path(path).name}: column {column!r} of data row {row + 1} is not a list of messages with a "
                        f"string role and content ({_describe(value)}). Chat data needs one list per row, e.g. "
                        f"{example}.")
    if value[-1]["role"] != "assistant" or len(value) < 2:
        raise DataError(f"{Path(path).name}: the conversation in data row {row + 1} ends with a {value[-1]['role']!r} "
                        f"message after {len(value) - 1} other(s); the completion is the last message, so each "
                        "conversation needs one or more messages and then the assistant's.")
    if not value[-1]["content"].strip():
        raise DataError(f"{Path(path).name}: the assistant's last message in data row {row + 1} is empty. Every "
                        "example needs a non-empty completion; fill or drop that row.")
    return [dict(message) for message in value]


def _describe(value) -> str:
    """What a cell that is not a conversation holds, in a few words."""
    if not isinstance(value, (list, tuple)):
        return f"a {type(value).__name__}: {str(value)[:40]!r}"
    if not value:
        return "an empty list"
    odd = next((m for m in value if not isinstance(m, dict)), None)
    if odd is not None:
        return f"a list holding {type(odd).__name__} {str(odd)[:40]!r}"
    return f"messages with keys {sorted({key for m in value for key in m})}"


def _render_chats(conversations: list[list[dict]], tokenizer, path) -> tuple[list[str], list[str]]:
    """(prompts, completions) of conversations rendered with the tokenizer's chat template."""
    if tokenizer is None:
        raise DataError(f"{Path(path).name} holds chat conversations, which are rendered with a tokenizer's chat "
                        f"template; pass {option('tokenizer')} (the model's tokenizer).")
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"The tokenizer ({type(tokenizer).__name__}, {getattr(tokenizer, 'name_or_path', '')!r}) has "
                         "no chat template, so chat conversations cannot be rendered. Use an instruction-tuned "
                         "model's tokenizer, set tokenizer.chat_template, or give the data as prompt/completion "
                         f"columns ({option('prompt_column')}, {option('completion_column')}).")
    prompts, completions = [], []
    for row, conversation in enumerate(conversations):
        try:
            prompt = tokenizer.apply_chat_template(conversation[:-1], tokenize=False, add_generation_prompt=True)
            full = tokenizer.apply_chat_template(conversation, tokenize=False)
        except Exception as exc:  # a template may refuse a conversation (jinja's raise_exception, a TemplateError)
            raise DataError(f"{Path(path).name} data row {row + 1}: the tokenizer's chat template refused the "
                            f"conversation: {exc}") from exc
        if not full.startswith(prompt) or len(full) == len(prompt):
            raise ModelError(f"{Path(path).name} data row {row + 1}: the chat template's rendering of the whole "
                             "conversation does not start with its rendering of the prompt (the messages before the "
                             "last, with the generation prompt), so the completion cannot be cut out of it. Use a "
                             "template whose renderings extend each other.")
        prompts.append(prompt)
        completions.append(full[len(prompt):])
    return prompts, completions


@dataclass(frozen=True)
class EncodedCompletions:
    """Prompt → completion pairs as token ids with completion-only labels, cut to a length limit.

    Example i's ``input_ids[i]`` (T_i,) are its kept prompt tokens then its kept completion tokens (the tokenizer's
    EOS last, when added and kept). ``labels[i]`` (T_i,) is IGNORED on the prompt positions and the token id on
    each completion position: the labels are aligned with the inputs, and the model's shift happens in the loss
    (transformers' causal LM loss compares the logits at t with the label at t + 1), so completion token t is
    scored by the logits at position t - 1, and the first by the prompt's last token.
    """

    example_ids: np.ndarray  # (N,) int64
    input_ids: list[list[int]]  # N lists (T_i,)
    labels: list[list[int]]  # N lists (T_i,): IGNORED on prompt positions
    prompt_lengths: np.ndarray  # (N,) int64: prompt tokens kept (the first completion token's position)
    n_tokens_full: np.ndarray  # (N,) int64: prompt + completion tokens before cutting
    prompt_tokens_cut: np.ndarray  # (N,) int64: tokens cut from the prompt's start (after its BOS)
    completion_tokens_cut: np.ndarray  # (N,) int64: tokens cut from the completion's end (the EOS first)
    eos_added: bool  # whether each completion ended with the tokenizer's EOS before cutting

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def completion_lengths(self) -> np.ndarray:
        """(N,) completion tokens kept (the labelled positions)."""
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64) - self.prompt_lengths

    @property
    def truncated(self) -> np.ndarray:
        """(N,) bool: examples that were cut."""
        return (self.prompt_tokens_cut + self.completion_tokens_cut) > 0

    def __getitem__(self, rows) -> EncodedCompletions:
        """The examples at ``rows`` (a slice, or a sequence of positions)."""
        rows = np.arange(len(self))[rows]
        return replace(self, example_ids=self.example_ids[rows], input_ids=[self.input_ids[i] for i in rows],
                       labels=[self.labels[i] for i in rows], prompt_lengths=self.prompt_lengths[rows],
                       n_tokens_full=self.n_tokens_full[rows], prompt_tokens_cut=self.prompt_tokens_cut[rows],
                       completion_tokens_cut=self.completion_tokens_cut[rows])


def encode_completions(tokenizer, data: CompletionSet, *, max_length: int,
                       max_completion_tokens: int | None = None) -> EncodedCompletions:
    """Token ids and completion-only labels of each pair, cut to ``max_length`` tokens.

    The prompt's ids are its own tokenization, what the model is given at generation time, after the tokens the
    tokenizer puts at a text's start (a BOS; chat renderings carry their own). The completion's ids are the rest of
    the full text's tokenization when that starts with the prompt's ids (the usual case), else the completion
    tokenized on its own. Outside chat data the tokenizer's EOS (when it has one) ends the completion, so the model
    learns to stop; in chat data the template's end of turn does that and no EOS is added.

    An example longer than the limit is cut: first its completion's end, down to ``max_completion_tokens`` (which
    counts the EOS); then its prompt from the left, keeping the end next to the completion (and the BOS); then, if
    the completion alone does not fit, its end again. At least one prompt token and one completion token remain.
    """
    if max_completion_tokens is not None and max_completion_tokens < 1:
        raise DataError(f"{option('max_completion_tokens')} must be at least 1, not {max_completion_tokens}.")
    chat = data.format == "chat"
    start = [] if chat else _start_tokens(tokenizer)
    eos = tokenizer.eos_token_id if not chat else None
    if max_length < max(len(start), 1) + 1:
        raise DataError(f"{option('max_length')} must leave room for a prompt token and a completion token: "
                        f"at least {max(len(start), 1) + 1}, not {max_length}.")
    bare = {"add_special_tokens": False, "return_attention_mask": False, "return_token_type_ids": False,
            "verbose": False}
    prompts = tokenizer(list(data.prompts), **bare)["input_ids"]
    fulls = tokenizer([p + c for p, c in zip(data.prompts, data.completions)], **bare)["input_ids"]
    ids, labels, cuts = [], [], []
    for index, (prompt, full) in enumerate(zip(prompts, fulls)):
        completion = full[len(prompt):] if full[:len(prompt)] == prompt else \
            tokenizer(data.completions[index], **bare)["input_ids"]
        if eos is not None and completion[-1:] != [eos]:
            completion = completion + [eos]
        prompt = start + prompt
        keep = len(start) if not chat else int(prompt[:1] == [tokenizer.bos_token_id])  # never cut
        if len(prompt) <= keep or not completion:
            what = "prompt" if len(prompt) <= keep else "completion"
            raise DataError(f"Example {int(data.example_ids[index])}'s {what} has no tokens; give it some text.")
        sizes = (len(prompt), len(completion))
        completion = completion[:max_completion_tokens]
        prompt_room = max(max_length - len(completion), keep, 1)
        if len(prompt) > prompt_room:  # cut the prompt's start, after the tokens kept
            prompt = prompt[:keep] + prompt[len(prompt) - (prompt_room - keep):]
        completion = completion[:max_length - len(prompt)]
        ids.append(prompt + completion)
        labels.append([IGNORED] * len(prompt) + completion)
        cuts.append((len(prompt), sum(sizes), sizes[0] - len(prompt), sizes[1] - len(completion)))
    prompt_lengths, n_full, prompt_cut, completion_cut = np.array(cuts, dtype=np.int64).reshape(-1, 4).T
    return EncodedCompletions(example_ids=np.asarray(data.example_ids, dtype=np.int64), input_ids=ids, labels=labels,
                              prompt_lengths=prompt_lengths, n_tokens_full=n_full, prompt_tokens_cut=prompt_cut,
                              completion_tokens_cut=completion_cut, eos_added=eos is not None)


def _start_tokens(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text (Llama's BOS, BERT's [CLS]; none for GPT-2)."""
    marked = tokenizer("a", verbose=False)["input_ids"]
    bare = tokenizer("a", add_special_tokens=False, verbose=False)["input_ids"]
    for begin in range(len(marked) - len(bare) + 1):
        if marked[begin:begin + len(bare)] == bare:
            return list(marked[:begin])
    return []


def collate_completions(encoded: EncodedCompletions, pad_token_id: int | None) -> dict:
    """Right-padded training inputs (B, T): input_ids, attention_mask and labels (IGNORED on padding).

    ``pad_token_id`` None pads with 0: padded positions are masked and ignored by the loss, so any id serves.
    """
    import torch

    width = max(len(ids) for ids in encoded.input_ids)
    batch = len(encoded)
    input_ids = torch.full((batch, width), pad_token_id or 0, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)  # (B, T)
    labels = torch.full((batch, width), IGNORED, dtype=torch.long)  # (B, T)
    for row, (ids, row_labels) in enumerate(zip(encoded.input_ids, encoded.labels)):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
        labels[row, :len(ids)] = torch.tensor(row_labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def training_items(encoded: EncodedCompletions) -> list[dict]:
    """A map-style training dataset for ``transformers.Trainer``: one dict per example with ``input_ids``,
    ``attention_mask`` and completion-only ``labels`` (lists of ints). Pad batches with
    ``DataCollatorForSeq2Seq(tokenizer)``, which pads labels with -100."""
    return [{"input_ids": list(ids), "attention_mask": [1] * len(ids), "labels": list(labels)}
            for ids, labels in zip(encoded.input_ids, encoded.labels)]
