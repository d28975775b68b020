"""`kommo-agent kommo ...`: connect an org to Kommo, show its status, sync, get an OAuth link."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import run_with_services
from cli.output import emit_json, json_option
from cli.texts import LANGUAGES, error_text, text
from core.errors import InvalidInput, KommoAgentError
from core.models.agent import DeliveryMode
from core.models.org import Operator, Role

MODES = [m.value for m in DeliveryMode]
LANG = click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True,
                    help="Language of the texts for the operator and the Kommo admin")


def _shell_owner(org_id: str) -> Operator:
    """Whoever runs the CLI on the server administers every organisation on it."""
    return Operator(_id="cli", org_id=org_id, telegram_user_id=0, role=Role.OWNER, name="kommo-agent CLI")


def _explained(language: str, exc: KommoAgentError) -> click.ClickException:
    return click.ClickException(error_text(language, exc) or str(exc))


def reach_words(language: str, agent) -> str:
    """Whether an agent's replies reach customers, in words (status, connect)."""
    if not agent.reaches_customer:
        return text(language, "reach.no")
    if agent.missing:
        return text(language, "reach.blocked",
                    problems="; ".join(text(language, f"problem.{p}") for p in agent.missing))
    return text(language, "reach.yes")


async def _deliveries(services, org_id: str):
    from core.kommo_admin import KommoAdmin  # noqa: PLC0415 - keeps `--help` fast

    return await KommoAdmin(services).status(org_id, _shell_owner(org_id))


async def _service(services):
    return await services.kommo()


@click.group()
def kommo() -> None:
    """Kommo connection: connect, status, delivery, widget, sync, rotate-hook-token, oauth-url."""


@kommo.command()
@click.option("--org", "org_id", required=True, help="Organisation id")
@click.option("--subdomain", required=True,
              help="acme, acme.kommo.com, acme.amocrm.ru or the account address pasted from the browser")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the long-lived token (kept out of shell history)")
@LANG
def connect(org_id: str, subdomain: str, token_file: Path, lang: str) -> None:
    """Connect with a long-lived token: checks it, syncs, registers our webhook (or prints the
    URL to paste into Kommo when it cannot)."""
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise click.ClickException(f"cannot read token file: {exc.strerror}") from None

    async def job(services):
        if await services.storage.orgs.get(org_id) is None:
            raise InvalidInput(f"no organisation {org_id}")
        connected = await (await _service(services)).connections.connect_long_lived(org_id, subdomain, token)
        return connected, await _deliveries(services, org_id)

    result, status = run_with_services(job)
    click.echo(f"connected: {result.account.host} (account {result.account.account_id})")
    if result.sync:
        s = result.sync
        click.echo(f"synced: {s.pipelines} pipelines, {s.stages} stages, {s.users} users, {s.fields} fields")
    else:
        click.echo(f"sync failed (will retry periodically): {result.sync_error}")
    if result.webhook_registered:
        click.echo(f"webhook registered in Kommo: {result.webhook_url}")
    else:
        click.echo(f"webhook not registered automatically: {result.webhook_note}")
        click.echo(f"paste this URL into Kommo > Settings > Integrations > Web hooks: {result.webhook_url}")
    silent = [a.name for a in status.agents if not a.reaches_now]
    if silent:
        click.echo(text(lang, "kommo.warn_not_reaching", agents=", ".join(silent), org=org_id), err=True)


@kommo.command()
@click.option("--org", "org_id", required=True)
@LANG
@json_option
def status(org_id: str, lang: str, as_json: bool) -> None:
    """Connection state, token expiry, last sync, and per agent its delivery mode and whether
    its replies reach customers (the Salesbot checked live in Kommo)."""

    async def job(services):
        account = await services.storage.kommo_accounts.for_org(org_id)
        return None if account is None else (account, await _deliveries(services, org_id))

    found = run_with_services(job)
    if found is None:
        raise click.ClickException(f"organisation {org_id} has no Kommo connection")
    account, st = found
    if as_json:
        emit_json({"account": account.host, "auth": account.auth_kind.value, "status": account.status.value,
                   "status_reason": account.status_reason, "expires_at": account.expires_at,
                   "last_sync_at": account.last_sync_at, "pipelines": st.pipelines, "users": st.users,
                   "webhook_url": st.webhook_url,
                   "agents": [{"id": a.agent_id, "name": a.name, "mode": a.mode.value,
                               "reaches_customer": a.reaches_customer, "problems": list(a.missing),
                               "in_words": reach_words(lang, a)} for a in st.agents]})
        return
    click.echo(f"account:    {account.host} ({account.auth_kind.value})")
    click.echo(f"status:     {account.status.value}" + (f" - {account.status_reason}" if account.status_reason else ""))
    click.echo(f"expires:    {account.expires_at or 'never (long-lived)'}")
    click.echo(f"last sync:  {account.last_sync_at or 'never'}; {st.pipelines} pipelines, {st.users} users")
    click.echo(f"webhook:    {st.webhook_url or '(reconnect to get one)'}")
    if not st.agents:
        click.echo("agents:     none yet")
    for agent in st.agents:
        click.echo(f"agent:      {agent.name} [{agent.agent_id}]: {agent.mode.value}: {reach_words(lang, agent)}")


