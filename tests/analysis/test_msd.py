"""Tests of aiida_sseff.analysis.msd: FFT MSD, unwrapping in triclinic NPT cells, drift removal, collective MSD."""

import numpy as np
import pytest

from aiida_sseff.analysis.msd import (
    compute_msd,
    framework_drift,
    msd_direct,
    msd_fft,
    remove_com_drift,
    unwrap_positions,
)


def _random_walk(seed, n_frames=257, n_atoms=6, step=0.3, origin=40.0):
    rng = np.random.default_rng(seed)
    return origin + np.cumsum(rng.normal(scale=step, size=(n_frames, n_atoms, 3)), axis=0)


def test_fft_equals_direct_sum_and_tidynamics():
    tidynamics = pytest.importorskip('tidynamics')
    x = _random_walk(0)
    fft = msd_fft(x)
    direct = msd_direct(x)
    # lag 0 is exactly 0 in the direct sum; the FFT gives round-off relative to the squared positions
    assert np.abs(fft[0]).max() < 1e-10 * np.abs(x).max() ** 2
    np.testing.assert_allclose(fft[1:], direct[1:], rtol=1e-10)
    # tidynamics.msd (Calandrini's algorithm, one particle at a time, summed over its D dimensions)
    reference = np.mean([[tidynamics.msd(x[:, a, d]) for d in range(3)] for a in range(x.shape[1])], axis=0).T
    np.testing.assert_allclose(fft[1:], reference[1:], rtol=1e-10)


def test_fft_chunking_selection_and_float32():
    x = _random_walk(1, n_atoms=11)
    full = msd_fft(x)
    # a tiny memory budget forces one atom per chunk: same numbers
    chunked, per_atom = msd_fft(x, per_atom=True, chunk_bytes=1)
    np.testing.assert_allclose(chunked, full, rtol=1e-12, atol=1e-12)
    assert per_atom.shape == (x.shape[0], 11, 3)
    np.testing.assert_allclose(per_atom.mean(axis=1), full, rtol=1e-12, atol=1e-12)
    sel = np.array([2, 5, 7])
    np.testing.assert_allclose(msd_fft(x, indices=sel)[1:], msd_direct(x[:, sel])[1:], rtol=1e-10)
    mask = np.zeros(11, bool)
    mask[sel] = True
    np.testing.assert_allclose(msd_fft(x, indices=mask), msd_fft(x, indices=sel))
    # float32 input is promoted chunk by chunk; the only difference is the float32 rounding of the input
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(msd_fft(x32)[1:], msd_direct(x32.astype(float))[1:], rtol=1e-9)


def test_msd_shape_errors():
    with pytest.raises(ValueError, match=r'expected shape \(n_frames, n_atoms, 3\)'):
        msd_fft(np.zeros((10, 3)))
    with pytest.raises(ValueError, match='at least 2 frames'):
        msd_fft(np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match='offset'):
        msd_fft(np.zeros((10, 4, 3)), offset=np.zeros((9, 3)))


def _npt_triclinic_cells(n_frames, seed, amplitude=0.01):
    """A skewed triclinic cell whose 9 components fluctuate independently by ~1 % per frame (NPT-like)."""
    rng = np.random.default_rng(seed)
    h0 = np.array([[10.0, 0.0, 0.0], [-4.0, 9.0, 0.0], [3.0, -2.5, 8.0]])
    return h0 * (1 + amplitude * rng.normal(size=(n_frames, 3, 3)))


def test_unwrap_image_flags_recover_affine_trajectory():
    """'image' is exact for trajectories defined in fractional space: r_t = u_t h_t (GPUMD/LAMMPS xu)."""
    n_frames = 400
    cells = _npt_triclinic_cells(n_frames, 2)
    rng = np.random.default_rng(3)
    # fractional unwrapped walk with steps up to ~0.15 of a cell: crosses the boundaries many times
    u = rng.uniform(0, 1, (1, 5, 3)) + np.cumsum(rng.normal(scale=0.05, size=(n_frames, 5, 3)), axis=0)
    wrapped = u % 1.0
    crossings = np.abs(np.diff(np.floor(u), axis=0)).sum()
    assert crossings > 50
    truth = np.einsum('fai,fij->faj', u, cells)
    unwrapped = unwrap_positions(wrapped, cells, method='image')
    # frame 0 is the Cartesian image of the wrapped frame 0: compare displacements
    np.testing.assert_allclose(unwrapped - unwrapped[0], truth - truth[0], atol=1e-10)


