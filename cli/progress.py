"""Live progress for ``-w`` commands: rich bars on a terminal, plain lines (only on change) otherwise."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class LiveProgress:
    """Named bars (``update(name, done, total)``); falls back to printing lines when not a terminal."""

    def __init__(self, stream: TextIO | None = None, force_plain: bool = False) -> None:
        stream = stream or sys.stdout
        self.plain = force_plain or not stream.isatty()
        self._last: dict[str, tuple[int, int, str]] = {}
        self._bars: dict[str, TaskID] = {}
        self._progress = (
            None
            if self.plain
            else Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=Console(file=stream),
            )
        )

    def __enter__(self) -> LiveProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, name: str, done: int, total: int, note: str = "") -> None:
        if self._last.get(name) == (done, total, note):
            return
        self._last[name] = (done, total, note)
        if self._progress is None:
            click.echo(f"{name}: {done}/{total}{'  ' + note if note else ''}")
            return
        if name not in self._bars:
            self._bars[name] = self._progress.add_task(name, total=max(total, 1), note=note)
        self._progress.update(self._bars[name], completed=done, total=max(total, 1), note=note)

    def message(self, text: str) -> None:
        if self._progress is None:
            click.echo(text)
        else:
            self._progress.console.print(text)
