from datetime import UTC, datetime

import pytest

from core.conversations.errors import AgentTie
from core.conversations.hours import is_within_hours
from core.conversations.routing import pick_agent
from core.errors import InvalidInput
from core.models.agent import Agent, WorkingHours


def agent(name, pipeline=None, stages=(), enabled=True):
    return Agent(_id=name, org_id="o", name=name, pipeline_id=pipeline, stage_ids=list(stages), enabled=enabled)


def test_unscoped_agent_answers_everything():
    assert pick_agent([agent("a")], None, None).name == "a"
    assert pick_agent([agent("a")], 5, 55).name == "a"


def test_scoped_beats_unscoped_and_scope_is_respected():
    agents = [agent("all"), agent("sales", 5, [51, 52]), agent("support", 6)]
    assert pick_agent(agents, 5, 51).name == "sales"
    assert pick_agent(agents, 5, 59).name == "all"
    assert pick_agent(agents, 6, 1).name == "support"
    assert pick_agent([agent("sales", 5, [51])], 5, 99) is None
    assert pick_agent([agent("off", enabled=False)], None, None) is None


def test_ties_are_errors():
    with pytest.raises(AgentTie) as err:
        pick_agent([agent("a"), agent("b")], 1, 1)
    assert "a, b" in str(err.value)
    with pytest.raises(AgentTie):
        pick_agent([agent("x", 5), agent("y", 5, [51])], 5, 51)


def test_working_hours():
    always = WorkingHours()
    assert is_within_hours(always, datetime(2026, 11, 28, 3, tzinfo=UTC))
    office = WorkingHours(timezone="Europe/Moscow", days={0: ("09:00", "18:00"), 4: ("20:00", "02:00")})
    monday_10_msk = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert is_within_hours(office, monday_10_msk)
    assert not is_within_hours(office, datetime(2026, 11, 23, 16, 0, tzinfo=UTC))  # 19:00 MSK
    assert not is_within_hours(office, datetime(2026, 11, 24, 7, 0, tzinfo=UTC))  # Tuesday: day off
    assert is_within_hours(office, datetime(2026, 11, 27, 18, 30, tzinfo=UTC))  # Fri 21:30 MSK overnight
    with pytest.raises(InvalidInput):
        is_within_hours(WorkingHours(timezone="Mars/Base", days={0: ("09:00", "18:00")}), monday_10_msk)
