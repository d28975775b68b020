"""Builders of the AI area's services from explicit dependencies (the composition root calls them)."""

from __future__ import annotations

from core.ai.answer.runtime import AgentRuntime
from core.ai.llm import LLMClient
from core.ai.retrieval.translation import LLMQueryTranslator
from core.ai.types import Retriever
from core.config import KnowledgeSettings, LLMSettings, Settings
from core.storage.repositories.kommo_catalog import KommoCatalogRepository
from core.usage.metering import UsageMeter


def known_secrets(settings: Settings) -> list[str]:
    """Every configured secret value, so the runtime can redact them verbatim from prompts and
    replies (pattern-based redaction catches the usual shapes; this catches the rest)."""
    values = [settings.llm.api_key, settings.embeddings.api_key, settings.qdrant.api_key,
              settings.telegram.bot_token, settings.kommo.client_secret, settings.secrets.keys]
    return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def build_llm(settings: LLMSettings, meter: UsageMeter | None) -> LLMClient | None:
    """The metered LLM client, or None when LLM_API_KEY is empty."""
    return LLMClient(settings, meter=meter) if settings.enabled else None


def build_translator(settings: KnowledgeSettings, llm: LLMClient | None) -> LLMQueryTranslator | None:
    """Query translation for retrieval: on when an LLM is configured, unless switched off."""
    if llm is None or not settings.translate_queries:
        return None
    return LLMQueryTranslator(llm, timeout_s=settings.translation_timeout_s)


def build_runtime(retriever: Retriever, *, catalog: KommoCatalogRepository, llm: LLMClient | None,
                  secrets: list[str]) -> AgentRuntime:
    """The agent runtime; without an LLM client it answers from extracts."""
    return AgentRuntime(retriever=retriever, catalog=catalog, llm=llm, secrets=secrets)
