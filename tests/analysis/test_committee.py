"""The committee numbers of sseff.loop (aiida_sseff.analysis.committee): DP-GEN's max_devi_f, the trust-window
selection (inside the window only, deterministic) and the transport stopping criterion."""

import math

import numpy as np
import pytest
from ase.build import bulk

from aiida_sseff.analysis.committee import (
    combined_agreement,
    max_force_deviation,
    replica_spread,
    select_candidates,
    transport_convergence,
    trust_window,
)


def test_max_force_deviation_by_hand():
    """Two models, one frame of two atoms: atom 0 differs by (2, 0, 0) between the models, so each model is 1 eV/Å
    from the mean: sqrt(mean(1², 1²)) = 1; atom 1 differs by (0, 0.6, 0.8): 0.5. The frame's value is the max, 1."""
    forces = np.zeros((2, 1, 2, 3))
    forces[0, 0, 0] = [1.0, 0.0, 0.0]
    forces[1, 0, 0] = [-1.0, 0.0, 0.0]
    forces[0, 0, 1] = [0.0, 0.3, 0.4]
    forces[1, 0, 1] = [0.0, -0.3, -0.4]
    assert max_force_deviation(forces) == pytest.approx([1.0])


def test_max_force_deviation_matches_numpy_std():
    """The population std of the force vector over models, max over atoms: numpy's std per component, summed."""
    rng = np.random.default_rng(3)
    forces = rng.normal(size=(4, 5, 7, 3))
    expected = np.sqrt((forces.std(axis=0) ** 2).sum(axis=-1)).max(axis=-1)
    assert max_force_deviation(forces) == pytest.approx(expected, rel=1e-12)
    # identical models do not disagree
    assert max_force_deviation(np.repeat(forces[:1], 3, axis=0)) == pytest.approx(np.zeros(5), abs=1e-14)


def test_max_force_deviation_refuses_bad_input():
    with pytest.raises(ValueError, match='at least two models'):
        max_force_deviation(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match='non-finite'):
        max_force_deviation(np.full((2, 1, 2, 3), np.nan))
    with pytest.raises(ValueError, match='same frames'):
        max_force_deviation([[np.zeros((2, 3))], [np.zeros((2, 3)), np.zeros((2, 3))]])


def test_trust_window_classes():
    window = trust_window([0.01, 0.1, 0.2, 0.5, 2.0], lower=0.05, upper=0.5)
    assert window == {'indices': [1, 2], 'n_below': 1, 'n_above': 2, 'n_inside': 2}
    with pytest.raises(ValueError, match='upper bound'):
        trust_window([0.1], 0.5, 0.5)
    with pytest.raises(ValueError, match='lower bound'):
        trust_window([0.1], -0.1, 0.5)


def _frames(n: int):
    frames = []
    for k in range(n):
        atoms = bulk('Cu', 'fcc', a=3.6, cubic=True)
        atoms.rattle(0.02 + 0.02 * k, seed=k)
        frames.append(atoms)
    return frames


def test_selection_keeps_the_trust_window_only_and_is_deterministic():
    frames = _frames(10)
    deviations = [0.01, 0.3, 0.02, 0.25, 3.0, 0.4, 0.6, 5.0, 0.35, 0.2]
    inside = {1, 3, 5, 8, 9}  # 0.1 <= d < 0.5
    first = select_candidates(frames, deviations, 0.1, 0.5, n_select=3, seed_structures=frames[:1])
    assert len(first['indices']) == 3 and set(first['indices']) <= inside
    assert first['deviations'] == [deviations[i] for i in first['indices']]
    assert (first['n_below'], first['n_inside'], first['n_above']) == (2, 5, 3)
    again = select_candidates(frames, deviations, 0.1, 0.5, n_select=3, seed_structures=frames[:1])
    assert again == first
    # a budget larger than the window takes the whole window, nothing outside it
    everything = select_candidates(frames, deviations, 0.1, 0.5, n_select=8)
    assert sorted(everything['indices']) == sorted(inside)
    # no frame in the window: an empty selection, with the counts that say why
    empty = select_candidates(frames, deviations, 10.0, 20.0, n_select=3)
    assert empty['indices'] == [] and empty['n_below'] == 10


