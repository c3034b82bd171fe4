#!/usr/bin/env bash
# Take an encrypted backup of the database with `python manage.py backup` (for cron/timers).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/backup.sh [options] [-- BACKUP_ARGS...]

Runs `python manage.py backup` from the project directory with the deployment's settings:
the backup is compressed, encrypted with ENCRYPTION_KEY and written to BACKUP_DIR; backups
older than BACKUP_RETENTION_DAYS are pruned. Arguments after `--` go to the command.

Options:
  --env-file FILE   read settings from FILE (KEY=VALUE lines; default: /etc/synthlang/env
                    when it exists and is readable, else the current environment)
  --python PATH     Python of the project's venv (default: $PYTHON, /opt/synthlang/venv,
                    ./.venv, then python3)
  -h, --help        show this help

Example (cron, daily at 03:15, as the app user):
  15 3 * * * /opt/synthlang/app/scripts/backup.sh >> /var/log/synthlang-backup.log 2>&1
EOF
}

ENV_FILE=""
PYTHON="${PYTHON:-}"
BACKUP_ARGS=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --env-file) ENV_FILE="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; BACKUP_ARGS=("$@"); break ;;
        *) echo "backup.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z "$ENV_FILE" && -r /etc/synthlang/env ]]; then
    ENV_FILE=/etc/synthlang/env
fi
if [[ -n "$ENV_FILE" ]]; then
    [[ -r "$ENV_FILE" ]] || { echo "backup.sh: cannot read $ENV_FILE" >&2; exit 1; }
    # KEY=VALUE lines as systemd reads them: no shell expansion of the values.
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
    done < "$ENV_FILE"
fi

if [[ -z "$PYTHON" ]]; then
    for candidate in /opt/synthlang/venv/bin/python "$ROOT/.venv/bin/python" python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
fi

cd "$ROOT"

if ! help_output="$("$PYTHON" manage.py help backup 2>&1)"; then
    if [[ "$help_output" == *"Unknown command"* ]]; then
        echo "backup.sh: this release has no 'backup' management command." >&2
        exit 3
    fi
    echo "$help_output" >&2
    echo "backup.sh: could not load the project's management commands (see above)." >&2
    exit 1
fi

exec "$PYTHON" manage.py backup "${BACKUP_ARGS[@]}"
