# syntax=docker/dockerfile:1
#
# SynthLang Proxy image: Daphne serving synthlang_site.asgi:application on $PORT (8000).
# The same image runs the Celery worker and beat (override the command), and the release step
# (`python manage.py migrate --noinput`). See docs/deployment.md.
#
#   docker build -t synthlang-proxy .
#   docker run --rm -p 8000:8000 --env-file .env synthlang-proxy

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# --- builder: compile every requirement into a wheel, then install them into a venv ----------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Compilers and headers stay in this stage; the runtime stage never sees them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements.txt ./
RUN pip wheel --wheel-dir /wheels -r requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels -r requirements.txt \
    && /opt/venv/bin/pip check

# --- runtime: the venv, the code, a non-root user ---------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

# pg_dump must be at least as new as the server it dumps (backups), and Debian's own client
# lags behind: take the client of PG_MAJOR from the PostgreSQL project's apt repository.
ARG PG_MAJOR=16
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 synthlang \
    && useradd --system --uid 10001 --gid synthlang --home-dir /app/data --shell /usr/sbin/nologin synthlang

# LOG_FILE is empty: logs go to stdout only, where the container runtime collects them.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=synthlang_site.settings \
    HOST=0.0.0.0 \
    PORT=8000 \
    AUTO_MIGRATE=0 \
    SQLITE_PATH=/app/data/synthlang_proxy.db \
    BACKUP_DIR=/app/data/backups \
    LOG_FILE=""

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The code is owned by root and read-only for the app user; only /app/data is writable.
COPY . .

# Static files are collected at build time (whitenoise serves them from staticfiles/). The keys
# below are throwaway values that exist only for this RUN: they are not kept in the image.
RUN SECRET_KEY="collectstatic-build-only" \
    ENCRYPTION_KEY="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    DEBUG=false \
    ALLOWED_HOSTS=localhost \
    SQLITE_PATH=/tmp/collectstatic.db \
    python manage.py collectstatic --noinput \
    && rm -f /tmp/collectstatic.db \
    && mkdir -p /app/data/backups \
    && chown -R synthlang:synthlang /app/data

USER synthlang

EXPOSE 8000

# slim has no curl: probe /health with the standard library. A 503 (database down) raises, so
# the container turns unhealthy. The probe's host is localhost: keep localhost in
# ALLOWED_HOSTS. (/health is exempt from SECURE_SSL_REDIRECT, so plain HTTP is answered.)
# Worker and beat containers built from this image must override or disable this check
# (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://localhost:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]

# PID 1 is the server itself (one worker) or the supervisor of WEB_CONCURRENCY workers on the one
# port; on SIGTERM it drains open requests and streams for SHUTDOWN_GRACE_SECONDS, then exits.
# Give `docker stop` longer than that (`-t 30`; Compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "synthlang_site"]
