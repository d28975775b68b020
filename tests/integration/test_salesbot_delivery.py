"""Replies that reach the customer's own chat (issue 15): the Salesbot widget mode
(widget_request in over HTTP, the reply out through the single-use return_url) and the
salesbot_run mode (reply field written, then the prepared bot run), on the real engine, Mongo,
Redis and web app, with the fake Kommo as strict as its docs."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.clock import utcnow
from core.conversations.errors import RetryLater
from core.delivery_setup import DeliverySetupInvalid
from core.errors import NotFound, PermissionDenied
from core.kommo.delivery.widget import build_widget_archive
from core.kommo.intake.signatures import chats_body_signature
from core.models.agent import DeliveryMode, WorkingHours
from core.models.conversation import ConversationState
from core.models.org import Operator, Role
from core.orgs import create_agent
from tests.fakes.kommo_wire import CHANNEL_SECRET
from tests.fixtures.engine import message_body
from tests.fixtures.kommo import SALESBOT_SECRET
from web.app import create_app

WIDGET_SECRET = "widget-integration-secret-" + "7" * 40
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _owner(org_id: str) -> Operator:
    return Operator(_id="op-test", org_id=org_id, telegram_user_id=1, role=Role.OWNER, name="Owner")


def widget_jwt(fake_acc, lead_id: int, secret: str = WIDGET_SECRET, alg: str = "HS512") -> str:
    return jwt.encode({"iss": f"https://{fake_acc.subdomain}.kommo.com", "account_id": fake_acc.id,
                       "subdomain": fake_acc.subdomain, "entity_id": lead_id, "entity_type": 2, "bot_type": 1,
                       "exp": int(time.time()) + 300}, secret, algorithm=alg)


@pytest.fixture
async def web(shop):
    client = TestClient(TestServer(create_app(shop.services)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def widget_shop(shop):
    """The shop's agent in salesbot mode, set up the way `kommo delivery` does it."""
    setup = shop.services.delivery_setup()
    await setup.configure(shop.org_id, _owner(shop.org_id), shop.agent.id, DeliveryMode.SALESBOT,
                          widget_secret=WIDGET_SECRET)
    shop.engine.deps.salesbot_wait_s = 30.0
    return shop


async def _salesbot_url(shop) -> str:
    kommo = await shop.services.kommo()
    account = await shop.services.storage.kommo_accounts.for_org(shop.org_id)
    return urlsplit(kommo.connections.salesbot_url(account)).path


async def _widget_request(shop, web, text: str, *, as_form: bool = False, secret: str = WIDGET_SECRET,
                          alg: str = "HS512"):
    """Kommo's bot reaches our widget step: it POSTs the step's data, a JWT and its return_url."""
    return_url = shop.fake.open_continue(shop.fake_acc, bot_id=77, lead_id=shop.lead_id)
    token = widget_jwt(shop.fake_acc, shop.lead_id, secret, alg)
    data = {"message": text, "lead_id": str(shop.lead_id), "talk_id": "11", "contact_id": "501"}
    url = await _salesbot_url(shop)
    if as_form:
        form = [("token", token), ("return_url", return_url), *((f"data[{k}]", v) for k, v in data.items())]
        resp = await web.post(url, data=urlencode(form), headers=FORM)
    else:
        resp = await web.post(url, json={"token": token, "data": data, "return_url": return_url})
    return resp, return_url


async def _widget_request_scheduled(shop, web, text: str) -> str:
    """A widget_request with no conversation on the lead yet, past its wait for an add_message
    twin, scheduled as a turn; its return_url."""
    before = await _event_ids(shop)
    resp, return_url = await _widget_request(shop, web, text)
    assert resp.status == 200
    (event_id,) = [e.id for e in await shop.services.storage.events.list(shop.org_id) if e.id not in before]
    event = await shop.services.storage.events.get(shop.org_id, event_id)
    await shop.services.storage.events.update(shop.org_id, event_id,
                                              {"received_at": event.received_at - timedelta(seconds=10)})
    assert await shop.engine.process_event(shop.org_id, event_id) == "scheduled"
    return return_url


def _continued(shop, return_url: str) -> dict:
    return shop.fake_acc.continues[return_url.rsplit("/", 1)[-1]]


async def _process_new_events(shop, before: set[str]) -> list[str]:
    outcomes = []
    for event in await shop.services.storage.events.list(shop.org_id):
        if event.id not in before and event.kind.startswith("salesbot"):
            outcomes.append(await shop.engine.process_event(shop.org_id, event.id))
    return outcomes


