"""Errors of campaigns."""

from __future__ import annotations

from core.errors import KommoAgentError


class CampaignBusy(KommoAgentError):
    """Another process is running this campaign's batch; the caller looks again later."""

    code = "campaign_busy"
