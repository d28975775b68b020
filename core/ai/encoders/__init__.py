"""Encoders: text in -> vectors out (dense e5 passages/queries, BM25 sparse, the cross-lingual USE encoder)."""
