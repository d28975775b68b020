"""The standard-webhook parser over every captured body in ../shared/fixtures/kommo/webhooks_form."""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

import pytest

from core.kommo.errors import InvalidWebhook
from core.kommo.intake.form import _decode_pairs_qsl, decode_pairs, parse_form
from core.kommo.intake.parser import event_data, parse_webhook
from core.kommo.intake.webhooks import IntakeEvent, WebhookIntake
from core.models.events import WebhookEvent
from core.models.kommo import AuthKind, KommoAccount
from tests.conftest import shared_path

FORM = "application/x-www-form-urlencoded"


def fixture_bodies() -> list[tuple[str, bytes, dict]]:
    folder = shared_path("fixtures", "kommo", "webhooks_form")
    out = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".body.txt"):
            meta = json.loads(path.with_name(path.name.replace(".body.txt", ".meta.json")).read_text())
            out.append((path.name, path.read_bytes(), dict(meta["parsed_pairs"])))
        elif path.name.endswith(".pairs.json"):
            data = json.loads(path.read_text())
            out.append((path.name, data["derived_body"].encode(), dict(data["pairs_in_captured_order"])))
    return out


def test_every_fixture_file_is_covered():
    names = {n for n, _, _ in fixture_bodies()}
    assert len(names) == 14  # 11 captured bodies + 3 derived message[add] bodies


@pytest.mark.parametrize("name,body,pairs", fixture_bodies(), ids=lambda v: v if isinstance(v, str) else "")
def test_fixture_parses_into_typed_events(name, body, pairs):
    parsed = parse_webhook(body, FORM)
    assert parsed.account_subdomain == pairs["account[subdomain]"]
    assert len(parsed.events) == 1
    ev = parsed.events[0]
    entity_key, action = next(k for k in pairs if not k.startswith("account")).split("[")[:2]
    action = action.rstrip("]")
    # every leaf value of the item survives the round trip, Cyrillic included
    prefix = f"{entity_key}[{action}][0]"
    for key, value in pairs.items():
        if key.startswith(prefix):
            node = ev.data
            for part in key[len(prefix):].strip("[]").split("]["):
                node = node[int(part)] if isinstance(node, list) else node[part]
            assert node == value, key
    assert ev.dedupe_key.startswith(ev.kind + ":")


def test_kinds_and_keys_per_fixture():
    kinds = {name: parse_webhook(body, FORM).events[0] for name, body, _ in fixture_bodies()}
    assert kinds["amocrm2016_company_add.body.txt"].kind == "company.add"  # companies arrive as contacts
    assert kinds["amocrm2016_contacts_restore.body.txt"].kind == "contact.restore"
    assert kinds["amocrm2016_leads_status.body.txt"].kind == "lead.status"
    assert kinds["amocrm2016_leads_responsible.body.txt"].kind == "lead.responsible"
    assert kinds["unirock2025_leads_delete.body.txt"].kind == "lead.delete"
    text = kinds["kommo2026_message_add_waba_text.pairs.json"]
    assert text.kind == "message.add" and text.lead_id == 41807269
    assert text.dedupe_key == "message.add:ae7243c7-e973-4aa5-ad43-ae3a95d74233"
    assert text.data["text"] == "Hola. Me interesa el Suzuki Grand Vitara 2015"
    voice = kinds["kommo2026_message_add_waba_voice.pairs.json"]
    assert voice.data["attachment"]["file_name"] == "file.ogg" and voice.data["text"] == ""
    cyr = kinds["unirock2021_leads_update_cyrillic.body.txt"]
    assert cyr.data["name"] == "Никита 79160000000"
    assert cyr.data["custom_fields"][2]["values"][0]["value"] == "Влада Рытова"
    assert "188\u00a0127,70 ₽ \t\n" in cyr.data["custom_fields"][3]["values"][0]["value"]
    assert cyr.dedupe_key == "lead.update:23435433:1627306719"


