#!/usr/bin/env bash
# Create the PostgreSQL role and database for SynthLang Proxy, then run the migrations.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/init-db.sh [options]

Creates the PostgreSQL role and database (both idempotent: existing ones are kept and the
role's password is set), prints the DATABASE_URL to put in the environment, then runs
`python manage.py migrate --noinput` against it.

Options:
  --db NAME           database name (default: synthlang)
  --user ROLE         role that owns the database (default: synthlang)
  --password PASS     role password (default: $DB_PASSWORD, else a generated one)
  --host HOST         host in the printed DATABASE_URL (default: localhost)
  --port PORT         port in the printed DATABASE_URL (default: 5432)
  --admin-url URL     superuser connection for creating them (default: the local
                      `postgres` user when run as root, else psql's PG* env: PGHOST...)
  --python PATH       Python of the project's venv (default: $PYTHON, /opt/synthlang/venv,
                      ./.venv, then python3)
  --no-migrate        create the role and database only
  -h, --help          show this help

Example:
  sudo scripts/init-db.sh --db synthlang --user synthlang
EOF
}

DB_NAME=synthlang
DB_USER=synthlang
DB_PASSWORD="${DB_PASSWORD:-}"
DB_HOST=localhost
DB_PORT=5432
ADMIN_URL=""
PYTHON="${PYTHON:-}"
MIGRATE=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --db) DB_NAME="$2"; shift 2 ;;
        --user) DB_USER="$2"; shift 2 ;;
        --password) DB_PASSWORD="$2"; shift 2 ;;
        --host) DB_HOST="$2"; shift 2 ;;
        --port) DB_PORT="$2"; shift 2 ;;
        --admin-url) ADMIN_URL="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --no-migrate) MIGRATE=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "init-db.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z "$PYTHON" ]]; then
    for candidate in /opt/synthlang/venv/bin/python "$ROOT/.venv/bin/python" python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
fi

if [[ -z "$DB_PASSWORD" ]]; then
    DB_PASSWORD="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
fi

admin_psql() {
    if [[ -n "$ADMIN_URL" ]]; then
        psql "$ADMIN_URL" "$@"
    elif [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u postgres -- psql "$@")
    else
        psql "$@"
    fi
}

echo "Creating role '$DB_USER' and database '$DB_NAME' (kept if they exist)..."
# psql variables quote the names (:"x") and the password (:'x'): no SQL injection from options.
admin_psql -v ON_ERROR_STOP=1 -q -X \
    -v db_name="$DB_NAME" -v db_user="$DB_USER" -v db_password="$DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'db_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db_user')
\gexec
ALTER ROLE :"db_user" WITH LOGIN PASSWORD :'db_password';
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L', :'db_name', :'db_user', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db_name')
\gexec
GRANT ALL PRIVILEGES ON DATABASE :"db_name" TO :"db_user";
SQL

DATABASE_URL="$("$PYTHON" - "$DB_USER" "$DB_PASSWORD" "$DB_HOST" "$DB_PORT" "$DB_NAME" <<'PY'
import sys
from urllib.parse import quote

user, password, host, port, name = sys.argv[1:]
print(f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(name, safe='')}")
PY
)"
export DATABASE_URL

if [[ "$MIGRATE" == 1 ]]; then
    echo "Migrating..."
    (cd "$ROOT" && "$PYTHON" manage.py migrate --noinput)
fi

echo
echo "Done. Put this in the environment (e.g. /etc/synthlang/env):"
echo "DATABASE_URL=$DATABASE_URL"
