"""Usage: metering lives in core/ai (usage_events); quotas and plans here."""
