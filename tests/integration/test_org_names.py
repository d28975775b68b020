"""Organisation names are unique among the organisations their creator sees, like agent names in
an organisation: the CLI's operator sees all of them, a console user their own."""

from __future__ import annotations

import pytest

from core import orgs
from core.errors import AlreadyExists
from core.team.service import TeamService


async def test_org_names_are_unique_for_whoever_creates_them(storage):
    await orgs.create_org(storage, "Acme")
    with pytest.raises(AlreadyExists):
        await orgs.create_org(storage, "  Acme ")  # the same name once trimmed
    team = TeamService(storage)
    first = await team.found_org(7001, "Shop")
    with pytest.raises(AlreadyExists):
        await team.found_org(7001, "Shop")  # the same user twice: which "Shop" would /org show?
    other = await team.found_org(7002, "Shop")  # another user's own "Shop" is no concern of the first
    assert other.org.id != first.org.id
    assert [m.org.name for m in await team.memberships(7001)] == ["Shop"]
    await orgs.create_agent(storage, first.org.id, "Anna")
    with pytest.raises(AlreadyExists):
        await orgs.create_agent(storage, first.org.id, "Anna")
