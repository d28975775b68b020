"""Session-wide real services: nx-27017 (started here), Redis (the machine's, db 9)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from core.security.keyring import Keyring
from core.storage import Storage
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client
from tests.fixtures.servers import nx_server, redis_test_url

# Never the user's home: every test process and the CLI processes tests start get a temp home
# (its .env, its data folder), set before any settings are read.
_HOME = tempfile.mkdtemp(prefix="kommo-test-home-")
os.environ["KOMMO_AGENT_HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, True)

# Shared fixtures, registered once for the whole suite (not star-imported into test modules).
pytest_plugins = ["tests.fixtures.kommo", "tests.fixtures.engine", "tests.fixtures.campaigns", "tests.fixtures.telegram",
                  "tests.fixtures.tenants", "tests.fixtures.console_stack"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file under ../shared; skip (with the reason) where a user's clone has none."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        # Module-level use (parametrised fixtures) skips the module; inside a test, that test.
        pytest.skip(f"../shared/{'/'.join(parts)} is not present in this checkout", allow_module_level=True)
    return path


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nx_server(tmp_path_factory.mktemp("mongo")) as (url, _proc):
        yield url


@pytest.fixture(scope="session")
async def mongo_client(mongo_url: str):
    client = create_mongo_client(mongo_url)
    yield client
    await client.close()


@pytest.fixture
async def storage(mongo_client) -> AsyncIterator[Storage]:
    """A fresh database per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    db = mongo_client[name]
    await ensure_indexes(db)
    try:
        yield Storage.from_db(db)
    finally:
        await mongo_client.drop_database(name)


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> str:
    """The test Redis db: TEST_REDIS_DB, plus the xdist worker's number, so parallel workers
    (which flush their db around every test) never share one."""
    base = int(os.environ.get("TEST_REDIS_DB", "9"))
    offset = int(worker_id.removeprefix("gw")) if worker_id.startswith("gw") else 0
    db = base + offset
    if db > 15:
        pytest.exit(f"TEST_REDIS_DB={base} with {offset + 1} workers needs Redis db {db}; Redis has 0-15")
    return redis_test_url(db)


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """xdist's worker id ("gw0", ...), or "master" without xdist (xdist provides its own)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def keyring() -> Keyring:

    return Keyring(keys={"k1": os.urandom(32)}, primary="k1")
