"""`kommo-agent`: the one entry point for every process and admin operation."""

from __future__ import annotations

import click

from cli import admin, ask, campaign, conversation, doctor, keys, knowledge, kommo, notifications, processes, team


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kommo-agent", prog_name="kommo-agent")
def main() -> None:
    """Kommo Agent: a trainable virtual sales employee for Kommo CRM."""


for group in (admin.org, admin.agent, keys.keys, kommo.kommo, knowledge.knowledge, knowledge.eval_group,
              ask.ask, campaign.campaign, conversation.conversation, notifications.notifications, team.team,
              doctor.doctor):
    main.add_command(group)
for command in processes.COMMANDS:
    main.add_command(command)
