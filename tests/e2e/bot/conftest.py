"""Fixtures of the console's end-to-end tests: the fake Bot API, the fake Kommo, the console."""

from tests.fixtures.kommo import celery_queue, fake_kommo  # noqa: F401 - fixtures
from tests.fixtures.telegram import console, console_services, fake_telegram  # noqa: F401 - fixtures
