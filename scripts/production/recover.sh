#!/usr/bin/env bash
# After the database was lost (PostgreSQL restarted, network cut): aiida-core 2.9's daemon workers do not recover by
# themselves (sessions stuck in PendingRollbackError; processes left WAITING without a broker task). Stop the daemon,
# `verdi process repair --force` (new tasks for those processes, orphaned database connections ended), start it again.
# tests/production/test_database_outage.py checks that this recovers a running work chain. Usage: recover.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export AIIDA_PATH="${AIIDA_PATH:-$ROOT/.aiida}"
export PATH="$ROOT/.venv/bin:$PATH"
PROFILE="${SSEFF_PROD_PROFILE:-sseff-prod}"
VERDI="$ROOT/.venv/bin/verdi"

"$VERDI" -p "$PROFILE" daemon stop || true
"$VERDI" -p "$PROFILE" process repair --force
"$VERDI" -p "$PROFILE" daemon start
