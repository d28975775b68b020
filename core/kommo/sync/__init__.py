"""Sync: the account's pipelines, stages, users and custom fields in Kommo -> the local catalog
copy the agent validates against."""
