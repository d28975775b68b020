"""Usage: one event per metered provider call (model, repository, metering), and quotas before a reply."""
