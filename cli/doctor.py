"""`kommo-agent doctor`: what is wrong with this installation and what to do about it."""

from __future__ import annotations

import json
import sys

import click

from cli.common import run_with_services
from core.config import agent_home
from core.diagnostics import OK, PROBLEM, WARNING, Doctor

_MARK = {OK: "ok", WARNING: "warn", PROBLEM: "FAIL"}
_COLOUR = {OK: "green", WARNING: "yellow", PROBLEM: "red"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON")
def doctor(as_json: bool) -> None:
    """Check settings, MongoDB, Redis, Qdrant, the LLM, Kommo connections and the bot token.

    Prints what to fix; exits 1 when something is broken (warnings alone exit 0)."""
    home, origin = agent_home()
    findings = run_with_services(lambda s: Doctor(s).run())
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in findings], ensure_ascii=False))
    else:
        click.echo(f"home: {home} ({origin})")
        for f in findings:
            mark = click.style(f"{_MARK[f.level]:>4}", fg=_COLOUR[f.level])
            click.echo(f"{mark}  {f.part}: {f.detail}")
            if f.fix and f.level != OK:
                click.echo(f"      fix: {f.fix}")
    sys.exit(1 if any(f.level == PROBLEM for f in findings) else 0)
