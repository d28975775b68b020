"""Build the agent runtime from the process's core services (the lead wires it in services)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.ai.llm import LLMClient
from core.usage.metering import UsageMeter
from core.ai.retrieval.translation import LLMQueryTranslator
from core.ai.answer.runtime import AgentRuntime
from core.ai.types import Retriever

if TYPE_CHECKING:  # core.services imports this module; a runtime import would be circular
    from core.services import CoreServices


def known_secrets(settings) -> list[str]:
    """Every configured secret value, so the runtime can redact them verbatim from prompts and
    replies (pattern-based redaction catches the usual shapes; this catches the rest)."""
    values = [settings.llm.api_key, settings.embeddings.api_key, settings.qdrant.api_key,
              settings.telegram.bot_token, settings.kommo.client_secret, settings.secrets.keys]
    return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def build_llm(services: CoreServices) -> LLMClient | None:
    """The metered LLM client, or None when LLM_API_KEY is empty."""
    settings = services.settings
    return LLMClient(settings.llm, meter=UsageMeter(services.storage.usage)) if settings.llm.enabled else None


def build_translator(services: CoreServices, llm: LLMClient | None) -> LLMQueryTranslator | None:
    """Query translation for retrieval: on when an LLM is configured, unless switched off."""
    settings = services.settings.knowledge
    if llm is None or not settings.translate_queries:
        return None
    return LLMQueryTranslator(llm, timeout_s=settings.translation_timeout_s)


def build_runtime(services: CoreServices, retriever: Retriever, *, llm: LLMClient | None = None) -> AgentRuntime:
    """The runtime over `services`; no LLM client when LLM_API_KEY is empty (extractive mode)."""
    settings = services.settings
    if llm is None:
        llm = build_llm(services)
    return AgentRuntime(retriever=retriever, catalog=services.storage.kommo_catalog, llm=llm,
                        secrets=known_secrets(settings))
