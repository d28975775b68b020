from pathlib import Path

from core.config import Settings
from core.config_docs import env_variables

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_variable():
    text = (ROOT / ".env.example").read_text()
    missing = [var for var, _, _ in env_variables() if f"# {var}=" not in text]
    assert missing == []


def test_prefixes_and_secrets(monkeypatch):
    monkeypatch.setenv("MONGO_URL", "mongodb://db:27017/")
    monkeypatch.setenv("LLM_API_KEY", "sk-test")
    monkeypatch.setenv("KOMMO_RATE_LIMIT_RPS", "6")
    monkeypatch.setenv("DATA_DIR", "/tmp/x")
    s = Settings(_env_file=None)
    assert s.mongo.url == "mongodb://db:27017/"
    assert s.llm.enabled and s.llm.api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(s)
    assert s.kommo.rate_limit_rps == 6
    assert s.key_file == Path("/tmp/x/secrets.keys")
