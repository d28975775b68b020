"""Persistence: Mongo repositories (tenant-scoped), GridFS files, the vector store."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from core.storage.files import FileStore
from core.storage.notifications import NotificationOutbox
from core.storage.repositories.agents import AgentRepository
from core.storage.repositories.campaigns import CampaignRepository, CampaignTargetRepository
from core.storage.repositories.conversations import ConversationRepository, MessageRepository
from core.storage.repositories.events import ActionJournal, WebhookEventRepository, WebhookRejectionRepository
from core.storage.repositories.installation import InstallationFlags
from core.storage.repositories.knowledge import KnowledgeSourceRepository
from core.storage.repositories.kommo_accounts import KommoAccountRepository
from core.storage.repositories.kommo_catalog import KommoCatalogRepository
from core.storage.repositories.lead_events import LeadStatusEventRepository
from core.storage.repositories.operators import InviteRepository, OperatorRepository
from core.storage.repositories.organizations import OrganizationRepository
from core.storage.repositories.turns import TurnRepository


@dataclass
class Storage:
    """Every repository over one database, built once per process."""

    db: AsyncDatabase
    orgs: OrganizationRepository
    operators: OperatorRepository
    invites: InviteRepository
    agents: AgentRepository
    kommo_accounts: KommoAccountRepository
    kommo_catalog: KommoCatalogRepository
    knowledge: KnowledgeSourceRepository
    conversations: ConversationRepository
    messages: MessageRepository
    events: WebhookEventRepository
    rejections: WebhookRejectionRepository
    actions: ActionJournal
    turns: TurnRepository
    files: FileStore
    notifications: NotificationOutbox
    campaigns: CampaignRepository
    campaign_targets: CampaignTargetRepository
    installation: InstallationFlags
    lead_status_events: LeadStatusEventRepository

    @classmethod
    def from_db(cls, db: AsyncDatabase) -> Storage:
        return cls(
            db=db,
            orgs=OrganizationRepository(db),
            operators=OperatorRepository(db),
            invites=InviteRepository(db),
            agents=AgentRepository(db),
            kommo_accounts=KommoAccountRepository(db),
            kommo_catalog=KommoCatalogRepository(db),
            knowledge=KnowledgeSourceRepository(db),
            conversations=ConversationRepository(db),
            messages=MessageRepository(db),
            events=WebhookEventRepository(db),
            rejections=WebhookRejectionRepository(db),
            actions=ActionJournal(db),
            turns=TurnRepository(db),
            files=FileStore(db),
            notifications=NotificationOutbox(db),
            campaigns=CampaignRepository(db),
            campaign_targets=CampaignTargetRepository(db),
            installation=InstallationFlags(db),
            lead_status_events=LeadStatusEventRepository(db),
        )
