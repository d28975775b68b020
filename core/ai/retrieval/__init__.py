"""Retrieval: a question in -> ranked chunks of one agent's knowledge out (dense, keyword,
names/numbers and cross-lingual signals fused; optional LLM query translation)."""
