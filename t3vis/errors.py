"""Errors t3vis raises for bad input. Each message says what is wrong and how to fix it.

A message that names a setting writes it with :func:`option`, so that it reads in the caller's words:
``label_column=`` for the Python API and the Trainer callback (``str(error)``), ``--label-column``
for the CLI (:meth:`T3visError.for_cli`).
"""

from __future__ import annotations

import re
from pathlib import Path

_OPEN, _SEP, _CLOSE = "\ue000", "\ue001", "\ue002"  # private-use characters: never in a message's own text
_OPTION = re.compile(f"{_OPEN}([^{_SEP}]*){_SEP}([^{_SEP}]*){_SEP}([^{_CLOSE}]*){_CLOSE}")


def option(name: str, value: object = None, *, flag: str | None = None) -> str:
    """A setting named in an error message: ``name`` is the Python parameter, ``flag`` the CLI option
    (default ``--name-with-dashes``), ``value`` an optional example value."""
    flag = flag or "--" + name.replace("_", "-")
    shown = "" if value is None else repr(value)
    return f"{_OPEN}{name}{_SEP}{flag}{_SEP}{shown}{_CLOSE}"


def why_unwritable(folder: str | Path, error: OSError) -> str:
    """Why ``folder`` could not be made or written, in a few words for a message: the part of its path
    that is a file, or the system's reason (e.g. "Permission denied")."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists():
            return f"{part} is a file, not a folder" if not part.is_dir() else (error.strerror or str(error))
    return error.strerror or str(error)


def _python_words(match: re.Match) -> str:
    name, _, value = match.groups()
    return f"{name}={value}" if value else f"`{name}`"


def _cli_words(match: re.Match) -> str:
    _, flag, value = match.groups()
    value = value.strip("'\"") if value else ""
    return f"{flag} {value}" if value else flag


def for_python(message: str) -> str:
    """A message with its settings named as Python parameters."""
    return _OPTION.sub(_python_words, message)


def for_cli(message: str) -> str:
    """A message with its settings named as CLI options."""
    return _OPTION.sub(_cli_words, message)


class T3visError(Exception):
    """Base class: an error the user can fix. The CLI prints the message, not a traceback."""

    def __str__(self) -> str:
        return for_python(super().__str__())

    def for_cli(self) -> str:
        """The message with its settings named as the CLI's options."""
        return for_cli(super().__str__())


class DataError(T3visError):
    """A dataset file or column that cannot be used as given."""


class ModelError(T3visError):
    """A model, tokenizer or checkpoint that cannot be used as given."""


class StoreError(T3visError):
    """A store file that cannot be opened or written."""


class SchemaVersionError(StoreError):
    """A store written by another schema version of t3vis."""


class StoreLockedError(StoreError):
    """Another process held the store for longer than the lock timeout."""