@kommo.command()
@click.option("--org", "org_id", required=True)
def sync(org_id: str) -> None:
    """Re-read pipelines, stages, users and fields now."""

    async def job(services):
        return await (await _service(services)).sync_org(org_id)

    s = run_with_services(job)
    click.echo(f"synced: {s.pipelines} pipelines, {s.stages} stages, {s.users} users, {s.fields} fields")


@kommo.command("rotate-hook-token")
@click.option("--org", "org_id", required=True)
def rotate_hook_token(org_id: str) -> None:
    """A new secret webhook URL (the old one stops working): registered in Kommo where the
    token may, else printed with the events to tick in Kommo's settings."""

    async def job(services):
        return await (await _service(services)).connections.rotate_hook_token(org_id)

    result = run_with_services(job)
    if result.registered:
        click.echo(f"webhook URL rotated and registered in Kommo: {result.webhook_url}")
        if result.note:
            click.echo(result.note)
    else:
        click.echo(f"webhook URL rotated; not registered automatically: {result.note}")
        click.echo(f"paste this URL into Kommo > Settings > Integrations > Web hooks: {result.webhook_url}")
    click.echo("events to tick: " + ", ".join(result.events))
    click.echo("the old webhook URL no longer works")


@kommo.command("oauth-url")
@click.option("--org", "org_id", required=True)
@click.option("--operator", default="cli", help="Who asked for the link (bound into the state)")
@click.option("--domain", type=click.Choice(["kommo.com", "amocrm.ru"]), default=None,
              help="The account's domain (default: the connected account's, else KOMMO_DEFAULT_BASE_DOMAIN)")
def oauth_url(org_id: str, operator: str, domain: str | None) -> None:
    """Print a single-use OAuth link (valid 15 minutes)."""

    async def job(services):
        return await (await _service(services)).oauth.authorize_url(org_id, operator, domain=domain)

    click.echo(run_with_services(job))


@kommo.command()
@click.option("--org", "org_id", required=True)
@click.option("--agent", "agent_ref", default=None, help="Agent id or name (optional when the org has one agent)")
@click.option("--mode", required=True, type=click.Choice(MODES),
              help="salesbot_run: a prepared bot sends the reply field; salesbot: our widget step in a Salesbot; "
                   "chats_api: only this project's own chat channel; note_draft: a draft in an internal note "
                   "for a manager to copy (customers see nothing)")
@click.option("--bot-id", type=int, default=None, help="salesbot_run: the id of the Salesbot that sends the reply")
@click.option("--field-id", type=int, default=None, help="salesbot_run: a text/textarea lead field for the reply")
@click.option("--create-field", is_flag=True, help="salesbot_run: create a textarea lead field \"AI reply\" and use it")
@click.option("--widget-secret-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="salesbot: file holding the secret key of the integration that holds our widget")
@LANG
def delivery(org_id: str, agent_ref: str | None, mode: str, bot_id: int | None, field_id: int | None,
             create_field: bool, widget_secret_file: Path | None, lang: str) -> None:
    """Choose how an agent's replies reach customers, checked against the live Kommo account
    before saving; then print the steps for the Kommo admin."""
    secret = None
    if widget_secret_file is not None:
        try:
            secret = widget_secret_file.read_text().strip()
        except OSError as exc:
            raise click.ClickException(f"cannot read the widget secret file: {exc.strerror}") from None

    async def job(services):
        if await services.storage.orgs.get(org_id) is None:
            raise InvalidInput(f"no organisation {org_id}")
        setup = services.delivery_setup()
        try:
            agent = await setup.find_agent(org_id, agent_ref)
            return await setup.configure(org_id, _shell_owner(org_id), agent.id, DeliveryMode(mode), bot_id=bot_id,
                                         field_id=field_id, create_field=create_field, widget_secret=secret)
        except KommoAgentError as exc:
            raise _explained(lang, exc) from None

    result = run_with_services(job)
    reach = text(lang, "reach.yes" if result.reaches_customer else "reach.no")
    click.echo(f"saved: {result.agent_name}: {result.mode.value}: {reach}")
    if result.created_field_id:
        click.echo(f"created lead field \"AI reply\": {result.created_field_id}")
    for code, params in result.steps:
        click.echo("")
        click.echo(text(lang, f"steps.{code}", **params))


@kommo.command()
@click.option("--org", "org_id", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the widget archive (widget.zip)")
def widget(org_id: str, out: Path) -> None:
    """Build the Kommo widget archive whose Salesbot step calls this deployment (widget_request)."""
    from core.kommo.delivery.widget import build_widget_archive  # noqa: PLC0415 - keeps `--help` fast

    async def job(services):
        account = await services.storage.kommo_accounts.for_org(org_id)
        if account is None:
            raise InvalidInput(f"organisation {org_id} has no Kommo connection: connect first")
        kommo = await _service(services)
        return build_widget_archive(kommo.connections.salesbot_url(account), account.host)

    archive = run_with_services(job)
    try:
        out.write_bytes(archive)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"widget archive written: {out} ({len(archive)} bytes)")
    click.echo("upload it in Kommo > Settings > Integrations > Create integration, then run "
               f"kommo-agent kommo delivery --org {org_id} --mode salesbot --widget-secret-file FILE")
