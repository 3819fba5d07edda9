"""analysis.locality: central atoms, the frozen sphere under periodic boundaries, σ_f and its blocked error."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_sseff.analysis.locality import (
    SphereDoesNotFitError,
    blocked_standard_error,
    central_atoms,
    check_sphere_fits,
    frozen_sphere_mask,
    sigma_f,
)


def triclinic_cell():
    """A 3x3x3 rock-salt LiF supercell sheared into a triclinic cell (atoms follow the shear)."""
    atoms = bulk('LiF', 'rocksalt', a=4.03, cubic=True).repeat((3, 3, 3))
    shear = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.2, -0.1, 1.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    return atoms


def test_central_atoms_are_nearest_the_centre():
    atoms = triclinic_cell()
    centres = central_atoms(atoms)
    centre = atoms.cell.cartesian_positions([0.5, 0.5, 0.5])
    for symbol, index in centres.items():
        assert atoms[index].symbol == symbol
        # brute force over 27 images
        others = [i for i, a in enumerate(atoms) if a.symbol == symbol]
        best = min(others, key=lambda i: min(np.linalg.norm(atoms.positions[i] + atoms.cell.array.T @ n - centre)
                                             for n in np.ndindex(3, 3, 3) for n in [np.array(n) - 1]))
        assert index == best
    with pytest.raises(ValueError, match=r"\['Zr'\] not in the structure"):
        central_atoms(atoms, ['Li', 'Zr'])


def test_frozen_sphere_minimum_image_triclinic():
    atoms = triclinic_cell()
    index = central_atoms(atoms)['Li']
    # put the central atom next to a face: the sphere must wrap around through the periodic boundary
    atoms.translate(-atoms.positions[index] + 0.2 * atoms.cell[0])
    atoms.wrap()
    radius = 4.5
    mask = frozen_sphere_mask(atoms, index, radius)
    # reference: explicit images
    images = [atoms.positions + atoms.cell.array.T @ (np.array(n) - 1) for n in np.ndindex(3, 3, 3)]
    dist = np.min([np.linalg.norm(p - atoms.positions[index], axis=1) for p in images], axis=0)
    np.testing.assert_array_equal(mask, dist <= radius)
    assert mask[index] and 10 < mask.sum() < len(atoms) // 2


def test_sphere_that_does_not_fit_names_the_supercell():
    cell = np.diag([10.0, 12.0, 20.0])
    check_sphere_fits(cell, 4.0, 1.0)  # widths 10 >= 2·5
    with pytest.raises(SphereDoesNotFitError, match=r'use a 2x1x1 supercell'):
        check_sphere_fits(cell, 6.0)  # the 10 Å width is short of 12 Å, 12 Å is just enough
    with pytest.raises(ValueError, match='positive'):
        check_sphere_fits(cell, 0.0)
    atoms = Atoms('Li2', positions=[[0, 0, 0], [1.5, 0, 0]], cell=cell, pbc=True)
    with pytest.raises(SphereDoesNotFitError):
        frozen_sphere_mask(atoms, 0, 8.0)


def test_sigma_f_definition_and_refusals():
    rng = np.random.default_rng(0)
    forces = rng.normal(size=(64, 3)) + [1.0, -2.0, 0.5]
    result = sigma_f(forces)
    expected = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=1)))
    assert result.sigma == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(result.mean_force, forces.mean(axis=0))
    assert sigma_f(np.tile([0.3, 0.1, -0.2], (32, 1))).sigma == pytest.approx(0.0, abs=1e-15)  # zero to round-off
    with pytest.raises(ValueError, match='too few'):
        sigma_f(forces[:10])
    with pytest.raises(ValueError, match='NaN'):
        sigma_f(np.full((32, 3), np.nan))


def ar1(rng, n, phi):
    """Gaussian AR(1) series (3 components) of unit variance and lag-1 correlation phi."""
    x = np.zeros((n, 3))
    x[0] = rng.normal(size=3)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + np.sqrt(1 - phi**2) * rng.normal(size=3)
    return x


def test_blocked_error_is_calibrated_for_correlated_snapshots():
    """AR(1) forces with correlation 0.8 between snapshots: σ_f² = 3 exactly (3 unit-variance components). Over 200
    seeds of 4096 snapshots the z-scores of σ_f must scatter by ~1 (blocking is slightly conservative). The estimator's
    own bias (the mean force is estimated from correlated data: -3τ/N in σ², τ = (1+φ)/(1-φ) = 9) is 0.08 of its
    error here, hence the tolerance on the mean. The naive iid error (block size 1) is too small for such data by
    sqrt((1+φ²)/(1-φ²)) ≈ 2.1 (the correlation time of q)."""
    z, naive_ratio = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        forces = ar1(rng, 4096, 0.8)
        result = sigma_f(forces)
        z.append((result.sigma - np.sqrt(3.0)) / result.sigma_err)
        q = ((forces - forces.mean(axis=0)) ** 2).sum(axis=1)
        naive_ratio.append(result.sigma_err / (q.std(ddof=1) / np.sqrt(q.size) / (2 * result.sigma)))
    z = np.array(z)
    assert 0.7 < z.std() < 1.25, z.std()
    assert abs(z.mean()) < 0.3, z.mean()
    assert 1.7 < np.median(naive_ratio) < 2.6


def test_blocked_standard_error_of_independent_values():
    rng = np.random.default_rng(5)
    values = rng.normal(size=4096)
    error, _ = blocked_standard_error(values)
    assert error == pytest.approx(1 / np.sqrt(4096), rel=0.3)
