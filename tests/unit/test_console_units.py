"""Pure pieces of the console: locale tags to console languages, working hours as typed,
splitting long texts, per-chat pacing, and the update builders against real update shapes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.messages import split_text
from bot.session import ChatPacingMiddleware
from core.agents.errors import AgentFieldInvalid
from core.agents.hours import format_hours, parse_hours
from core.languages import operator_language
from tests.conftest import shared_path
from tests.fixtures.telegram import callback_update, message_update, user


@pytest.mark.parametrize(("tag", "expected"), [
    ("ru", "ru"), ("en-US", "en"), ("es-419", "es"), ("uk", "ru"), ("pt-BR", "es"), ("it", "en"), (None, "en"),
    ("", "en"), ("kk", "ru"), ("EN_gb", "en")])
def test_operator_language(tag, expected):
    assert operator_language(tag) == expected


def test_hours_round_trip_and_errors():
    hours = parse_hours("1-5 09:00-18:00, 6 10:00-14:00 Europe/Madrid")
    assert hours.timezone == "Europe/Madrid" and hours.days[0] == ("09:00", "18:00") and hours.days[5] == ("10:00", "14:00")
    assert 6 not in hours.days
    assert format_hours(hours) == "1-5 09:00-18:00, 6 10:00-14:00 Europe/Madrid"
    assert parse_hours("24/7", "Europe/Moscow").days == {} and format_hours(parse_hours("24/7")) == "24/7"
    with pytest.raises(AgentFieldInvalid) as bad:
        parse_hours("weekdays nine to five")
    assert bad.value.code == "hours_invalid"
    with pytest.raises(AgentFieldInvalid) as zone:
        parse_hours("1-5 09:00-18:00 Mars/Olympus")
    assert zone.value.code == "timezone_invalid"
    with pytest.raises(AgentFieldInvalid):
        parse_hours("5-1 09:00-18:00")


def test_split_text_respects_the_limit_and_line_breaks():
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(300))
    parts = split_text(text, 4096)
    assert all(len(p) <= 4096 for p in parts) and len(parts) == 5
    assert "".join(p.replace("\n", "") for p in parts) == text.replace("\n", "")
    assert all(p.startswith("line ") for p in parts)
    assert split_text("short") == ["short"] and split_text("y" * 9000, 4096)[0] == "y" * 4096


async def test_pacing_allows_a_burst_then_one_per_interval():
    pacing = ChatPacingMiddleware(interval_s=0.1, burst=2)
    times = []
    for _ in range(5):
        await pacing._wait_turn(7)
        times.append(time.monotonic())
    assert times[1] - times[0] < 0.05  # the burst
    gaps = [b - a for a, b in zip(times[1:], times[2:], strict=False)]
    assert all(g >= 0.08 for g in gaps)
    start = time.monotonic()
    await asyncio.gather(pacing._wait_turn(8), pacing._wait_turn(9))
    assert time.monotonic() - start < 0.05


def test_builders_match_real_update_shapes():
    real_message = json.loads(shared_path("fixtures", "telegram", "nutgram", "Updates", "command.json").read_text())
    real_callback = json.loads(shared_path("fixtures", "telegram", "nutgram", "Updates",
                                           "callback_query.json").read_text())
    ours = message_update(user(1), "/start", 5)
    assert set(real_message["message"]) <= set(ours["message"]) | {"entities"}
    assert set(real_message["message"]["from"]) <= set(ours["message"]["from"]) | {"username", "last_name"}
    cb = callback_update(user(1), ours["message"], "x")
    assert set(real_callback["callback_query"]) == set(cb["callback_query"])
