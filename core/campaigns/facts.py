"""What a lead's placeholders may use: contact name, lead name, price, responsible manager and
the custom fields of the lead and its main contact (keys normalised by `template.fact_key`)."""

from __future__ import annotations

from typing import Any

from core.campaigns.template import fact_key

BASE_KEYS = {"name", "first_name", "last_name", "lead_name", "price", "manager", "tags"}


def main_contact_id(lead: dict[str, Any]) -> int | None:
    contacts = (lead.get("_embedded") or {}).get("contacts") or []
    main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
    return int(main["id"]) if main and main.get("id") else None


def lead_tags(lead: dict[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in (lead.get("_embedded") or {}).get("tags") or [] if t.get("name")]


def _fields(entity: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in entity.get("custom_fields_values") or []:
        values = [str(v.get("value")) for v in field.get("values") or [] if v.get("value") not in (None, "")]
        if values and field.get("field_name"):
            out[fact_key(field["field_name"])] = ", ".join(values)
    return out


def lead_facts(lead: dict[str, Any], contact: dict[str, Any] | None, users: dict[int, str]) -> dict[str, Any]:
    contact = contact or {}
    facts: dict[str, Any] = {**_fields(contact), **_fields(lead)}
    full = str(contact.get("name") or "").strip()
    first = str(contact.get("first_name") or "").strip() or (full.split()[0] if full else "")
    last = str(contact.get("last_name") or "").strip() or (" ".join(full.split()[1:]) if full else "")
    facts.update(name=full or first, first_name=first, last_name=last, lead_name=lead.get("name") or "",
                 price=lead.get("price") or "", manager=users.get(lead.get("responsible_user_id") or 0, ""),
                 tags=", ".join(lead_tags(lead)))
    return {k: v for k, v in facts.items() if v not in (None, "")}
