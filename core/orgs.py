"""Organisation and agent administration (used by the CLI now and the Telegram console later)."""

from __future__ import annotations

from core.errors import AlreadyExists, InvalidInput, NotFound
from core.ids import new_id
from core.models.agent import Agent
from core.models.org import Organization
from core.storage import Storage

MAX_NAME = 100
MAX_INSTRUCTIONS = 20_000


def _clean_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput(f"{what} name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} name is longer than {MAX_NAME} characters")
    return name


async def create_org(storage: Storage, name: str, language: str = "ru", *,
                     names_in_use: list[str] | None = None) -> Organization:
    """A new organisation. Its name is unique among the organisations its creator sees, as an
    agent's is in its organisation: `names_in_use` are those (a console user's own organisations);
    None means every organisation (the CLI's operator sees them all)."""
    name = _clean_name(name, "organisation")
    if names_in_use is None:
        names_in_use = [o.name for o in await storage.orgs.list_all()]
    if name in names_in_use:
        raise AlreadyExists(f"an organisation named {name!r} already exists", name=name)
    return await storage.orgs.create(name, language=language)


async def require_org(storage: Storage, org_id: str) -> Organization:
    org = await storage.orgs.get(org_id)
    if org is None:
        raise NotFound(f"organisation {org_id!r} not found", org_id=org_id)
    return org


async def create_agent(storage: Storage, org_id: str, name: str, instructions: str = "", **config) -> Agent:
    await require_org(storage, org_id)
    name = _clean_name(name, "agent")
    if len(instructions) > MAX_INSTRUCTIONS:
        raise InvalidInput(f"instructions are longer than {MAX_INSTRUCTIONS} characters")
    if await storage.agents.by_name(org_id, name):
        raise AlreadyExists(f"an agent named {name!r} already exists in this organisation", name=name)
    agent = Agent(_id=new_id("agt"), org_id=org_id, name=name, instructions=instructions, **config)
    return await storage.agents.insert(org_id, agent)