async def _event_ids(shop) -> set[str]:
    return {e.id for e in await shop.services.storage.events.list(shop.org_id)}


async def test_widget_request_and_its_add_message_twin_get_exactly_one_reply(widget_shop, web):
    shop = widget_shop
    # Kommo sends the customer's message as add_message; its turn waits for the widget_request.
    msg = await shop.customer_says("Do you deliver to Kazan?")
    conv = await shop.conversation()
    with pytest.raises(RetryLater):
        await shop.engine.run_turn(shop.org_id, conv.id, msg)
    before = await _event_ids(shop)
    resp, return_url = await _widget_request(shop, web, "Do you deliver to Kazan?", as_form=True)
    assert resp.status == 200 and (await resp.json())["accepted"] == 1
    assert await _process_new_events(shop, before) == ["replied"]
    cont = _continued(shop, return_url)
    assert cont["state"] == "continued"
    shown = [h for h in cont["body"]["execute_handlers"] if h["handler"] == "show"]
    assert len(shown) == 1 and "Kazan" in shown[0]["params"]["value"]
    assert cont["body"]["data"]["reply"] == ""  # shown by the step: the bot's send step must not repeat it
    # One conversation, one customer message, one reply, no internal note, return_url used up.
    conv = await shop.conversation()
    assert conv.replies_count == 1 and conv.reply_context == {}
    msgs = await shop.services.storage.messages.list(shop.org_id, {"conversation_id": conv.id})
    assert sorted(m.role for m in msgs) == ["agent", "customer"]
    assert not shop.notes()
    # The scheduled turn of the add_message finds nothing left to answer.
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "nothing_to_answer"
    # The next message has no widget_request yet: its turn waits instead of reusing the spent URL.
    second = await shop.customer_says("And to Moscow?")
    with pytest.raises(RetryLater):
        await shop.engine.run_turn(shop.org_id, conv.id, second)
    assert sum(1 for r in shop.fake.requests if "/continue/" in r[2]) == 1


async def test_widget_request_first_then_its_twin_is_one_turn_and_long_replies_go_in_data(widget_shop, web):
    shop = widget_shop
    await shop.customer_says("Hello")  # the chat's conversation exists already
    long_text = "Please tell me everything about delivery times, prices and the assembly of the corner sofa"
    before = await _event_ids(shop)
    resp, return_url = await _widget_request(shop, web, long_text)
    assert resp.status == 200
    assert await _process_new_events(shop, before) == ["scheduled"]
    # The add_message twin arrives after it: not a second message.
    body = message_body(shop.fake_acc, "twin-1", long_text, chat_id="chat-1", lead_id=shop.lead_id)
    for event_id in await shop.event(body):
        assert await shop.engine.process_event(shop.org_id, event_id) == "twin_of_widget_request"
    conv = await shop.conversation()
    unanswered = await shop.services.storage.messages.unanswered(shop.org_id, conv.id)
    last = unanswered[-1]
    assert [m.text for m in unanswered].count(long_text) == 1
    assert await shop.engine.run_turn(shop.org_id, conv.id, last.id) == "replied"
    cont = _continued(shop, return_url)
    assert len(cont["body"]["data"]["reply"]) > 80 and "assembly" in cont["body"]["data"]["reply"]
    assert not [h for h in cont["body"]["execute_handlers"] if h["handler"] == "show"]


async def test_a_turn_without_a_reply_still_continues_the_bot(widget_shop, web):
    shop = widget_shop
    closed = WorkingHours(timezone="UTC", days={(utcnow().weekday() + 1) % 7: ("09:00", "10:00")})
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"working_hours": closed.model_dump()})
    return_url = await _widget_request_scheduled(shop, web, "Are you open?")
    conv = await shop.services.storage.conversations.by_key(shop.org_id, f"lead:{shop.lead_id}")
    (message,) = await shop.services.storage.messages.unanswered(shop.org_id, conv.id)
    assert await shop.engine.run_turn(shop.org_id, conv.id, message.id) == "skipped:out_of_hours"
    cont = _continued(shop, return_url)
    assert cont["state"] == "continued"  # the bot is not left waiting on the lead
    assert cont["body"] == {"data": {"reply": "", "status": "out_of_hours"}, "execute_handlers": []}
    assert (await shop.services.storage.conversations.get(shop.org_id, conv.id)).reply_context == {}
    # A redelivered turn does not continue it twice (Kommo would refuse a spent continue id).
    assert await shop.engine.run_turn(shop.org_id, conv.id, message.id) == "nothing_to_answer"
    assert sum(1 for r in shop.fake.requests if "/continue/" in r[2]) == 1