def test_same_lead_different_versions_have_different_keys_and_retries_the_same():
    body = fixture_bodies()
    name_to_body = {n: b for n, b, _ in body}
    a = parse_webhook(name_to_body["unirock2025_leads_add.body.txt"], FORM).events[0]
    u = parse_webhook(name_to_body["unirock2025_leads_update.body.txt"], FORM).events[0]
    assert a.dedupe_key != u.dedupe_key
    d1 = parse_webhook(name_to_body["unirock2025_leads_delete.body.txt"], FORM).events[0]
    d2 = parse_webhook(name_to_body["unirock2025_leads_delete.body.txt"], FORM).events[0]
    assert d1.dedupe_key == d2.dedupe_key  # body-hash fallback: a retry repeats it


def test_several_items_and_entities_in_one_body():
    body = urlencode([("leads[status][0][id]", "1"), ("leads[status][0][status_id]", "2"),
                      ("leads[status][0][last_modified]", "10"), ("leads[status][1][id]", "3"),
                      ("leads[status][1][last_modified]", "11"), ("message[add][0][id]", "m-1"),
                      ("message[add][0][text]", "Привет"), ("account[id]", "5"), ("account[subdomain]", "x")]).encode()
    parsed = parse_webhook(body, FORM)
    assert [e.kind for e in parsed.events] == ["lead.status", "lead.status", "message.add"]
    assert parsed.account_id == 5


def test_only_the_kinds_the_engine_handles_are_actionable():
    """Whether an event is our own write is decided later from the action journal: the parser
    keeps the author as data and decides only on the kind."""
    body = urlencode([("leads[update][0][id]", "1"), ("leads[update][0][modified_user_id]", "77"),
                      ("leads[update][0][updated_at]", "5"), ("leads[status][0][id]", "1"),
                      ("leads[status][0][status_id]", "142"), ("leads[status][0][modified_user_id]", "77"),
                      ("leads[status][0][updated_at]", "6"), ("outgoing_message[add][0][id]", "o1"),
                      ("outgoing_message[add][0][author][type]", "bot"), ("talk[update][0][talk_id]", "4"),
                      ("talk[update][0][is_in_work]", "0"), ("talk[update][0][updated_at]", "7"),
                      ("leads[add][0][id]", "2"), ("leads[add][0][updated_at]", "5"),
                      ("account[subdomain]", "x")]).encode()
    events = {e.kind: e for e in parse_webhook(body, FORM).events}
    assert {k for k, e in events.items() if e.actionable} == {"lead.status", "outgoing_message.add", "talk.update"}
    assert events["lead.update"].author_user_id == 77 and events["lead.status"].author_user_id == 77


def test_unknown_entity_is_well_formed_but_not_actionable():
    body = urlencode([("catalogs[add][0][id]", "9"), ("account[subdomain]", "x")]).encode()
    ev = parse_webhook(body, FORM).events[0]
    assert ev.kind == "catalog.add" and not ev.actionable
    odd = parse_webhook(urlencode([("widgets[install][0][id]", "9"), ("account[id]", "1")]).encode(), FORM)
    assert odd.events[0].kind == "other.widgets.install" and not odd.events[0].actionable


@pytest.mark.parametrize("body,ctype,reason", [
    (b'{"leads": 1}', "application/json", "expected form-encoded"),
    (b"leads%5Badd%5D%5B0%5D%5Bid%5D=%D0%FF&account%5Bsubdomain%5D=x", FORM, "broken encoding"),
    ("leads[add][0][id]=Привет".encode(), FORM, "non-ASCII"),
    (b"leads%5Badd%5D%5B0%5D%5Bid%5D=1", FORM, "no account"),
    (b"account%5Bsubdomain%5D=x", FORM, "no events"),
    (b"", FORM, "empty body"),
    (b"just some text", "", "not a form"),
    (b"a]b[=1&account[subdomain]=x", FORM, "malformed form key"),
])
def test_not_a_webhook_gets_a_short_reason(body, ctype, reason):
    with pytest.raises(InvalidWebhook) as err:
        parse_webhook(body, ctype)
    assert reason in err.value.reason and len(err.value.reason) < 80


def test_form_lists_and_sparse_indexes():
    assert parse_form(b"a[0]=x&a[1]=y") == {"a": ["x", "y"]}
    assert parse_form(b"a[1]=x") == {"a": {"1": "x"}}
    assert parse_form(b"a[]=x&a[]=y") == {"a": ["x", "y"]}


