"""Progress bars for long operator commands: shown on a terminal, silent in logs and CI.

One helper for every management command that does long work (backups, restores, reports,
evaluations), so they look and behave alike:

    from common.progress import progress

    with progress("encrypting", total=size, unit="B") as bar:
        for chunk in chunks:
            ...
            bar.update(len(chunk))

    for item in progress.iterate(items, "evaluating"):
        ...

The bar goes to stderr, so a command's stdout (what scripts read) is unchanged. It is drawn
only when stderr is a terminal and ``CI`` is not set; otherwise every call is a no-op, so
cron jobs, Celery tasks and CI logs never fill with carriage returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Silent:
    def update(self, amount: float = 1) -> None:
        pass

    def set_description(self, description: str) -> None:
        pass


class Progress:
    """Callable as a context manager; ``iterate`` wraps an iterable."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = enabled

    def _shown(self) -> bool:
        return on_terminal(self.stream) if self.enabled is None else self.enabled

    @contextmanager
    def __call__(self, description: str, *, total: float | None = None, unit: str = "it"):
        if not self._shown():
            yield _Silent()
            return
        bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024 if unit == "B" else 1000,
            file=self.stream or sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )
        try:
            yield bar
        finally:
            bar.close()

    def iterate(
        self, items: Iterable[T], description: str, *, total: int | None = None
    ) -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)
        with self(description, total=total) as bar:
            for item in items:
                yield item
                bar.update(1)


# The shared instance: stderr, shown on a terminal only.
progress = Progress()
# For services called outside a command (Celery tasks): never drawn.
silent = Progress(enabled=False)
