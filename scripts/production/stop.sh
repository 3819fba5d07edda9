#!/usr/bin/env bash
# Stop what start.sh and profile.sh started: the daemon of the production profile, slurmd, slurmctld, munged, the
# loopback sshd, RabbitMQ and PostgreSQL. The profile, its database and its files stay (profile.sh reuses them).
# Idempotent: a service that is not running is skipped. Usage: scripts/production/stop.sh
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export AIIDA_PATH="${AIIDA_PATH:-$ROOT/.aiida}"
export PATH="$ROOT/.venv/bin:$PATH"
PROFILE="${SSEFF_PROD_PROFILE:-sseff-prod}"

log() { echo "[stop] $*"; }

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM, then wait up to 20 s for the process to leave
    local name=$1 pidfile=$2 pid
    if [ ! -e "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "$name not running"
        return
    fi
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
    log "$name (pid $pid) still running after 20 s"
}

if [ -x "$ROOT/.venv/bin/verdi" ] && "$ROOT/.venv/bin/verdi" -p "$PROFILE" daemon status >/dev/null 2>&1; then
    log "stopping the daemon of $PROFILE"
    "$ROOT/.venv/bin/verdi" -p "$PROFILE" daemon stop
fi
stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid
stop_pidfile sshd /run/sshd-sseff.pid
if command -v rabbitmqctl >/dev/null 2>&1 && rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    log "stopping RabbitMQ"
    rabbitmqctl -q stop
else
    log "RabbitMQ not running"
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header | awk '$4 == "online" {print $1, $2}' | while read -r version cluster; do
        log "stopping PostgreSQL $version/$cluster"
        pg_ctlcluster "$version" "$cluster" stop
    done
fi
log "stopped"