async def test_widget_jwt_is_checked_with_the_connections_secret_not_the_global_one(widget_shop, web):
    shop = widget_shop
    resp, _ = await _widget_request(shop, web, "Hi", secret=SALESBOT_SECRET)
    assert resp.status == 400 and "signature" in (await resp.json())["error"]
    for alg in ("HS512", "HS256"):  # both algorithms of the allowlist, chosen by the header
        resp, _ = await _widget_request(shop, web, f"Hi ({alg})", alg=alg)
        assert resp.status == 200 and (await resp.json())["accepted"] == 1
    resp, _ = await _widget_request(shop, web, "Hi", alg="HS384")
    assert resp.status == 400 and "algorithm" in (await resp.json())["error"]


async def test_salesbot_mode_without_a_widget_request_hands_off_after_a_bounded_wait_with_one_alert(widget_shop):
    shop = widget_shop
    shop.engine.deps.salesbot_wait_s = 0.2
    for chat in ("chat-a", "chat-b"):
        msg = await shop.customer_says("Hello?", chat_id=chat)
        conv = await shop.conversation(chat)
        old = utcnow() - timedelta(seconds=5)
        await shop.services.storage.conversations.update(shop.org_id, conv.id, {"last_customer_at": old})
        assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "handed_off"
        conv = await shop.conversation(chat)
        assert conv.state == ConversationState.HANDED_OFF
    alerts = [a for a in await shop.services.storage.notifications.pending(shop.org_id) if a["kind"] == "reply_failed"]
    assert len(alerts) == 1 and "widget_request" in alerts[0]["params"]["error"]


async def test_salesbot_run_set_by_kommo_delivery_gets_one_reply_per_turn(shop, fake_llm):
    setup = shop.services.delivery_setup()
    result = await setup.configure(shop.org_id, _owner(shop.org_id), shop.agent.id, DeliveryMode.SALESBOT_RUN,
                                   bot_id=77, create_field=True)
    field_id = result.created_field_id
    for n, text in enumerate(("Is the blue sofa in stock?", "How long is delivery?"), 1):
        msg = await shop.customer_says(text)
        conv = await shop.conversation()
        assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"
        assert len(shop.fake_acc.bot_runs) == n
        run = shop.fake_acc.bot_runs[-1]
        assert (run["bot_id"], run["entity_id"], run["endpoint"]) == (77, shop.lead_id, "v4")
        written = {f["field_id"]: f["values"][0]["value"] for f in run["lead_fields"]}
        assert text in written[field_id]  # the field held this turn's reply when the bot ran
    assert not shop.notes()  # nothing went to internal notes
    # An account without the v4 run endpoint: the v2 fallback takes it.
    shop.fake_acc.bots_v4 = False
    msg = await shop.customer_says("And the warranty?")
    assert await shop.engine.run_turn(shop.org_id, (await shop.conversation()).id, msg) == "replied"
    assert shop.fake_acc.bot_runs[-1]["endpoint"] == "v2" and len(shop.fake_acc.bot_runs) == 3


