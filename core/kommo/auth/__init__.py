"""Authorisation: a long-lived token or an OAuth code in -> an encrypted, refreshed connection per organisation out (and which host serves it)."""