def _qsl_outcome(body: bytes):
    try:
        text = body.decode("ascii")
        if not text.strip():
            return "empty body"
        return _decode_pairs_qsl(text)
    except UnicodeDecodeError:
        return "body is not url-encoded (raw non-ASCII bytes)"
    except InvalidWebhook as exc:
        return exc.reason


def _fast_outcome(body: bytes):
    try:
        return decode_pairs(body)
    except InvalidWebhook as exc:
        return exc.reason


ODD_BODIES = [
    b"a=1", b"a=", b"=", b"=1", b"a=1&", b"&a=1", b"a=1&&b=2", b"a", b"a=1&b", b"a=b=c", b"a+b=c+d",
    b"a=%", b"a=%4", b"a=%4g&b=%41", b"a%=1", b"a%3D=%26", b"a=%00&b=1", b"a=\x00", b"a=%d0%b7", b"a=%D0",
    b"a=%D0&b=%97", b"a=%ff", b" ", b"a=1;b=2", b"a=%2B+%2b", b"a[0]=%E2%82%AC&a[1]=%F0%9F%98%80",
    "a=é".encode(), b"a=1\r\n&b=2", b"%5B=%5D",
]


@pytest.mark.parametrize("body", [b for _, b, _ in fixture_bodies()] + ODD_BODIES)
def test_fast_form_decoding_matches_parse_qsl(body):
    assert _fast_outcome(body) == _qsl_outcome(body)


def test_fast_form_decoding_matches_parse_qsl_on_random_bodies():
    rnd = random.Random(7)
    alphabet = ["a", "b", "=", "&", "%", "+", "0", "4", "1", "D", "d", "F", "[", "]", "%D0%B7", "%d0%b7", "%00",
                "%FF", "%2", " ", "\r", "\n", "%3D", "%26", "%25", "_", "%0A"]
    for _ in range(5000):
        body = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14))).encode()
        assert _fast_outcome(body) == _qsl_outcome(body), body
    chars = "aZ09 +=&%[]_-.~\x00\r\nЗдрав€😀\x7f"
    for _ in range(3000):  # well-formed bodies, so the fast path is the one taken
        pairs = [("".join(rnd.choice(chars) for _ in range(rnd.randint(0, 6))),
                  "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 8)))) for _ in range(rnd.randint(1, 5))]
        body = urlencode(pairs, quote_via=rnd.choice([__import__("urllib.parse").parse.quote,
                                                      __import__("urllib.parse").parse.quote_plus])).encode()
        if rnd.random() < 0.3:
            body = body.lower()
        assert _fast_outcome(body) == _qsl_outcome(body), body


def test_form_odd_indexes_stay_dicts():
    assert parse_form(b"a[00]=x") == {"a": {"00": "x"}}  # was a KeyError
    assert parse_form(b"a[0]=x&a[2]=y") == {"a": {"0": "x", "2": "y"}}
    assert parse_form(b"a[1]=y&a[0]=x") == {"a": ["x", "y"]}
    assert parse_form(b"a[0][b]=1&a[1][b]=2") == {"a": [{"b": "1"}, {"b": "2"}]}


@pytest.mark.parametrize("name,body,pairs", fixture_bodies(), ids=lambda v: v if isinstance(v, str) else "")
def test_intake_event_to_mongo_equals_the_model_dump(name, body, pairs):
    account = KommoAccount(_id="kac_1", org_id="org_1", subdomain="x", base_domain="kommo.com",
                           auth_kind=AuthKind.LONG_LIVED, secrets={}, hook_token_hash="h", account_id=1, bot_user_id=5)
    parsed = parse_webhook(body, FORM)
    for i, ev in enumerate(parsed.events):
        doc = WebhookIntake._doc(None, account, parsed, i, body, FORM)
        assert isinstance(doc, IntakeEvent)
        assert doc.to_mongo() == WebhookEvent.to_mongo(doc)
        assert list(doc.to_mongo()) == list(WebhookEvent.to_mongo(doc))
        # What the worker reads back: a validated document whose item is parsed from the raw body.
        stored = WebhookEvent.model_validate(doc.to_mongo())
        assert stored.dedupe_key == ev.dedupe_key and event_data(stored) == ev.data
        assert stored.payload["subdomain"] == parsed.account_subdomain  # the worker follows a rename by it
