"""The product core: domain services, storage and integrations; no Telegram, web server or Celery (see docs/ARCHITECTURE.md)."""
