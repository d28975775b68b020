"""The `kommo-agent` entry point: Ctrl-C works from the first moment, even while the commands
(and the libraries they load, a few seconds on a busy machine) are still being imported."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from cli.main import main  # noqa: PLC0415 - guarded: an interrupt here is a plain exit
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)
    main()
