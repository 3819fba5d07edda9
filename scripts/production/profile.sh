#!/usr/bin/env bash
# The production profile (issue #13) in the project-local AIIDA_PATH (.aiida of this checkout): `sseff-prod` with
# core.psql_dos storage (a PostgreSQL role with a generated password, a C.UTF-8 database) and the core.rabbitmq
# broker; the computer `loopback` (core.ssh to 127.0.0.1 with a key made here, core.slurm when Slurm answers, else
# core.direct) with the engine code; 2 daemon workers. Needs the services of start.sh. Idempotent.
# `verdi presto --use-postgres` is not used: it needs sudo and the en_US locale.
# Usage: scripts/production/profile.sh      Environment: SSEFF_PROD_PROFILE (sseff-prod), SSEFF_SSH_PORT (22),
#        SSEFF_DAEMON_WORKERS (2)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export AIIDA_PATH="${AIIDA_PATH:-$ROOT/.aiida}"
export PATH="$ROOT/.venv/bin:$PATH"
PROFILE="${SSEFF_PROD_PROFILE:-sseff-prod}"
WORKERS="${SSEFF_DAEMON_WORKERS:-2}"
STATE="$AIIDA_PATH/production"  # the SSH key and the computer's work directory; never in a node
# one database per checkout and profile: a second clone on the same machine gets its own
DB_NAME="sseff_$(printf '%s' "$ROOT:$PROFILE" | sha256sum | cut -c1-12)"
DB_USER="$DB_NAME"
VERDI="$ROOT/.venv/bin/verdi"

log() { echo "[profile] $*"; }
psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt $(printf '%q ' "$@")"; }

if [ ! -x "$VERDI" ]; then
    echo "no $VERDI: run \`make install\` first" >&2
    exit 1
fi
mkdir -p "$AIIDA_PATH" "$STATE"
chmod 700 "$STATE"

if "$VERDI" profile list 2>/dev/null | grep -Eq "(^|[[:space:]*])$PROFILE\$"; then
    log "profile $PROFILE exists"
else
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    if [ -n "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]; then
        psql_admin -c "ALTER ROLE \"$DB_USER\" WITH LOGIN PASSWORD '$password'"
    else
        psql_admin -c "CREATE ROLE \"$DB_USER\" WITH LOGIN PASSWORD '$password'"
    fi
    if [ -n "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
        # left by a profile of this checkout that was deleted together with its file repository: unusable
        log "dropping the orphaned database $DB_NAME"
        psql_admin -c "DROP DATABASE \"$DB_NAME\""
    fi
    # C.UTF-8 exists on every Debian; template0 because template1 may carry another locale
    psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"
    # the password goes to verdi in a file only we can read, not on a command line that `ps` shows
    options=$(mktemp)
    chmod 600 "$options"
    trap 'rm -f "$options"' EXIT
    cat > "$options" <<EOF
email: production@aiida-sseff.local
first_name: aiida-sseff
last_name: production
institution: aiida-sseff
set_as_default: false
broker: core.rabbitmq
database_engine: postgresql_psycopg
database_hostname: 127.0.0.1
database_port: 5432
database_name: $DB_NAME
database_username: $DB_USER
database_password: $password
repository_uri: file://$AIIDA_PATH/repository/$PROFILE
EOF
    log "creating profile $PROFILE (core.psql_dos on $DB_NAME, core.rabbitmq)"
    "$VERDI" profile setup core.psql_dos --non-interactive --profile-name "$PROFILE" --config "$options"
    rm -f "$options"
    unset password
fi
# `verdi daemon start/restart` without a number start this many workers
"$VERDI" -p "$PROFILE" config set daemon.default_workers "$WORKERS" >/dev/null
# circus answers slowly on a loaded 2-core machine (tests/conftest.py does the same for the test profile)
"$VERDI" -p "$PROFILE" config set daemon.timeout 60 >/dev/null
# Debian 12's RabbitMQ 3.10 is newer than aiida-core's tested range; start.sh disables its consumer timeout
"$VERDI" -p "$PROFILE" config set warnings.rabbitmq_version false >/dev/null

# --- the SSH key of the loopback computer ------------------------------------------------------------------------------
KEY="$STATE/id_ed25519"
if [ ! -f "$KEY" ]; then
    log "creating the SSH key $KEY"
    ssh-keygen -q -t ed25519 -N '' -C "aiida-sseff-production $ROOT" -f "$KEY"
fi
mkdir -p "$HOME/.ssh"
chmod 700 "$HOME/.ssh"
touch "$HOME/.ssh/authorized_keys"
chmod 600 "$HOME/.ssh/authorized_keys"
if ! grep -qF "$(cut -d' ' -f2 "$KEY.pub")" "$HOME/.ssh/authorized_keys"; then
    cat "$KEY.pub" >> "$HOME/.ssh/authorized_keys"
fi
PORT="${SSEFF_SSH_PORT:-22}"
# the host key is recorded here once; the transport then checks it (paramiko's RejectPolicy for an unknown host)
ssh -i "$KEY" -p "$PORT" -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes \
    "$(id -un)@127.0.0.1" true
log "ssh to 127.0.0.1:$PORT with $KEY works"

"$ROOT/.venv/bin/python" "$ROOT/scripts/production/setup_computer.py" --profile "$PROFILE" --key "$KEY" \
    --port "$PORT" --work-dir "$STATE/work"

if "$VERDI" -p "$PROFILE" daemon status >/dev/null 2>&1; then
    log "daemon of $PROFILE running"
else
    log "starting the daemon of $PROFILE with $WORKERS workers"
    "$VERDI" -p "$PROFILE" daemon start "$WORKERS"
fi
log "ready: profile $PROFILE in $AIIDA_PATH"
