"""/team through the real dispatcher: roles changed and members removed with confirmation; the
last owner can be neither removed nor demoted; an admin cannot make owners; a viewer sees the
team but no invite button."""

from __future__ import annotations

from core.models.org import Role
from tests.fixtures.telegram import add_member, org_with_owner, user


async def test_roles_removal_and_the_last_owner(console, console_services):
    storage = console_services.storage
    owner, bob, vera = user(6001, language_code="en", first_name="Olga"), user(6002, first_name="Bob"), \
        user(6003, language_code="en", first_name="Vera")
    membership = await org_with_owner(console_services, owner, "Acme")
    org_id = membership.org.id
    bob_op = await add_member(console_services, org_id, bob, Role.EDITOR)
    await add_member(console_services, org_id, vera, Role.VIEWER)

    await console.send(owner, "/team")
    assert "Team: 3 members" in console.text(owner)
    # The last owner cannot demote themselves.
    await console.click(owner, "Olga")
    await console.click(owner, "Change role")
    await console.click(owner, "viewer")
    assert "last owner" in console.text(owner)
    assert (await storage.operators.get(org_id, membership.operator.id)).role == Role.OWNER
    # Nor remove themselves.
    await console.click(owner, "Back")
    await console.click(owner, "Remove from the team")
    await console.click(owner, "Yes, remove")
    assert "last owner" in console.text(owner)
    # Bob becomes an admin, then is removed after confirmation.
    await console.click(owner, "Back")
    await console.click(owner, "Back")
    await console.click(owner, "Bob")
    await console.click(owner, "Change role")
    await console.click(owner, "admin")
    assert (await storage.operators.get(org_id, bob_op.id)).role == Role.ADMIN
    await console.click(owner, "Remove from the team")
    assert "Remove Bob from Acme?" in console.text(owner)
    await console.click(owner, "Yes, remove")
    assert await storage.operators.get(org_id, bob_op.id) is None

    # A viewer sees the list, without the invite button.
    await console.send(vera, "/team")
    assert "Team: 2 members" in console.text(vera)
    assert not [b for b in console.fake.last(vera.id).buttons() if "Invite" in b["text"]]
