"""`kommo-agent kommo ...`: connect an org to Kommo, show its status, sync, get an OAuth link."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import run_with_services
from core.errors import InvalidInput


async def _service(services):
    return await services.kommo()


@click.group()
def kommo() -> None:
    """Kommo connection: connect, status, sync, oauth-url."""


@kommo.command()
@click.option("--org", "org_id", required=True, help="Organisation id")
@click.option("--subdomain", required=True,
              help="acme, acme.kommo.com, acme.amocrm.ru or the account address pasted from the browser")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the long-lived token (kept out of shell history)")
def connect(org_id: str, subdomain: str, token_file: Path) -> None:
    """Connect with a long-lived token: checks it, syncs, registers our webhook (or prints the
    URL to paste into Kommo when it cannot)."""
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise click.ClickException(f"cannot read token file: {exc.strerror}") from None

    async def job(services):
        if await services.storage.orgs.get(org_id) is None:
            raise InvalidInput(f"no organisation {org_id}")
        return await (await _service(services)).connections.connect_long_lived(org_id, subdomain, token)

    result = run_with_services(job)
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


@kommo.command()
@click.option("--org", "org_id", required=True)
def status(org_id: str) -> None:
    """Connection state, token expiry, last sync and catalog size."""

    async def job(services):
        account = await services.storage.kommo_accounts.for_org(org_id)
        if account is None:
            return None
        pipelines = await services.storage.kommo_catalog.pipelines(org_id)
        users = await services.storage.kommo_catalog.users(org_id)
        return account, len(pipelines), len(users)

    found = run_with_services(job)
    if found is None:
        raise click.ClickException(f"organisation {org_id} has no Kommo connection")
    account, pipelines, users = found
    click.echo(f"account:    {account.host} ({account.auth_kind.value})")
    click.echo(f"status:     {account.status.value}" + (f" - {account.status_reason}" if account.status_reason else ""))
    click.echo(f"expires:    {account.expires_at or 'never (long-lived)'}")
    click.echo(f"last sync:  {account.last_sync_at or 'never'}; {pipelines} pipelines, {users} users")


@kommo.command()
@click.option("--org", "org_id", required=True)
def sync(org_id: str) -> None:
    """Re-read pipelines, stages, users and fields now."""

    async def job(services):
        return await (await _service(services)).sync_org(org_id)

    s = run_with_services(job)
    click.echo(f"synced: {s.pipelines} pipelines, {s.stages} stages, {s.users} users, {s.fields} fields")


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
