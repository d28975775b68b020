"""`kommo-agent team`: the console's team rules from the shell (a real subprocess on the test
Mongo): invite prints a /start link a user can claim, the last owner cannot be demoted."""

from __future__ import annotations

import os
import subprocess
import sys

from core.models.org import Role
from core.team.service import TeamService


def _run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "team", *args], cwd=env["DATA_DIR"], env=env,
                          capture_output=True, text=True, timeout=120)


async def test_team_cli_invites_and_keeps_the_last_owner(storage, mongo_url, redis_url, tmp_path, keyring):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "SECRETS_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
               SECRETS_KEYS="k1:" + "A" * 43 + "=", PYTHONPATH=os.getcwd())
    team = TeamService(storage)
    owner = await team.found_org(9001, "Acme", operator_name="Olga")
    out = _run(env, "invite", "--org", owner.org.id, "--role", "viewer", "--bot", "acme_bot")
    assert out.returncode == 0, out.stderr
    payload = out.stdout.strip().split("start=", 1)[1]
    joined = await team.accept_invite(payload, 9002, "Vic")
    assert joined.operator.role == Role.VIEWER and joined.org.id == owner.org.id
    listed = _run(env, "list", "--org", owner.org.id)
    assert "owner" in listed.stdout and "viewer" in listed.stdout
    refused = _run(env, "role", "--org", owner.org.id, owner.operator.id, "admin")
    assert refused.returncode == 1 and "last owner" in refused.stderr + refused.stdout