async def test_salesbot_run_with_a_deleted_bot_gives_one_alert_and_a_handoff(shop):
    setup = shop.services.delivery_setup()
    await setup.configure(shop.org_id, _owner(shop.org_id), shop.agent.id, DeliveryMode.SALESBOT_RUN,
                          bot_id=77, field_id=501)
    del shop.fake_acc.bots[77]  # an admin deleted the bot in Kommo
    for chat in ("chat-x", "chat-y"):
        msg = await shop.customer_says(f"Price of the blue chair? ({chat})", chat_id=chat)
        conv = await shop.conversation(chat)
        assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "delivery_failed"
        conv = await shop.conversation(chat)
        assert conv.state == ConversationState.HANDED_OFF and conv.state_reason == "delivery_failed"
        assert any(chat in n["params"]["text"] and "chair" in n["params"]["text"] for n in shop.notes()), \
            "the reply is kept for a human"
    alerts = [a for a in await shop.services.storage.notifications.pending(shop.org_id) if a["kind"] == "reply_failed"]
    assert len(alerts) == 1 and "Salesbot 77" in alerts[0]["params"]["error"]
    assert not shop.fake_acc.bot_runs
    # Re-running the set-up with a working bot makes a new set-up: its breakage would alert again.
    shop.fake_acc.bots[90] = {"id": 90, "name": "New sender", "is_active": True}
    await setup.configure(shop.org_id, _owner(shop.org_id), shop.agent.id, DeliveryMode.SALESBOT_RUN,
                          bot_id=90, field_id=501)
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {"state": ConversationState.BOT_ACTIVE})
    msg = await shop.customer_says("Still there?", chat_id="chat-y")
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"
    assert shop.fake_acc.bot_runs[-1]["bot_id"] == 90
    # Switched off in Kommo later: refused by both endpoints, the new set-up's one alert.
    shop.fake_acc.bots[90]["is_active"] = False
    for chat in ("chat-z", "chat-w"):
        msg = await shop.customer_says(f"Hello from {chat}", chat_id=chat)
        assert await shop.engine.run_turn(shop.org_id, (await shop.conversation(chat)).id, msg) == "delivery_failed"
    alerts = [a for a in await shop.services.storage.notifications.pending(shop.org_id) if a["kind"] == "reply_failed"]
    assert len(alerts) == 2 and "Salesbot 90" in alerts[-1]["params"]["error"]
    assert len(shop.fake_acc.bot_runs) == 1


