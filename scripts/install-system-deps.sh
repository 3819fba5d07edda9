#!/usr/bin/env bash
# System packages that aiida-sseff's tests and CPU labeller use: CP2K and its data (GTH pseudopotentials, MOLOPT
# basis sets) from Debian/Ubuntu. Skipped when a CP2K executable is already on PATH (and its data can be found).
# Usage: scripts/install-system-deps.sh   (as root, or with sudo available)
set -euo pipefail

have_cp2k() {
    command -v cp2k >/dev/null 2>&1 || command -v cp2k.psmp >/dev/null 2>&1 || command -v cp2k.ssmp >/dev/null 2>&1
}

have_cp2k_data() {
    [ -n "${CP2K_DATA_DIR:-}" ] && [ -f "${CP2K_DATA_DIR}/GTH_POTENTIALS" ] && return 0
    [ -f /usr/share/cp2k/GTH_POTENTIALS ] || [ -f /usr/share/cp2k/data/GTH_POTENTIALS ]
}

if have_cp2k && have_cp2k_data; then
    echo "cp2k already installed: $(command -v cp2k.psmp || command -v cp2k.ssmp || command -v cp2k); skipping"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install CP2K (>= 9) and its data files yourself, e.g. 'conda install -c conda-forge cp2k'," >&2
    echo "and set CP2K_DATA_DIR to the folder holding GTH_POTENTIALS and BASIS_MOLOPT." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update
${SUDO} apt-get install -y cp2k cp2k-data
echo "installed: $(command -v cp2k.psmp || command -v cp2k), data in /usr/share/cp2k"
