"""`kommo-agent up`: start the embedded default and supervise every process.

Children run in their own sessions so a terminal Ctrl-C reaches only the supervisor, which then
stops them (each child's whole process group) in reverse order; on Linux they also die with the
supervisor however it ends (`PR_SET_PDEATHSIG`). Ctrl-C works from the first second: every wait
of the start-up watches for it. Each child's output goes to `<home>/logs/<name>.log` and,
prefixed, to the console; if a required child dies the supervisor names it, shows its last lines
and stops the rest. The Telegram bot is optional: when it dies (a bad token, no network) it is
reported and restarted with backoff while the web app, workers and beat keep running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from cli.console_lines import readable
from cli.first_run import first_run_lines
from core.config import Settings, agent_home
from core.redact import url_without_password
from core.security.keyring import load_keyring
from core.storage.embedded import (
    child_options,
    mongo_command,
    mongo_url,
    port_is_open,
    redis_command,
    redis_url,
)

OPTIONAL = ("bot",)
BACKOFF_MAX_S = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    listens: str | None = None
    port: int | None = None
    proc: subprocess.Popen | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=20))
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    restart_at: float | None = None


class StartupError(Exception):
    pass


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) while starting."""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


class Supervisor:
    def __init__(self, settings: Settings, ready_timeout: float = 60.0, echo=print, *, raw_logs: bool = True,
                 seed_demo: bool = True) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.echo = echo
        self.raw_logs = raw_logs  # False on a terminal: children's lines shown readably (cli/console_lines.py)
        self.seed_demo = seed_demo
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.interrupted = threading.Event()
        self.data_dir = settings.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"

    # -- planning -----------------------------------------------------------------------------
    def _plan(self) -> tuple[list[Child], dict[str, str]]:
        s = self.settings
        env: dict[str, str] = {"DATA_DIR": str(self.data_dir),
                               "SECRETS_KEY_FILE": str(s.key_file.resolve())}
        infra: list[Child] = []
        if s.mongo.url:
            env["MONGO_URL"] = s.mongo.url
        else:
            port = s.mongo.embedded_port
            self._require_free(port, "embedded MongoDB (nx-27017)", "MONGO_EMBEDDED_PORT")
            infra.append(Child("mongo", mongo_command(self.data_dir / "mongo", port),
                               listens=mongo_url(port), port=port))
            env["MONGO_URL"] = mongo_url(port)
        if s.redis.url and self._redis_reachable(s.redis.url):
            env["REDIS_URL"] = s.redis.url
        else:
            if s.redis.url:
                self.echo(f"REDIS_URL {url_without_password(s.redis.url)} is unreachable: starting the bundled "
                          "Redis instead")
            port = s.redis.embedded_port
            self._require_free(port, "embedded Redis", "REDIS_EMBEDDED_PORT")
            infra.append(Child("redis", redis_command(self.data_dir / "redis", port),
                               listens=redis_url(port), port=port))
            env["REDIS_URL"] = redis_url(port)
        self._require_free(s.web.port, "the web app", "WEB_PORT")
        apps = [
            Child("web", _cli("web"), listens=f"http://{s.web.host}:{s.web.port}", port=s.web.port),
            Child("worker", _cli("worker")),
            Child("beat", _cli("beat")),
        ]
        if s.telegram.bot_token is not None and s.telegram.webhook_url:
            self.echo(f"Telegram bot: served by the web app at {s.telegram.webhook_url}.")
        elif s.telegram.bot_token is not None:
            apps.append(Child("bot", _cli("bot"), listens="Telegram long polling"))
        else:
            self.echo("Telegram bot: not started. Set TELEGRAM_BOT_TOKEN (from @BotFather) to enable it.")
        return infra + apps, env

    @staticmethod
    def _require_free(port: int, what: str, setting: str) -> None:
        if port_is_open("127.0.0.1", port):
            raise StartupError(f"port {port} for {what} is already taken by another process "
                               f"(another `kommo-agent up`?). Stop it or set {setting}.")

    @staticmethod
    def _redis_reachable(url: str) -> bool:
        import redis  # noqa: PLC0415 - only while probing for a running Redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return True
        except redis.RedisError:
            return False

    # -- running ------------------------------------------------------------------------------
    def _start(self, child: Child, env: dict[str, str]) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        child.env = env
        child.proc = subprocess.Popen(
            child.argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", **child_options(),
        )
        threading.Thread(target=self._pump, args=(child, child.proc), daemon=True).start()
        if child not in self.children:
            self.children.append(child)

    def _pump(self, child: Child, proc: subprocess.Popen) -> None:
        assert proc.stdout
        with open(self.logs_dir / f"{child.name}.log", "a", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                child.tail.append(line.rstrip())
                if self.stopping.is_set():
                    continue
                shown = f"[{child.name}] {line.rstrip()}" if self.raw_logs else readable(child.name, line)
                if shown:
                    self.echo(shown)

    def _wait_ready(self) -> None:
        url = f"http://{self.settings.web.host}:{self.settings.web.port}/readyz"
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_children()
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            self._pause(0.3)
        raise StartupError(f"{url} did not answer 200 within {self.ready_timeout:.0f}s ({last})")

    def _pause(self, seconds: float) -> None:
        if self.interrupted.wait(seconds):
            raise Interrupted()

    def _wait_port(self, child: Child) -> None:
        deadline = time.monotonic() + 30
        while not port_is_open("127.0.0.1", child.port, timeout=0.2):
            if child.proc.poll() is not None:
                self._check_children()
            if time.monotonic() > deadline:
                raise StartupError(f"{child.name} does not listen on port {child.port} after 30s; "
                                   f"see {self.logs_dir / child.name}.log")
            self._pause(0.05)

    def _tail(self, child: Child) -> str:
        time.sleep(0.2)  # let the pump thread read the last lines
        return "\n    ".join(list(child.tail)[-10:]) or "(no output)"

    def _check_children(self) -> None:
        for child in self.children:
            if not child.proc or child.proc.poll() is None:
                continue
            if child.name in OPTIONAL:
                self._reschedule(child)
                continue
            raise StartupError(f"{child.name} exited with code {child.proc.returncode}; "
                               f"last output:\n    {self._tail(child)}\n  full log: {self.logs_dir / child.name}.log")

    def _reschedule(self, child: Child) -> None:
        """An optional child died: report it once per exit and start it again after a backoff."""
        now = time.monotonic()
        if child.restart_at is None:
            delay = min(BACKOFF_MAX_S, 2.0 ** child.restarts)
            child.restart_at = now + delay
            self.echo(f"{child.name} stopped (exit code {child.proc.returncode}); the rest keeps running. "
                      f"Restarting it in {delay:.0f}s. Last output:\n    {self._tail(child)}\n"
                      f"  full log: {self.logs_dir / child.name}.log")
        elif now >= child.restart_at:
            child.restarts += 1
            child.restart_at = None
            self._start(child, child.env)

    def _signal_group(self, child: Child, sig: int) -> None:
        try:
            os.killpg(child.proc.pid, sig)  # the child leads its own session: its helpers go too
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """Apps first (a stopping worker still writes to the database), then the servers."""
        self.stopping.set()
        apps = [c for c in self.children if c.name not in ("mongo", "redis")]
        servers = [c for c in self.children if c.name in ("mongo", "redis")]
        for group in (apps, servers):
            for child in reversed(group):
                if child.proc and child.proc.poll() is None:
                    self._signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in reversed(group):
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                self._signal_group(child, signal.SIGKILL)  # whatever is left of its group
                if child.proc.poll() is None:
                    child.proc.wait()

    def run(self) -> int:
        interrupted = self.interrupted

        def on_signal(signum, _frame):
            interrupted.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            home, origin = agent_home()
            self.echo(f"home: {home} ({origin})")
            if self.data_dir != home:
                self.echo(f"data: {self.data_dir} (DATA_DIR)")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if not self.settings.secrets.keys:
                load_keyring(None, self.settings.key_file, create=True)
            children, env = self._plan()
            for child in children:
                if interrupted.is_set():
                    raise Interrupted()
                self._start(child, env)
                if child.name in ("mongo", "redis"):
                    self._wait_port(child)
            self._wait_ready()
            self.echo("kommo-agent is up:")
            for child in self.children:
                self.echo(f"  {child.name:<7} {child.listens or 'running'} (pid {child.proc.pid})")
            self.echo(f"  data    {self.data_dir}\n  logs    {self.logs_dir}")
            if self.seed_demo:
                for line in first_run_lines(self.settings, env):
                    self.echo(line)
            self.echo("Press Ctrl-C to stop.")
            while not interrupted.wait(0.5):
                self._check_children()
            self.echo("stopping...")
            return 0
        except Interrupted:
            self.echo("interrupted while starting; stopping...")
            return 130
        except (StartupError, TimeoutError, RuntimeError, FileNotFoundError) as exc:
            self.echo(f"error: {exc}")
            return 1
        finally:
            self.stop()
            self.echo("stopped.")
