#!/usr/bin/env bash
# System packages that aiida-sseff's tests, CPU labeller and classical baseline use, from Debian/Ubuntu:
# - CP2K and its data (GTH pseudopotentials, MOLOPT basis sets), skipped when a CP2K executable is already on PATH
#   (and its data can be found);
# - LAMMPS (the classical Buckingham + Coulomb baseline run through aiida-lammps; Debian's binary is `lmp`),
#   skipped when `lmp` or `lmp_serial` is already on PATH.
# Usage: scripts/install-system-deps.sh   (as root, or with sudo available)
set -euo pipefail

have_cp2k() {
    command -v cp2k >/dev/null 2>&1 || command -v cp2k.psmp >/dev/null 2>&1 || command -v cp2k.ssmp >/dev/null 2>&1
}

have_cp2k_data() {
    [ -n "${CP2K_DATA_DIR:-}" ] && [ -f "${CP2K_DATA_DIR}/GTH_POTENTIALS" ] && return 0
    [ -f /usr/share/cp2k/GTH_POTENTIALS ] || [ -f /usr/share/cp2k/data/GTH_POTENTIALS ]
}

have_lammps() {
    command -v lmp >/dev/null 2>&1 || command -v lmp_serial >/dev/null 2>&1
}

packages=()
if have_cp2k && have_cp2k_data; then
    echo "cp2k already installed: $(command -v cp2k.psmp || command -v cp2k.ssmp || command -v cp2k); skipping"
else
    packages+=(cp2k cp2k-data)
fi
if have_lammps; then
    echo "lammps already installed: $(command -v lmp || command -v lmp_serial); skipping"
else
    packages+=(lammps)
fi

if [ "${#packages[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install ${packages[*]} yourself, e.g. 'conda install -c conda-forge cp2k lammps';" >&2
    echo "for CP2K set CP2K_DATA_DIR to the folder holding GTH_POTENTIALS and BASIS_MOLOPT." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update
${SUDO} apt-get install -y "${packages[@]}"
if have_cp2k; then
    echo "cp2k: $(command -v cp2k.psmp || command -v cp2k.ssmp || command -v cp2k), data in /usr/share/cp2k"
fi
if have_lammps; then
    echo "lammps: $(command -v lmp || command -v lmp_serial)"
fi
