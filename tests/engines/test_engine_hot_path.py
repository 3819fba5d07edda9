"""The engine's hot path (issue #14): the amortised closest-approach check and the imports that skip package inits."""

import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list

from aiida_sseff.engines.md import AtomsTooCloseError, _ContactGuard, _pairs_within


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


@pytest.mark.parametrize('atoms, reach', [
    (bulk('Cu', 'fcc', a=3.6, cubic=True) * (3, 3, 3), 2.6),  # orthorhombic
    (bulk('Cu', 'fcc', a=3.6) * (4, 4, 4), 3.0),  # skewed (primitive fcc) cell
])
def test_pairs_within_match_ases_neighbour_list(atoms, reach):
    """The numpy minimum-image pairs are ASE's neighbour list, each pair once."""
    atoms = atoms.copy()
    atoms.rattle(0.2, seed=1)
    i, j, d = _pairs_within(atoms, reach)
    a, b, e = neighbor_list('ijd', atoms, reach)
    once = a < b
    assert len(i) == once.sum() > 0
    ours, ases = np.lexsort((j, i)), np.lexsort((b[once], a[once]))
    np.testing.assert_array_equal(i[ours], a[once][ases])
    np.testing.assert_array_equal(j[ours], b[once][ases])
    np.testing.assert_allclose(d[ours], e[once][ases], rtol=1e-12)


@pytest.mark.parametrize('pbc, repeat', [(True, (2, 2, 2)), ((True, True, False), (3, 3, 3))])
def test_pairs_within_fall_back_to_ases_list(pbc, repeat):
    """A reach above half the cell's width (several images of a pair), or a direction without periodicity: ASE's
    neighbour list itself."""
    atoms = bulk('Cu', 'fcc', a=3.6) * repeat
    atoms.pbc = pbc
    atoms.rattle(0.2, seed=1)
    for ours, ases in zip(_pairs_within(atoms, 3.0), neighbor_list('ijd', atoms, 3.0), strict=True):
        np.testing.assert_array_equal(ours, ases)


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
from aiida_sseff.engines._lazy import calorine_model
model = calorine_model()
heavy = ('sklearn', 'scipy.optimize', 'pandas', 'scipy.spatial', 'scipy.sparse', 'ase.io.trajectory')
assert not [name for name in heavy if name in sys.modules], sorted(sys.modules)
from calorine.calculators import CPUNEP
from calorine.nep import read_model
import calorine.nep.io
from ase.md import Bussi, Langevin
from ase.optimize import BFGS
import ase.dft
import ase.io
from ase.spacegroup import crystal
assert CPUNEP is cpunep and Bussi is bussi and callable(read_model) and hasattr(ase.dft, 'monkhorst_pack')
assert model.read_model is read_model and 'pandas' in sys.modules and hasattr(calorine.nep.io, 'read_loss')
assert ase.io.read is ase_io().read and hasattr(ase.io, 'Trajectory') and callable(crystal)
# the stand-in write_nepfile held by calorine.nep.model imports the real one when called
assert model._write_nepfile.__name__ == 'write_nepfile'
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