async def test_widget_archive_describes_exactly_the_request_the_route_accepts(widget_shop, web):
    shop = widget_shop
    kommo = await shop.services.kommo()
    account = await shop.services.storage.kommo_accounts.for_org(shop.org_id)
    archive = zipfile.ZipFile(io.BytesIO(build_widget_archive(kommo.connections.salesbot_url(account),
                                                              account.host)))
    names = set(archive.namelist())
    assert {"manifest.json", "script.js", "i18n/ru.json", "i18n/en.json", "i18n/es.json",
            "images/logo_min.png", "images/logo_medium.png", "images/logo_main.png", "images/logo.png"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert {"settings", "salesbot_designer"} <= set(manifest["locations"])
    assert manifest["widget"]["locale"] == ["en", "ru", "es"]
    handler_codes = [k for k, v in manifest["salesbot_designer"].items() if isinstance(v, dict) and "name" in v]
    assert len(handler_codes) == 1
    for lang in ("ru", "en", "es"):
        i18n = json.loads(archive.read(f"i18n/{lang}.json"))
        assert i18n["widget"]["name"] and i18n["salesbot"]["step_name"]
    for name in names:
        if name.endswith(".png"):
            assert archive.read(name).startswith(b"\x89PNG\r\n\x1a\n")
    script = archive.read("script.js").decode()
    assert "onSalesbotDesignerSave" in script
    step = json.loads(re.search(r"var WIDGET_REQUEST_STEP = (.*);\n", script).group(1))
    (handler,) = step[0]["question"]
    assert handler["handler"] == "widget_request"
    params = handler["params"]
    assert urlsplit(params["url"]).path == await _salesbot_url(shop)
    assert params["data"] == {"message": "{{message_text}}", "lead_id": "{{lead.id}}", "talk_id": "{{talk_id}}",
                              "contact_id": "{{contact.id}}"}
    # Kommo fills the placeholders and posts the step's data: the route takes exactly that.
    filled = {"{{message_text}}": "Is the sofa available?", "{{lead.id}}": str(shop.lead_id),
              "{{talk_id}}": "11", "{{contact.id}}": "501"}
    data = {k: filled[v] for k, v in params["data"].items()}
    return_url = shop.fake.open_continue(shop.fake_acc, lead_id=shop.lead_id)
    resp = await web.post(urlsplit(params["url"]).path,
                          json={"token": widget_jwt(shop.fake_acc, shop.lead_id), "data": data,
                                "return_url": return_url})
    assert resp.status == 200 and (await resp.json())["accepted"] == 1
    (event,) = [e for e in await shop.services.storage.events.list(shop.org_id) if e.kind.startswith("salesbot")]
    assert event.payload["lead_id"] == shop.lead_id and event.payload["data"]["message"] == "Is the sofa available?"
    assert event.payload["data"]["talk_id"] == "11"


async def test_chats_api_only_for_our_own_channel_and_foreign_chats_hooks_take_nothing_over(shop):
    setup = shop.services.delivery_setup()
    with pytest.raises(DeliverySetupInvalid) as refused:
        await setup.configure(shop.org_id, _owner(shop.org_id), shop.agent.id, DeliveryMode.CHATS_API)
    assert refused.value.code == "delivery_chats_unavailable"
    assert (await shop.services.storage.agents.get(shop.org_id, shop.agent.id)).delivery_mode == DeliveryMode.NOTE_DRAFT
    account = await shop.services.storage.kommo_accounts.for_org(shop.org_id)
    scope = shop.fake.scope_id(shop.fake_acc)
    await shop.services.storage.kommo_accounts.update(shop.org_id, account.id, {"chats_scope_id": scope})
    await setup.configure(shop.org_id, _owner(shop.org_id), shop.agent.id, DeliveryMode.CHATS_API)

    await shop.customer_says("Hi there", chat_id="chat-own")  # a chat the bot is running
    kommo = await shop.services.kommo()

    async def manager_writes(chat_id: str, msg_id: str) -> str:
        body = json.dumps({"account_id": shop.fake_acc.amojo_id, "time": int(time.time()), "message": {
            "receiver": {"id": "cust", "client_id": "c-1"}, "sender": {"id": "mgr", "name": "Manager"},
            "conversation": {"id": chat_id, "client_id": "conv-1"}, "timestamp": int(time.time()),
            "message": {"id": msg_id, "type": "text", "text": "I will take this one"}}}).encode()
        result = await kommo.intake.chats(scope, body, chats_body_signature(body, CHANNEL_SECRET))
        return await shop.engine.process_event(shop.org_id, result.event_ids[0])

    assert await manager_writes("chat-of-another-channel", "k-1") == "not_our_conversation"
    assert await shop.services.storage.conversations.by_key(shop.org_id, "chat:chat-of-another-channel") is None
    assert (await shop.conversation("chat-own")).state == ConversationState.BOT_ACTIVE
    assert await manager_writes("chat-own", "k-2") == "handed_off"
    assert (await shop.conversation("chat-own")).state == ConversationState.HANDED_OFF


async def test_delivery_setup_refuses_what_cannot_work_and_saves_nothing(shop):
    setup = shop.services.delivery_setup()
    owner = _owner(shop.org_id)
    shop.fake_acc.bots[88] = {"id": 88, "name": "Draft bot", "is_active": False}
    cases = [(dict(bot_id=77, field_id=502), "delivery_field_invalid"),  # numeric: cannot carry a reply
             (dict(bot_id=77, field_id=999), "delivery_field_invalid"),  # not in Kommo
             (dict(bot_id=88, create_field=True), "delivery_bot_disabled"),
             (dict(bot_id=77, field_id=501, create_field=True), "delivery_field_conflict"),
             (dict(field_id=501), "delivery_bot_missing")]
    for choices, code in cases:
        with pytest.raises(DeliverySetupInvalid) as refused:
            await setup.configure(shop.org_id, owner, shop.agent.id, DeliveryMode.SALESBOT_RUN, **choices)
        assert refused.value.code == code, choices
    assert [f["name"] for f in shop.fake_acc.custom_fields["leads"]].count("AI reply") == 1  # nothing created
    account = await shop.services.storage.kommo_accounts.for_org(shop.org_id)
    assert (account.salesbot_bot_id, account.reply_field_id, account.delivery_version) == (None, None, 0)
    # salesbot mode needs the widget's integration secret when the deployment has no client secret of its own.
    bare = type(setup)(storage=shop.services.storage, kommo=shop.services.kommo, keyring=shop.services.keyring,
                       global_widget_secret=False)
    with pytest.raises(DeliverySetupInvalid) as no_secret:
        await bare.configure(shop.org_id, owner, shop.agent.id, DeliveryMode.SALESBOT)
    assert no_secret.value.code == "delivery_widget_secret_missing"
    with pytest.raises(DeliverySetupInvalid) as bad_secret:
        await bare.configure(shop.org_id, owner, shop.agent.id, DeliveryMode.SALESBOT, widget_secret="two words")
    assert bad_secret.value.code == "delivery_widget_secret_invalid"
    assert (await shop.services.storage.agents.get(shop.org_id, shop.agent.id)).delivery_mode == DeliveryMode.NOTE_DRAFT
    # A viewer may not change delivery.
    viewer = Operator(_id="op-v", org_id=shop.org_id, telegram_user_id=2, role=Role.VIEWER, name="Vic")
    with pytest.raises(PermissionDenied):
        await setup.configure(shop.org_id, viewer, shop.agent.id, DeliveryMode.NOTE_DRAFT)


async def test_widget_requests_that_cannot_be_answered_are_refused_clearly(widget_shop, web):
    shop = widget_shop
    url = await _salesbot_url(shop)
    return_url = shop.fake.open_continue(shop.fake_acc, lead_id=shop.lead_id)
    customer_token = jwt.encode({"account_id": shop.fake_acc.id, "entity_id": 5, "entity_type": 12,
                                 "exp": int(time.time()) + 300}, WIDGET_SECRET, algorithm="HS512")
    resp = await web.post(url, json={"token": customer_token, "data": {"message": "hi"}, "return_url": return_url})
    assert resp.status == 400 and "no lead" in (await resp.json())["error"]
    foreign = return_url.replace(f"{shop.fake_acc.subdomain}.kommo.com", "evil.example")
    resp = await web.post(url, json={"token": widget_jwt(shop.fake_acc, shop.lead_id), "data": {"message": "hi"},
                                     "return_url": foreign})
    assert resp.status == 400 and "host" in (await resp.json())["error"]
    resp = await web.post(url, data=b"token=&return_url=", headers=FORM)
    assert resp.status == 400
    assert not [e for e in await shop.services.storage.events.list(shop.org_id) if e.kind.startswith("salesbot")]


async def test_the_agent_is_found_by_id_or_name_and_an_ambiguous_choice_is_refused(shop):
    setup = shop.services.delivery_setup()
    assert (await setup.find_agent(shop.org_id, None)).id == shop.agent.id  # the org's only agent
    other = await create_agent(shop.services.storage, shop.org_id, "Support", "Help.")
    assert (await setup.find_agent(shop.org_id, "support")).id == other.id
    assert (await setup.find_agent(shop.org_id, shop.agent.id)).id == shop.agent.id
    with pytest.raises(DeliverySetupInvalid) as ambiguous:
        await setup.find_agent(shop.org_id, None)
    assert ambiguous.value.code == "delivery_agent_ambiguous" and "Support" in ambiguous.value.params["agents"]
    with pytest.raises(NotFound):
        await setup.find_agent(shop.org_id, "Nobody")


async def test_salesbot_run_never_set_up_alerts_once_and_hands_off(shop):
    """An agent switched to salesbot_run elsewhere (the agent wizard) before the bot and field
    were chosen: each turn hands off with its draft, the operators get one alert."""
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": "salesbot_run"})
    for chat in ("chat-p", "chat-q"):
        msg = await shop.customer_says(f"Price of the oak table? ({chat})", chat_id=chat)
        assert await shop.engine.run_turn(shop.org_id, (await shop.conversation(chat)).id, msg) == "delivery_failed"
        assert (await shop.conversation(chat)).state == ConversationState.HANDED_OFF
        assert any(chat in n["params"]["text"] and "oak" in n["params"]["text"] for n in shop.notes())
    alerts = [a for a in await shop.services.storage.notifications.pending(shop.org_id) if a["kind"] == "reply_failed"]
    assert len(alerts) == 1 and "kommo delivery" in alerts[0]["params"]["error"]
    # Set up now: the next turn goes out through the bot.
    await shop.services.delivery_setup().configure(shop.org_id, _owner(shop.org_id), shop.agent.id,
                                                   DeliveryMode.SALESBOT_RUN, bot_id=77, field_id=501)
    conv = await shop.conversation("chat-q")
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {"state": ConversationState.BOT_ACTIVE})
    msg = await shop.customer_says("And the chairs?", chat_id="chat-q")
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"
    assert len(shop.fake_acc.bot_runs) == 1


async def test_a_conversation_closed_by_kommo_continues_its_waiting_bot(widget_shop, web):
    """A lead won while its Salesbot waits on our return_url: the bot is continued, not left hanging."""
    from tests.integration.test_kommo_lead_events import status_body  # noqa: PLC0415 - one body builder

    shop = widget_shop
    return_url = await _widget_request_scheduled(shop, web, "I'll take the sofa")
    for status_event in await shop.event(status_body(shop.fake_acc, shop.lead_id, 142, 4001)):
        assert await shop.engine.process_event(shop.org_id, status_event) == "closed:lead_won"
    cont = _continued(shop, return_url)
    assert cont["state"] == "continued"
    assert cont["body"]["data"] == {"reply": "", "status": "closed_lead_won"}
    conv = await shop.services.storage.conversations.by_key(shop.org_id, f"lead:{shop.lead_id}")
    assert conv.state == ConversationState.CLOSED and conv.reply_context == {}