def test_unwrap_tor_recovers_local_increments_in_npt():
    """'tor' accumulates the physical increments, even when the cell changes between frames.

    Construction (what an MD code with a barostat that does not rescale this atom does): each frame the atom
    moves by a small Cartesian step and is wrapped into the *new* cell. Over many box crossings the image-flag
    unwrapping picks up n·(h_{t+1} - h_t) per frame (n the number of crossed cells): von Bülow et al. 2020.
    """
    n_frames = 600
    cells = _npt_triclinic_cells(n_frames, 4)
    rng = np.random.default_rng(5)
    steps = rng.normal(scale=0.2, size=(n_frames - 1, 4, 3)) + np.array([0.9, 0.4, -0.6])  # drifts across cells
    wrapped_cart = np.empty((n_frames, 4, 3))
    wrapped_cart[0] = rng.uniform(0, 1, (4, 3)) @ cells[0]
    for t in range(n_frames - 1):
        moved = wrapped_cart[t] + steps[t]
        frac = np.linalg.solve(cells[t + 1].T, moved.T).T % 1.0
        wrapped_cart[t + 1] = frac @ cells[t + 1]
    frac_all = np.einsum('faj,fji->fai', wrapped_cart, np.linalg.inv(cells))
    truth = np.concatenate([np.zeros((1, 4, 3)), np.cumsum(steps, axis=0)])
    tor = unwrap_positions(frac_all, cells, method='tor')
    np.testing.assert_allclose(tor - tor[0], truth, atol=1e-9)
    image = unwrap_positions(frac_all, cells, method='image')
    # the image-flag result wanders off by far more than the steps (several Å after ~50 crossed cells)
    assert np.abs((image - image[0]) - truth)[-1].max() > 1.0
    # for a fixed cell both schemes agree
    fixed = np.broadcast_to(cells[0], cells.shape)
    frac_fixed = np.einsum('faj,ji->fai', truth + wrapped_cart[0], np.linalg.inv(cells[0])) % 1.0
    np.testing.assert_allclose(unwrap_positions(frac_fixed, fixed, 'tor'),
                               unwrap_positions(frac_fixed, cells[0], 'image'), atol=1e-9)


def test_unwrap_errors():
    with pytest.raises(ValueError, match=r'cells: expected shape \(3, 3\) or \(5, 3, 3\)'):
        unwrap_positions(np.zeros((5, 2, 3)), np.eye(2))
    with pytest.raises(ValueError, match="method: expected 'tor' or 'image'"):
        unwrap_positions(np.zeros((5, 2, 3)), np.eye(3), method='lammps')


def test_remove_com_drift_restores_framework():
    rng = np.random.default_rng(6)
    n_frames = 50
    framework = rng.uniform(0, 10, (1, 6, 3)) + rng.normal(scale=0.01, size=(n_frames, 6, 3))
    li = _random_walk(7, n_frames=n_frames, n_atoms=3)
    drift = np.cumsum(rng.normal(scale=0.5, size=(n_frames, 1, 3)), axis=0)
    drift -= drift[0]
    pos = np.concatenate([li, framework], axis=1) + drift
    masses = np.array([6.94] * 3 + [16.0, 16.0, 91.2, 91.2, 138.9, 138.9])
    fw = np.arange(3, 9)
    corrected = remove_com_drift(pos, masses, fw)
    com = np.einsum('fai,a->fi', corrected[:, fw], masses[fw]) / masses[fw].sum()
    np.testing.assert_allclose(com - com[0], 0.0, atol=1e-12)
    # the remaining Li motion is the walk up to the framework's own (tiny) vibration
    np.testing.assert_allclose(corrected[:, :3] - corrected[0, :3], li - li[0], atol=0.05)
    np.testing.assert_allclose(framework_drift(pos, masses, fw)[-1], (pos - corrected)[-1, 0], atol=1e-12)


def test_compute_msd_collective_and_drift():
    n_frames = 300
    walk = _random_walk(8, n_frames=n_frames, n_atoms=2)
    # four Li moving as two rigid pairs: the summed displacement is 2×(Δr_a + Δr_b)
    li = np.concatenate([walk, walk], axis=1)
    framework = np.full((n_frames, 2, 3), 5.0)
    pos = np.concatenate([li, framework], axis=1)
    symbols = ['Li'] * 4 + ['O', 'O']
    res = compute_msd(pos, symbols, 'Li', dt_ps=0.05)
    np.testing.assert_allclose(res.time_ps[:3], [0, 0.05, 0.1])
    assert res.n_atoms == 4 and res.drift_removed
    np.testing.assert_allclose(res.msd_xyz[1:], msd_direct(walk)[1:], rtol=1e-10)
    np.testing.assert_allclose(res.msd_total, res.msd_xyz.sum(axis=1))
    summed = 2 * walk.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(res.msd_collective_xyz[1:], msd_direct(summed)[1:] / 4, rtol=1e-10)
    # N ions with identical displacements: <|N Δr|²>/N = N·MSD, an exact identity (here N = 4)
    same = np.concatenate([walk[:, :1]] * 4 + [framework], axis=1)
    res_same = compute_msd(same, symbols, 'Li', dt_ps=0.05)
    np.testing.assert_allclose(res_same.msd_collective[1:], 4 * res_same.msd_total[1:], rtol=1e-10)
    # a rigid drift of everything is removed (framework O atoms define it)
    shift = np.linspace(0, 30, n_frames)[:, None, None] * np.array([1.0, -0.5, 0.2])
    drifted = compute_msd(pos + shift, symbols, 'Li', dt_ps=0.05)
    np.testing.assert_allclose(drifted.msd_xyz, res.msd_xyz, atol=1e-9)
    raw = compute_msd(pos + shift, symbols, 'Li', dt_ps=0.05, remove_drift=False)
    assert raw.msd_total[-1] > 10 * res.msd_total[-1]
    with pytest.raises(ValueError, match="no atom of species 'Na'"):
        compute_msd(pos, symbols, 'Na', dt_ps=0.05)
    with pytest.raises(ValueError, match='expected 6 entries'):
        compute_msd(pos, symbols[:5], dt_ps=0.05)
    with pytest.raises(ValueError, match='dt_ps'):
        compute_msd(pos, symbols)
