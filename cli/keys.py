"""`kommo-agent keys rotate`: add a master key and re-encrypt every stored secret."""

from __future__ import annotations

import asyncio

import click

from cli.common import run_with_services
from core.config import load_settings
from core.security.keyring import REFRESH_S, KeyFile, load_keyring
from core.security.rotation import reencrypt_all


@click.group()
def keys() -> None:
    """Master keys for stored secrets."""


@keys.command("rotate")
def rotate() -> None:
    """With a key file: add a new primary key, then re-encrypt. With SECRETS_KEYS: put the new
    key first in SECRETS_KEYS yourself, then run this to re-encrypt under it."""
    settings = load_settings()
    if settings.secrets.keys:
        ring = load_keyring(settings.secrets.keys.get_secret_value(), settings.key_file)
        click.echo(f"SECRETS_KEYS is set: re-encrypting under its first key {ring.primary!r}")
    else:
        key_file = KeyFile(settings.key_file)
        load_keyring(None, settings.key_file, create=True)
        # Under the file's lock: a concurrent rotation adds its key to ours instead of losing it.
        # The file keeps the old keys, so secrets not yet re-encrypted stay readable.
        ring, kid = key_file.add_primary()
        click.echo(f"added key {kid!r} to {settings.key_file} (old keys kept for reading; running "
                   "processes switch to it within a second)")

    async def job(services):
        first = await reencrypt_all(services.storage.db, ring)
        # A process that encrypted with the old primary just before it noticed the new file
        # (within REFRESH_S) left an old envelope: a second pass after that window catches it.
        await asyncio.sleep(REFRESH_S + 0.5)
        second = await reencrypt_all(services.storage.db, ring)
        first.reencrypted += second.reencrypted
        return first

    report = run_with_services(job, settings)
    click.echo(f"re-encrypted {report.reencrypted} secret(s) in {report.documents} document(s); "
               f"{report.already_current} already under the primary key")
