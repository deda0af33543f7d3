"""What every task's training capture shares: the list of batches kept since the last flush, and how a distributed
launch hands them between processes."""

from __future__ import annotations


class KeptBatches:
    """The batches a :class:`~t3vis.record.task.TrainingCapture` kept (``self._batches``, set by the subclass)."""

    _batches: list

    @property
    def pending(self) -> int:
        """Batches kept since the last flush."""
        return len(self._batches)

    def clear(self) -> None:
        """Forget the kept batches (a new epoch begins)."""
        self._batches.clear()

    def take_batches(self) -> list:
        """The kept batches, forgotten here (a distributed launch sends them to the main process)."""
        batches, self._batches = self._batches, []
        return batches

    def add_batches(self, batches: list) -> None:
        """Keep batches another process took (the main process of a distributed launch flushes them all)."""
        self._batches.extend(batches)
