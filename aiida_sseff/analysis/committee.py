"""Committee (query-by-committee) numbers of the active-learning loop ``sseff.loop``: plain numpy, no aiida.

- :func:`max_force_deviation`: per frame, the maximum over atoms of the standard deviation of the force across the
  committee, ``max_i sqrt(<|F_i - <F_i>|^2>)`` (``<>`` the mean over models). This is DP-GEN's ``max_devi_f``
  (Zhang et al., Comput. Phys. Commun. 253, 107206 (2020), eq. 2; the ``model_devi_f_trust_lo/hi`` window of its
  ``param.json``) and NepTrain's selection quantity, so trust windows from either transfer.
- :func:`committee_forces`: the forces of each frame by each model (one ASE calculator per model, reused).
- :func:`trust_window`, :func:`select_candidates`: frames whose deviation lies in ``[lower, upper)`` (below: the
  committee already agrees, nothing to learn; above: the frame is likely unphysical, DP-GEN's "failed" class), then
  farthest-point sampling among them (:func:`aiida_sseff.analysis.sampling.select_by_fps`) away from the current
  training set, up to the labelling budget.
- :func:`replica_spread`, :func:`transport_convergence`: the stopping criterion on transport, not on RMSE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

__all__ = [
    'committee_forces',
    'combined_agreement',
    'gpumd_active_sigma_f',
    'max_force_deviation',
    'replica_spread',
    'select_candidates',
    'transport_convergence',
    'trust_window',
]

#: the quantity :func:`max_force_deviation` computes, stored beside its values
DEVIATION_DEFINITION = ('max over atoms of the standard deviation (population, over the committee) of the force '
                        'vector, eV/Å: DP-GEN max_devi_f (Zhang et al., CPC 253, 107206 (2020), eq. 2)')


def max_force_deviation(forces) -> np.ndarray:
    """DP-GEN's ``max_devi_f`` of each frame.

    :param forces: array ``(n_models, n_frames, n_atoms, 3)`` (eV/Å), or a list over models of lists over frames of
        ``(n_atoms, 3)`` arrays (frames may differ in size).
    :returns: ``(n_frames,)`` array, eV/Å.
    :raises ValueError: fewer than two models (one model has no disagreement), mismatched shapes, non-finite forces.
    """
    per_model = [list(model) for model in forces]
    if len(per_model) < 2:
        raise ValueError(f'a committee needs at least two models; got {len(per_model)}')
    n_frames = len(per_model[0])
    if any(len(model) != n_frames for model in per_model):
        raise ValueError('every model must give forces for the same frames')
    deviations = np.empty(n_frames)
    for frame in range(n_frames):
        stack = np.asarray([model[frame] for model in per_model], dtype=float)
        if stack.ndim != 3 or stack.shape[2] != 3:
            raise ValueError(f'frame {frame}: forces must be (n_atoms, 3) per model; got shape {stack.shape[1:]}')
        if not np.all(np.isfinite(stack)):
            raise ValueError(f'frame {frame}: non-finite forces')
        spread = stack - stack.mean(axis=0)
        deviations[frame] = float(np.sqrt((spread**2).sum(axis=2).mean(axis=0)).max())
    return deviations


def gpumd_active_sigma_f(forces) -> np.ndarray:
    """GPUMD's ``active`` uncertainty of each frame: max over atoms of √(σ²_x + σ²_y + σ²_z) with the *sample*
    variance (ddof = 1) over the models (GPUMD ``doc/gpumd/input_parameters/active.rst``), i.e.
    √(M / (M − 1)) × :func:`max_force_deviation`; for comparing a GPUMD ``active.out`` or threshold with a trust window
    of this module. Same input as :func:`max_force_deviation`."""
    per_model = list(forces)
    deviations = max_force_deviation(per_model)  # refuses fewer than two models
    return deviations * np.sqrt(len(per_model) / (len(per_model) - 1))


def committee_forces(structures: Sequence[Atoms], calculators: Sequence) -> list[list[np.ndarray]]:
    """Forces of every frame by every calculator: ``[model][frame] -> (n_atoms, 3)``; each calculator is reused for
    all frames (CPUNEP and MACE load their model once)."""
    result = []
    for calculator in calculators:
        per_frame = []
        for atoms in structures:
            copy = atoms.copy()
            copy.calc = calculator
            per_frame.append(np.asarray(copy.get_forces(), dtype=float))
        result.append(per_frame)
    return result


def _check_window(lower: float, upper: float) -> None:
    if not (math.isfinite(lower) and lower >= 0):
        raise ValueError(f'the trust window lower bound must be a finite number >= 0 (eV/Å); got {lower}')
    if not upper > lower:
        raise ValueError(f'the trust window upper bound ({upper}) must be larger than the lower bound ({lower})')


def trust_window(deviations, lower: float, upper: float) -> dict:
    """Indices of the frames with ``lower <= deviation < upper``, and the counts below and above (DP-GEN's accurate,
    candidate and failed classes). ``upper`` may be ``inf``."""
    _check_window(lower, upper)
    values = np.asarray(deviations, dtype=float)
    inside = np.flatnonzero((values >= lower) & (values < upper))
    return {'indices': [int(i) for i in inside], 'n_below': int(np.sum(values < lower)),
            'n_above': int(np.sum(values >= upper)), 'n_inside': int(inside.size)}


def select_candidates(structures: Sequence[Atoms], deviations, lower: float, upper: float, n_select: int,
                      seed_structures: Sequence[Atoms] | None = None, descriptor: str = 'untrained_nep',
                      per_species: bool = False) -> dict:
    """The frames to label: inside the trust window, then up to ``n_select`` of them by farthest-point sampling away
    from ``seed_structures`` (the current training set), so that the budget buys diverse frames.

    Deterministic: the descriptor (untrained NEP with fixed coefficients, or RDF) and the greedy max-min FPS have no
    random draw; equal inputs give equal indices.

    :returns: ``indices`` (into ``structures``, in the order picked; empty when no frame is in the window),
        ``deviations`` of the picks, ``n_below``, ``n_inside``, ``n_above``, ``window`` [lower, upper].
    """
    from aiida_sseff.analysis.sampling import select_by_fps

    if len(structures) != len(np.asarray(deviations)):
        raise ValueError(f'{len(structures)} structures but {len(np.asarray(deviations))} deviations')
    if isinstance(n_select, bool) or not isinstance(n_select, int | np.integer) or n_select < 1:
        raise ValueError(f'the number of frames to select must be a whole number >= 1; got {n_select!r}')
    window = trust_window(deviations, lower, upper)
    inside = window['indices']
    picked: list[int] = []
    if inside:
        subset = [structures[i] for i in inside]
        result, _ = select_by_fps(subset, n_select=min(int(n_select), len(subset)), seed_structures=seed_structures,
                                  descriptor=descriptor, per_species=per_species,
                                  names=('trust-window candidates', 'training set'))
        picked = [inside[int(i)] for i in result.indices]
    values = np.asarray(deviations, dtype=float)
    return {'indices': picked, 'deviations': [float(values[i]) for i in picked], 'n_below': window['n_below'],
            'n_inside': window['n_inside'], 'n_above': window['n_above'], 'window': [float(lower), float(upper)]}


def replica_spread(values) -> float | None:
    """Sample standard deviation (ddof = 1) of a quantity over the replicas (e.g. Ea of each committee model); None
    with fewer than two finite values (one replica has no spread)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(finite) < 2:
        return None
    return float(np.std(finite, ddof=1))


