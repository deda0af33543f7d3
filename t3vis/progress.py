"""Progress reporting for long work: ``progress(phase, done, total)`` callbacks.

The library reports; the CLI shows tqdm bars and the app shows ``st.progress``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str, int, int], None]


def no_progress(phase: str, done: int, total: int) -> None:
    """A progress callback that shows nothing."""


@contextmanager
def tqdm_progress(*, disable: bool = False) -> Iterator[Progress]:
    """A progress callback that draws one tqdm bar per phase; bars are closed on exit."""
    from tqdm.auto import tqdm

    bars: dict[str, tqdm] = {}

    def report(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(total=total, desc=phase, disable=disable, leave=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield report
    finally:
        for bar in bars.values():
            bar.close()
