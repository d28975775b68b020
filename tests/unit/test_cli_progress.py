"""CLI progress: plain text with the figures off a terminal, rich's bar (with rate and ETA) on one."""

from __future__ import annotations

import io

from rich.console import Console

from cli.progress import ProgressLine, eta_text, plain_bar


def test_plain_progress_shows_counts_and_eta(capsys):
    with ProgressLine("prices.csv", live=False) as line:
        line.update(130, 250, 40)
    err = capsys.readouterr().err
    assert "[###############" in err and "130/250" in err and "~0:40 left" in err
    assert plain_bar(0, 0) == "[" + "." * 30 + "] 0/0" and eta_text(None) == ""


def test_live_bar_draws_rate_and_remaining_time():
    line = ProgressLine("prices.csv", live=True, console=Console(file=io.StringIO(), force_terminal=True, width=120))
    with line:
        line.update(10, 100)
        line.update(50, 100)
        task = line._progress.tasks[0]
        assert (task.completed, task.total) == (50, 100)
        columns = [type(c).__name__ for c in line._progress.columns]
    assert {"BarColumn", "MofNCompleteColumn", "_Rate", "TimeRemainingColumn"} <= set(columns)
