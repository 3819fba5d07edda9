#!/usr/bin/env bash
# Debian packages of the production profile (issue #13): PostgreSQL (storage), RabbitMQ (broker), a single-node
# Slurm with munge (scheduler), OpenSSH (the core.ssh transport to this machine's loopback).
# Idempotent: skips when every package is installed already. Usage: scripts/production/install.sh (as root or sudo).
set -euo pipefail

PACKAGES=(postgresql rabbitmq-server slurm-wlm munge openssh-server openssh-client)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "production packages already installed: ${PACKAGES[*]}"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install ${missing[*]} with your system's package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the packages' postinst scripts must not try to start services (no systemd/init here; start.sh
# starts them in the foreground-less way this project controls)
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | ${SUDO} tee "$policy" >/dev/null
    ${SUDO} chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then ${SUDO} rm -f "$policy"; fi; }
trap cleanup EXIT
${SUDO} apt-get update
${SUDO} apt-get install -y --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
