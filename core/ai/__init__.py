"""The knowledge base and the agent: ingest -> encoders -> retrieval -> answer, plus eval. In:
files, links, FAQ pairs and customer turns; out: chunks in the vector store and validated
replies with planned actions."""
