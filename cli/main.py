"""`kommo-agent`: the one entry point for every process and admin operation.

Every error is printed the same way (`error: <what>` and what to do, no traceback); arguments
that are not valid UTF-8 are refused in one line; `--org` and `--agent` take an id or a name on
every command (`cli/refs.py`).
"""

from __future__ import annotations

import sys

import click

from cli import (
    admin,
    ask,
    campaign,
    chat,
    conversation,
    doctor,
    eval_answers,
    keys,
    knowledge,
    kommo,
    notifications,
    processes,
    refs,
    report,
    team,
)
from core.config import agent_home


class _Main(click.Group):
    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        home, origin = agent_home()
        formatter.write_paragraph()
        formatter.write_text(f"Home: {home} ({origin}); its .env is read from there, wherever you run this.")

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        args = list(sys.argv[1:] if args is None else args)
        for n, arg in enumerate(args, start=1):
            if any("\udc80" <= ch <= "\udcff" for ch in arg):
                click.echo(f"error: argument {n} is not valid UTF-8; check the terminal's encoding "
                           "(e.g. LANG=C.UTF-8) or rename the file", err=True)
                sys.exit(2)
        try:
            super().main(args=args, prog_name=prog_name or "kommo-agent", standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("\ninterrupted", err=True)
            sys.exit(130)
        sys.exit(0)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kommo-agent", prog_name="kommo-agent")
def main() -> None:
    """Kommo Agent: a trainable virtual sales employee for Kommo CRM."""


for group in (admin.org, admin.agent, keys.keys, kommo.kommo, knowledge.knowledge, knowledge.eval_group,
              ask.ask, campaign.campaign, conversation.conversation, notifications.notifications, team.team,
              doctor.doctor, report.report, chat.chat):
    main.add_command(group)
assert eval_answers.eval_answers.name in knowledge.eval_group.commands  # registered on import
for command in processes.COMMANDS:
    main.add_command(command)
refs.accept_names(main)
