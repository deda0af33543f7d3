"""Errors t3vis raises for bad input. Each message says what is wrong and how to fix it."""


class T3visError(Exception):
    """Base class: an error the user can fix. The CLI prints the message, not a traceback."""


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