def test_selection_refuses_mismatched_input():
    with pytest.raises(ValueError, match='2 structures but 3 deviations'):
        select_candidates(_frames(2), [0.1, 0.2, 0.3], 0.0, 1.0, n_select=1)
    with pytest.raises(ValueError, match='whole number >= 1'):
        select_candidates(_frames(2), [0.1, 0.2], 0.0, 1.0, n_select=0)


def test_replica_spread():
    assert replica_spread([0.30, 0.34]) == pytest.approx(np.std([0.30, 0.34], ddof=1))
    assert replica_spread([0.3]) is None
    assert replica_spread([0.3, None, float('nan')]) is None


def test_combined_agreement():
    # |0.35 - 0.30| = 0.05; sqrt(0.03² + 0.04²) = 0.05: agree at 1 sigma (equal), not at 0.9 sigma
    assert combined_agreement(0.30, 0.03, 0.35, 0.04, 1.0)['agree']
    assert not combined_agreement(0.30, 0.03, 0.35, 0.04, 0.9)['agree']
    assert combined_agreement(0.30, None, 0.35, 0.04, 1.0) == {'agree': False, 'difference': None, 'allowed': None}


def _transport(ea, ea_err, spread, d1300, d1600):
    return {'Ea_eV': ea, 'Ea_err_eV': ea_err, 'ea_replica_spread_eV': spread,
            'D': {'1300': [d1300, 0.1e-5], '1600': [d1600, 0.1e-5]}}


def test_transport_convergence_criterion():
    previous = _transport(0.30, 0.03, 0.02, 1.0e-5, 2.0e-5)
    current = _transport(0.32, 0.03, 0.02, 1.05e-5, 2.05e-5)
    result = transport_convergence(previous, current, n_sigma=1.0, ea_spread_tolerance=0.05)
    assert result['converged'] and result['not_converged'] == []
    assert set(result['checks']) == {'ea_replica_spread', 'Ea', 'D_1300K', 'D_1600K'}
    # D at one temperature moved by 5 sigma: that temperature is named
    moved = _transport(0.32, 0.03, 0.02, 1.05e-5, 2.7e-5)
    result = transport_convergence(previous, moved, n_sigma=1.0, ea_spread_tolerance=0.05)
    assert not result['converged'] and result['not_converged'] == ['D_1600K']
    # the replicas disagree on Ea although Ea and D agree across iterations
    spread = _transport(0.32, 0.03, 0.08, 1.05e-5, 2.05e-5)
    assert transport_convergence(previous, spread, 1.0, 0.05)['not_converged'] == ['ea_replica_spread']
    # the first iteration never converges; a tolerance of zero never does either
    assert transport_convergence(None, current, 1.0, 0.05)['not_converged'] == ['previous_iteration']
    zero = transport_convergence(previous, current, n_sigma=0.0, ea_spread_tolerance=0.0)
    assert not zero['converged'] and 'Ea' in zero['not_converged'] and 'ea_replica_spread' in zero['not_converged']
    with pytest.raises(ValueError, match='n_sigma'):
        transport_convergence(previous, current, n_sigma=math.inf, ea_spread_tolerance=0.05)


def test_gpumd_active_sigma_f_is_the_sample_std_definition():
    """GPUMD's active.rst: σ_f = max_i sqrt(Σ_k σ²_ik), σ² the sample variance over the M models; computed here
    directly with numpy (ddof=1) for three models of random forces and compared."""
    from aiida_sseff.analysis.committee import gpumd_active_sigma_f

    rng = np.random.default_rng(7)
    forces = rng.normal(size=(3, 4, 5, 3))  # 3 models, 4 frames, 5 atoms
    expected = np.sqrt(np.var(forces, axis=0, ddof=1).sum(axis=2)).max(axis=1)
    np.testing.assert_allclose(gpumd_active_sigma_f(forces), expected, rtol=1e-12)
    np.testing.assert_allclose(gpumd_active_sigma_f(forces) / max_force_deviation(forces), np.sqrt(3 / 2))
