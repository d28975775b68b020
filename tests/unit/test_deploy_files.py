"""The deploy files: compose.yaml runs every process against real servers with health checks and
no inlined secret; the Dockerfile builds in one stage and runs, without build tools, as non-root."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = {"web", "worker", "beat", "bot"}
SERVERS = {"mongo", "qdrant", "redis"}
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_every_process_and_server_with_a_health_check(compose):
    services = compose["services"]
    assert set(services) == PROCESSES | SERVERS
    for name, service in services.items():
        check = service.get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    for name in PROCESSES:
        service = services[name]
        assert service["command"] == [name] and service["env_file"] == ".env"
        assert {"mongo", "qdrant", "redis"} <= set(service["depends_on"])
        assert all(dep["condition"] == "service_healthy" for dep in service["depends_on"].values())
    assert "--replSet" in services["mongo"]["command"]
    assert "replicaSet=rs0" in services["web"]["environment"]["MONGO_URL"]
    assert set(compose["volumes"]) >= {"mongo-data", "qdrant-data", "redis-data", "app-data"}


def test_no_secret_is_inlined(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            assert not (SECRET_NAME.search(key) and value), f"{name}: {key} is set inline; put it in .env"
            assert not re.search(r"://[^/@\s:]*:[^@/\s]+@", str(value)), f"{name}: {key} carries a password"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_the_image_runs_without_build_tools_and_not_as_root():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"(?m)^FROM ", text)[1:]
    assert len(stages) >= 2, "multi-stage build expected"
    final = stages[-1]
    assert "build-essential" not in final and "apt-get install" not in final
    user = re.findall(r"(?m)^USER (\S+)", final)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in final and "COPY --from=build /opt/venv" in final


@pytest.mark.skipif(not (shutil.which("docker-compose") or shutil.which("docker")), reason="no docker client")
def test_docker_compose_accepts_the_file():
    if shutil.which("docker-compose"):
        cmd = ["docker-compose"]
    elif subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        cmd = ["docker", "compose"]
    else:
        pytest.skip("the docker client has no compose plugin here")
    env_file = ROOT / ".env"
    created = not env_file.exists()
    if created:
        env_file.write_text("")
    try:
        out = subprocess.run([*cmd, "-f", str(ROOT / "compose.yaml"), "config", "--quiet"], capture_output=True,
                             text=True, cwd=ROOT, timeout=60)
    finally:
        if created:
            env_file.unlink()
    assert out.returncode == 0, out.stderr
