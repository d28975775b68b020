"""What every handler, getter and filter can ask for by name: the dispatcher's workflow data
(built once in `bot/main.py`) and what the actor middleware adds per update."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from core.agents.service import AgentAdmin
from core.config import TelegramSettings
from core.models.org import Operator, Organization
from core.notifications.delivery import NotificationDelivery
from core.services import CoreServices
from core.team.profiles import ConsoleProfile
from core.team.service import Membership, TeamService
from core.testchat.service import TestChatService

if TYPE_CHECKING:
    from bot.progress import ProgressBoard


class ConsoleDeps(TypedDict):
    """Dispatcher workflow data: built once per process."""

    services: CoreServices
    team: TeamService
    agents: AgentAdmin
    delivery: NotificationDelivery
    telegram_settings: TelegramSettings
    test_chat: TestChatService
    progress: ProgressBoard


class Actor(TypedDict):
    """Set by `ActorMiddleware` for every update from a user."""

    profile: ConsoleProfile
    membership: Membership | None
    operator: Operator | None  # None: not in any organisation yet (onboarding)
    org: Organization | None
