import os
import subprocess
import sys
from pathlib import Path

from core.ai.tokens import count_tokens, truncate_to_tokens

ROOT = Path(__file__).resolve().parents[2]


def test_count_and_truncate():
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    ru = "Привет, как дела? Доставка по Москве бесплатно."
    assert count_tokens(ru) > 5
    cut = truncate_to_tokens(ru, 5)
    assert ru.startswith(cut) and count_tokens(cut) <= 5
    assert truncate_to_tokens("short", 100) == "short"
    assert truncate_to_tokens("anything", 0) == ""
    assert count_tokens("<|endoftext|>") > 1  # user text never becomes a special token


def test_encoding_works_with_no_network(tmp_path):
    """Empty tiktoken cache, proxies pointing nowhere, sockets refused: it must still encode."""
    code = (
        "import socket\n"
        "def _no_net(*a, **k):\n"
        "    raise OSError('network disabled in this test')\n"
        "socket.socket.connect = _no_net\n"
        "socket.create_connection = _no_net\n"
        "socket.getaddrinfo = _no_net\n"
        "from core.ai.tokens import count_tokens\n"
        "print(count_tokens('Сколько стоит доставка?'))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 3
