"""Tenant-scoped Mongo repositories: every method takes the organisation first."""
