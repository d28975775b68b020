"""Authorisation: a long-lived token or an OAuth code in -> an encrypted, refreshed connection
per organisation out (tokens refreshed one at a time, renamed subdomains followed)."""
