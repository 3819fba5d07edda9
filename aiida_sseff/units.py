"""Unit conversions used in more than one module (one definition each, from ase.units / CODATA via ASE)."""

from __future__ import annotations

from ase import units as _ase_units

__all__ = ['ANGSTROM2_PER_PS_TO_CM2_PER_S', 'EV_PER_A3_IN_GPA', 'KBAR_IN_EV_PER_A3']

#: 1 eV/Å³ in GPa (160.2177; GPUMD's PRESSURE_UNIT_CONVERSION is the same number)
EV_PER_A3_IN_GPA = 1.0 / _ase_units.GPa
#: 1 kbar in eV/Å³ (VASP writes stresses in kbar)
KBAR_IN_EV_PER_A3 = 0.1 * _ase_units.GPa
#: 1 Å²/ps = 1e-16 cm² / 1e-12 s = 1e-4 cm²/s
ANGSTROM2_PER_PS_TO_CM2_PER_S = 1e-4