def combined_agreement(previous: float | None, previous_err: float | None, current: float | None,
                       current_err: float | None, n_sigma: float) -> dict:
    """Whether two estimates agree within ``n_sigma`` × their combined uncertainty sqrt(σ1² + σ2²)."""
    if None in (previous, previous_err, current, current_err) or not all(
            math.isfinite(float(v)) for v in (previous, previous_err, current, current_err)):
        return {'agree': False, 'difference': None, 'allowed': None}
    difference = abs(float(current) - float(previous))
    allowed = float(n_sigma) * math.hypot(float(previous_err), float(current_err))
    return {'agree': bool(difference <= allowed), 'difference': difference, 'allowed': allowed}


def transport_convergence(previous: dict | None, current: dict, n_sigma: float, ea_spread_tolerance: float) -> dict:
    """The loop's stopping criterion on transport.

    Converged when (1) Ea of the committee's best model agrees with the previous iteration's within ``n_sigma`` ×
    the combined uncertainty, (2) so does D at every temperature, and (3) the spread of Ea over the replicas (sample
    std) is at most ``ea_spread_tolerance`` (eV). The first iteration (no previous one) never converges.

    :param previous, current: ``{'Ea_eV', 'Ea_err_eV', 'ea_replica_spread_eV', 'D': {T: [D, D_err]}}``
        (temperatures as strings or numbers, D in cm²/s).
    :returns: ``converged``, ``checks`` (one entry per criterion with its numbers), ``not_converged`` (the names of
        the failed criteria, for the exit message).
    """
    if not (math.isfinite(n_sigma) and n_sigma >= 0):
        raise ValueError(f'n_sigma must be a finite number >= 0; got {n_sigma}')
    if not (math.isfinite(ea_spread_tolerance) and ea_spread_tolerance >= 0):
        raise ValueError(f'the Ea replica-spread tolerance must be a finite number >= 0 (eV); got {ea_spread_tolerance}')
    checks: dict = {}
    spread = current.get('ea_replica_spread_eV')
    checks['ea_replica_spread'] = {'agree': spread is not None and spread <= ea_spread_tolerance, 'value': spread,
                                   'allowed': ea_spread_tolerance}
    if previous is None:
        checks['previous_iteration'] = {'agree': False, 'reason': 'first iteration: nothing to compare with'}
    else:
        checks['Ea'] = combined_agreement(previous.get('Ea_eV'), previous.get('Ea_err_eV'), current.get('Ea_eV'),
                                          current.get('Ea_err_eV'), n_sigma)
        previous_d = {float(t): value for t, value in (previous.get('D') or {}).items()}
        for temperature, (d, d_err) in sorted((float(t), v) for t, v in (current.get('D') or {}).items()):
            before = previous_d.get(temperature, [None, None])
            checks[f'D_{temperature:g}K'] = combined_agreement(before[0], before[1], d, d_err, n_sigma)
    not_converged = [name for name, check in checks.items() if not check['agree']]
    return {'converged': not not_converged, 'checks': checks, 'not_converged': not_converged,
            'n_sigma': float(n_sigma), 'ea_spread_tolerance_eV': float(ea_spread_tolerance)}
