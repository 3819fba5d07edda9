"""The engine's hot path (issue #14): the amortised closest-approach check and the imports that skip package inits."""

import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list

from aiida_sseff.engines.md import AtomsTooCloseError, _ContactGuard


def _naive_check(atoms, min_distance):
    """The check before issue #14: a neighbour list of reach min_distance at every call."""
    _, _, d = neighbor_list('ijd', atoms, min_distance)
    return bool(len(d))


def test_contact_guard_raises_exactly_when_a_neighbour_list_at_every_check_would():
    """A random walk of a copper cell, with a growing step so that atoms eventually collide: the guard must raise at
    the same check as the naive list (never later), yet build the list far less often."""
    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2)
    rng = np.random.default_rng(3)
    min_distance = 1.2  # nearest neighbours start at 2.55 Å
    guard = _ContactGuard(min_distance)
    raised_at, naive_at = None, None
    for check in range(400):
        atoms.positions += rng.normal(scale=0.002 + 0.0004 * check, size=atoms.positions.shape)
        if naive_at is None and _naive_check(atoms, min_distance):
            naive_at = check
        try:
            guard.check(atoms, check)
        except AtomsTooCloseError as error:
            raised_at = check
            assert f'at step {check}' in str(error) and 'Å apart' in str(error)
            break
    assert naive_at is not None, 'the walk never brought two atoms within the minimum; make the steps larger'
    assert raised_at == naive_at
    assert guard.n_lists < raised_at / 2  # the bound skipped most lists


def test_contact_guard_rebuilds_the_list_when_the_cell_changes():
    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2)
    guard = _ContactGuard(0.6)
    guard.check(atoms, 0)
    guard.check(atoms, 1)
    assert guard.n_lists == 1  # nothing moved: no new list
    atoms.set_cell(atoms.cell * 0.999, scale_atoms=True)
    guard.check(atoms, 2)
    assert guard.n_lists == 2


def test_engine_imports_skip_training_modules_and_leave_packages_importable():
    """In a fresh interpreter: the engine's CPUNEP and integrators come without scikit-learn or scipy.optimize, are the
    same classes as the ordinary imports, and calorine.nep / ase.md / ase.optimize still import fully afterwards."""
    code = '''
import sys
from aiida_sseff.engines._lazy import ase_integrator, ase_io, cpunep_class
ase_io()
cpunep, bussi = cpunep_class(), ase_integrator('ase.md.bussi', 'Bussi')
assert 'sklearn' not in sys.modules and 'scipy.optimize' not in sys.modules, sorted(sys.modules)
from calorine.calculators import CPUNEP
from calorine.nep import read_model
from ase.md import Bussi, Langevin
from ase.optimize import BFGS
import ase.dft
assert CPUNEP is cpunep and Bussi is bussi and callable(read_model) and hasattr(ase.dft, 'monkhorst_pack')
print('ok')
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr


@pytest.mark.parametrize('missing', ['no.such.package.module'])
def test_import_without_package_inits_raises_for_a_missing_module(missing):
    from aiida_sseff.engines._lazy import import_without_package_inits

    with pytest.raises(ImportError):
        import_without_package_inits(missing, ('no.such',))
    assert 'no.such' not in sys.modules
