"""Ingestion: an uploaded file, link or FAQ pair in -> extracted sections -> cleaned, token-aware
chunks -> vectors written to the store, with progress on the source."""
