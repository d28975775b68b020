"""Progress of long CLI work: a rich bar with rate and ETA on a terminal, plain lines otherwise.

Piped or redirected output gets the plain `[####....] 52/250 ~0:40 left` text (scripts and tests
read it, and rich draws nothing off a terminal until the end); a terminal gets rich's live bar.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn


def plain_bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f" ~{minutes}:{secs:02d} left"


class _Rate(TransferSpeedColumn):
    """Items per second (rich's transfer column speaks bytes)."""

    def render(self, task):
        speed = task.finished_speed or task.speed
        from rich.text import Text  # noqa: PLC0415 - only when a bar is drawn

        return Text(f"{speed:.1f}/s" if speed else "", style="progress.data.speed")


class ProgressLine:
    """One unit of work's progress (`update(done, total, eta_s)`), drawn as fits the terminal."""

    def __init__(self, title: str, unit: str = "chunks", live: bool | None = None,
                 console: Console | None = None) -> None:
        self.title, self.unit = title[:40], unit
        self.console = console
        self.live = sys.stderr.isatty() if live is None else live
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressLine:
        if self.live:
            self._progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn(self.unit), _Rate(), TimeRemainingColumn(),
                                      console=self.console or Console(stderr=True), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=None)
        return self

    def update(self, done: int, total: int, eta_s: float | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total or None)
            return
        click.echo(f"\r  {self.title:40s} {plain_bar(done, total)}{eta_text(eta_s)}   ", nl=False, err=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
