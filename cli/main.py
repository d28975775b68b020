"""`kommo-agent`: the one entry point for every process and admin operation."""

from __future__ import annotations

import click

from cli import admin, keys, processes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Kommo Agent: a trainable virtual sales employee for Kommo CRM."""


for group in (admin.org, admin.agent, keys.keys):
    main.add_command(group)
for command in processes.COMMANDS:
    main.add_command(command)


def _register_optional() -> None:
    """Areas register their own command groups here (kommo, knowledge, ask, eval, campaign)."""
    import importlib

    for module_name, attrs in (
        ("cli.kommo", ("kommo",)),
        ("cli.knowledge", ("knowledge", "eval_group")),
        ("cli.ask", ("ask",)),
        ("cli.campaign", ("campaign",)),
        ("cli.conversation", ("conversation",)),
        ("cli.notifications", ("notifications",)),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for attr in attrs:
            if hasattr(module, attr):
                main.add_command(getattr(module, attr))


_register_optional()
