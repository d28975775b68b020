"""Onboarding through the real dispatcher: a new user founds an organisation, invites a
colleague by a single-use link; expired and reused links are refused."""

from __future__ import annotations

from datetime import timedelta

from core.clock import utcnow
from core.models.org import Role
from core.team.service import TeamService, invite_payload
from tests.fixtures.telegram import user


async def member(services, org_id, u):
    found = await services.storage.operators.list(org_id, {"telegram_user_id": u.id})
    return found[0] if found else None


async def test_new_user_founds_an_org_and_becomes_its_owner(console, console_services):
    anna = user(1001, language_code="ru")
    await console.send(anna, "/start")
    assert "Kommo Agent" in console.text(anna)
    await console.click(anna, "Создать организацию")
    await console.send(anna, "Acme Furniture")
    assert "Acme Furniture" in console.text(anna) and "владелец" in console.text(anna)
    memberships = await console_services.storage.operators.memberships(anna.id)
    assert [m.role for m in memberships] == [Role.OWNER]
    org = await console_services.storage.orgs.get(memberships[0].org_id)
    assert org.name == "Acme Furniture"
    # Returning user: /start shows the main menu, command menu set for their chat in Russian.
    await console.send(anna, "/start")
    assert "Acme Furniture" in console.text(anna)
    scoped = [c for c in console.fake.calls_of("setMyCommands") if c.params.get("scope", {}).get("chat_id") == anna.id]
    assert scoped and scoped[-1].params["commands"][0]["description"] == "Главное меню"


async def test_invite_link_is_single_use_and_expires(console, console_services):
    owner, bob, carl = user(2001, language_code="en"), user(2002, language_code="en"), user(2003, language_code="en")
    await console.send(owner, "/start")
    await console.click(owner, "Create an organisation")
    await console.send(owner, "Acme")
    await console.click(owner, "Team")
    await console.click(owner, "Invite a colleague")
    await console.click(owner, "editor")
    text = console.text(owner)
    link = next(w for w in text.split() if w.startswith("https://t.me/"))
    payload = link.split("start=", 1)[1]
    assert len(payload) <= 64
    await console.send(bob, f"/start {payload}")
    assert "Welcome to Acme" in console.fake.chat(bob.id)[-2].text
    org_id = (await console_services.storage.operators.memberships(owner.id))[0].org_id
    bob_op = await member(console_services, org_id, bob)
    assert bob_op.role == Role.EDITOR
    # Reused by someone else: refused, nobody added.
    await console.send(carl, f"/start {payload}")
    assert "already used" in console.text(carl)
    assert await member(console_services, org_id, carl) is None
    # An expired link: refused with its own reason.
    admin = await member(console_services, org_id, owner)
    team = TeamService(console_services.storage)
    invite = await team.create_invite(org_id, admin, Role.VIEWER)
    await console_services.storage.invites.update(org_id, invite.id, {"expires_at": utcnow() - timedelta(minutes=1)})
    await console.send(carl, f"/start {invite_payload(invite)}")
    assert "expired" in console.text(carl)
    # A forged payload: refused.
    await console.send(carl, "/start inv-" + "0" * 20 + "-" + "x" * 22)
    assert "not valid" in console.text(carl)
