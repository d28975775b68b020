"""The console's catalogs: every message id the code uses is translated in ru and en (es too for
the main flows), with the same `{placeholders}` in every language."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.commands import COMMANDS
from bot.errors_text import _BY_CODE
from bot.i18n import LOCALES_DIR, build_i18n
from bot.notify import NOTIFICATION_KINDS
from core.agents.service import EDITABLE
from core.models.agent import AgentAction, DeliveryMode
from core.models.campaign import CampaignStatus
from core.models.knowledge import SourceKind, SourceStatus
from core.models.org import Role

BOT = Path(__file__).resolve().parents[2] / "bot"
_LITERAL = re.compile(r"""\b(?:T|_|gettext)\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']""")
MAIN_FLOWS = ("nav.", "menu.", "onboarding.", "orgs.", "team.", "agents.", "wizard.", "kommo.", "error.", "notify.",
              "command.", "help.", "lang.", "role.", "delivery.", "action.", "testchat.", "knowledge.", "teach.",
              "approval.", "campaigns.")


def used_ids() -> set[str]:
    ids = set()
    for path in BOT.rglob("*.py"):
        ids |= {i for i in _LITERAL.findall(path.read_text()) if not i.endswith(("_", "."))}  # not prefixes
    ids |= set(_BY_CODE.values())
    # Ids the code builds from a value (f"role.{role}"): every value it can take.
    ids |= {f"role.{r.value}" for r in Role} | {f"action.{a.value}" for a in AgentAction}
    ids |= {f"delivery.{m.value}" for m in DeliveryMode} | {f"field.{f}" for f in EDITABLE}
    ids |= {f"kind.{k}" for k in NOTIFICATION_KINDS} | {f"notify.{k}" for k in NOTIFICATION_KINDS}
    ids |= {f"command.{c}" for c in COMMANDS} | {f"language.{c}" for c in ("mirror", "ru", "en", "es", "pt")}
    ids |= {f"kommo.health_{h}" for h in ("ok", "expires_soon", "expired", "needs_reauth", "blocked")}
    ids |= {"kommo.auth_long_lived", "kommo.auth_oauth", "notify.other"}
    ids |= {f"approval.status_{s}" for s in ("sending", "sent", "editing", "rejecting", "rejected")}
    ids |= {f"campaigns.status_{s.value}" for s in CampaignStatus}
    ids |= {f"campaigns.report_{s}" for s in ("done", "cancelled", "failed")}
    ids |= {f"approval.ok_{d}" for d in ("send", "edit", "reject")}
    ids |= {f"knowledge.kind_{k.value}" for k in SourceKind} | {f"knowledge.status_{s.value}" for s in SourceStatus}
    return ids


def catalog(language: str) -> dict[str, str]:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return {m.id: m.string for m in read_po(fp) if m.id}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", ["ru", "en"])
def test_every_message_id_is_translated(language):
    translated = {k for k, v in catalog(language).items() if v.strip()}
    missing = sorted(used_ids() - translated)
    assert not missing, f"{language} lacks translations for: {missing}"


def test_spanish_covers_the_main_flows():
    translated = {k for k, v in catalog("es").items() if v.strip()}
    missing = sorted(i for i in used_ids() - translated if i.startswith(MAIN_FLOWS))
    assert not missing, f"es lacks: {missing}"


def test_placeholders_agree_between_languages():
    en = catalog("en")
    for language in ("ru", "es"):
        for msgid, text in catalog(language).items():
            if msgid in en and text:
                assert fields(text) <= fields(en[msgid]) | {"org_name"}, (language, msgid)


def test_catalogs_compile_and_translate_at_run_time():
    i18n = build_i18n()
    assert set(i18n.available_locales) == {"ru", "en", "es"}
    assert i18n.gettext("menu.agents", locale="ru") == "🤖 Агенты"
    assert i18n.gettext("menu.agents", locale="xx") == "🤖 Agents"  # unknown language: English
