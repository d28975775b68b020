"""Secrets: the AES-GCM keyring with key ids, and key rotation."""
