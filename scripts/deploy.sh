#!/usr/bin/env bash
# Deploy a new release on a systemd server: pull, install, migrate, collect static, restart.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/deploy.sh [options]

On a server laid out as docs/deployment.md describes (code in /opt/synthlang/app, venv in
/opt/synthlang/venv, settings in /etc/synthlang/env, units synthlang-web/-worker/-beat):

  1. git pull --ff-only            (the code directory's current branch)
  2. pip install -r requirements.txt into the venv
  3. python manage.py check --deploy
  4. python manage.py migrate --noinput
  5. python manage.py collectstatic --noinput
  6. systemctl reload-or-restart synthlang-web (its workers are replaced one at a time, so
     the port never stops answering), systemctl restart synthlang-worker synthlang-beat
  7. wait until GET /health answers 200

Run it as root (it runs git, pip and manage.py as the app user) or as the app user with
sudo rights for systemctl.

Options:
  --app-dir DIR     code directory (default: /opt/synthlang/app)
  --venv DIR        virtualenv (default: /opt/synthlang/venv)
  --env-file FILE   settings read by the units (default: /etc/synthlang/env)
  --app-user USER   user that owns the code and runs the services (default: synthlang)
  --health-url URL  checked after the restart (default: http://localhost:8000/health)
  --no-pull         deploy the code as it is
  --no-restart      do not restart the services
  -h, --help        show this help
EOF
}

APP_DIR=/opt/synthlang/app
VENV=/opt/synthlang/venv
ENV_FILE=/etc/synthlang/env
APP_USER=synthlang
HEALTH_URL=http://localhost:8000/health
PULL=1
RESTART=1
UNITS=(synthlang-web synthlang-worker synthlang-beat)

while [[ $# -gt 0 ]]; do
    case "$1" in
        --app-dir) APP_DIR="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --env-file) ENV_FILE="$2"; shift 2 ;;
        --app-user) APP_USER="$2"; shift 2 ;;
        --health-url) HEALTH_URL="$2"; shift 2 ;;
        --no-pull) PULL=0; shift ;;
        --no-restart) RESTART=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "deploy.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

step() { printf '\n==> %s\n' "$*"; }

as_app() {
    if [[ "$(id -u)" == 0 && "$APP_USER" != root ]]; then
        runuser -u "$APP_USER" -- "$@"
    else
        "$@"
    fi
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

# Read KEY=VALUE lines the way systemd's EnvironmentFile does (no shell expansion, so a
# secret holding `$` or backquotes stays as it is), and export them for manage.py.
load_env_file() {
    local line key value
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line#"${line%%[![:space:]]*}"}"
        [[ -z "$line" || "$line" == \#* || "$line" == \;* ]] && continue
        key="${line%%=*}"
        value="${line#*=}"
        key="${key%"${key##*[![:space:]]}"}"
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"
        fi
        export "$key=$value"
    done < "$1"
}

[[ -d "$APP_DIR" ]] || { echo "deploy.sh: no code directory at $APP_DIR" >&2; exit 1; }
[[ -x "$VENV/bin/python" ]] || { echo "deploy.sh: no virtualenv at $VENV (python3.11 -m venv $VENV)" >&2; exit 1; }
[[ -r "$ENV_FILE" ]] || { echo "deploy.sh: cannot read $ENV_FILE" >&2; exit 1; }

load_env_file "$ENV_FILE"
cd "$APP_DIR"

if [[ "$PULL" == 1 ]]; then
    step "Pulling $(as_app git rev-parse --abbrev-ref HEAD)"
    as_app git pull --ff-only
fi
step "Release $(as_app git rev-parse --short HEAD 2>/dev/null || echo "(not a git checkout)")"

step "Installing requirements"
as_app "$VENV/bin/pip" install --disable-pip-version-check -r requirements.txt
as_app "$VENV/bin/pip" check

step "Checking the production settings"
as_app "$VENV/bin/python" manage.py check --deploy --fail-level WARNING

step "Migrating"
as_app "$VENV/bin/python" manage.py migrate --noinput

step "Collecting static files"
as_app "$VENV/bin/python" manage.py collectstatic --noinput

if [[ "$RESTART" == 1 ]]; then
    # The web unit's reload is a rolling restart of its workers with the new code; settings
    # changed in the env file need a restart (which drains open streams first).
    step "Reloading synthlang-web, restarting the other units"
    as_root systemctl reload-or-restart synthlang-web
    as_root systemctl restart "${UNITS[@]:1}"

    step "Waiting for $HEALTH_URL"
    for _ in $(seq 1 30); do
        if "$VENV/bin/python" - "$HEALTH_URL" <<'PY' 2>/dev/null
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
        then
            echo "healthy"
            exit 0
        fi
        sleep 2
    done
    echo "deploy.sh: $HEALTH_URL did not answer 200 within 60s; see journalctl -u synthlang-web" >&2
    exit 1
fi
