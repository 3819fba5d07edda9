"""Files of mace-torch 0.3.16 training (``mace_run_train``) and evaluation (``mace_eval_configs``), without AiiDA.

- :func:`write_mace_xyz`: labelled structures as the extxyz that ``mace_run_train`` reads, labels under the
  ``REF_`` keys (``REF_energy`` eV, ``REF_forces`` eV/Å, ``REF_stress`` eV/Å³ ASE sign, 9 values). mace-torch's own
  default keys are these (``mace/tools/arg_parser.py``, ``DefaultKeys``); plain ``energy``/``forces`` would be
  taken over by ASE's SinglePointCalculator when the file is read and clash with the model's own predictions.
- :func:`variant_options` / :data:`VARIANTS`: the named architectures of the perspective paper (MACE-T0-I,
  MACE-T0-E, MACE-T1-E, MACE-T1-E-LES) as ``mace_run_train`` options (see the docstring of :data:`VARIANTS`).
- :func:`training_arguments`: the ``mace_run_train`` command line from a parameter dict, checked against
  mace-torch's own argument parser when mace-torch is importable.
- :func:`read_results`: ``results/<tag>_train.txt`` (one JSON object per line; ``mode`` ``eval`` rows hold the
  validation loss and RMSEs of each evaluated epoch, ``opt`` rows the loss of each optimiser step) as arrays.
- :func:`read_log`: the training log ``logs/<tag>.log``: completion, last epoch, final error tables.
- :func:`read_predictions`: the extxyz written by ``mace_eval_configs`` (``MACE_`` predictions beside the ``REF_``
  targets) as NEP-style predicted/target tables (:class:`aiida_sseff.io.nep.PredictionTarget`).

Units: eV, Å, eV/Å, eV/Å³; mace's results file is in eV, eV/Å and eV/Å³; its log tables in meV.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from aiida_sseff.io.nep import GPUMD_TENSOR_COMPONENTS, PredictionTarget
from aiida_sseff.io.structures import get_labels
from aiida_sseff.units import EV_PER_A3_IN_GPA

__all__ = [
    'PROTECTED_OPTIONS',
    'VARIANTS',
    'MaceVariant',
    'UnknownVariantError',
    'les_available',
    'read_log',
    'read_predictions',
    'read_results',
    'training_arguments',
    'variant_options',
    'write_mace_xyz',
]

ENERGY_KEY, FORCES_KEY, STRESS_KEY = 'REF_energy', 'REF_forces', 'REF_stress'
#: prefix of the predictions that ``mace_eval_configs --info_prefix`` writes
PREDICTION_PREFIX = 'MACE_'


class UnknownVariantError(ValueError):
    """A variant name that is not one of :data:`VARIANTS`, or one that cannot run here (LES)."""


@dataclass(frozen=True)
class MaceVariant:
    """``mace_run_train`` options fixed by a named variant."""

    num_interactions: int
    max_L: int  # noqa: N815  (mace-torch's own option name)
    model: str = 'ScaleShiftMACE'
    requires: str | None = None  # an extra package the variant needs


#: Named variants of the perspective paper (issue #9), as mace-torch options. ``T<n>``: n message-passing layers
#: beyond the first, so T0 = ``num_interactions 1`` (receptive field r_max) and T1 = ``num_interactions 2``
#: (receptive field 2 r_max). ``I`` (invariant): messages carry scalars only, ``max_L 0``, hidden irreps
#: ``Nx0e``; ``E`` (equivariant): ``max_L 1``, hidden irreps ``Nx0e+Nx1o`` (mace-torch builds them from
#: ``num_channels`` N and ``max_L``). The correlation order (body order − 1 of each layer) is ``correlation`` in the
#: parameters, the same for every variant. ``LES`` adds the latent Ewald summation of Cheng (``--model MACELES``),
#: which imports the ``les`` package (github.com/ChengUCB/les; not on PyPI).
VARIANTS = {
    'MACE-T0-I': MaceVariant(num_interactions=1, max_L=0),
    'MACE-T0-E': MaceVariant(num_interactions=1, max_L=1),
    'MACE-T1-E': MaceVariant(num_interactions=2, max_L=1),
    'MACE-T1-E-LES': MaceVariant(num_interactions=2, max_L=1, model='MACELES', requires='les'),
}

#: options set by the CalcJob itself (files, keys, variant, device, restart); a parameter dict may not give them
PROTECTED_OPTIONS = frozenset({
    'name', 'seed', 'work_dir', 'log_dir', 'model_dir', 'checkpoints_dir', 'results_dir', 'downloads_dir',
    'train_file', 'valid_file', 'test_file', 'test_dir', 'energy_key', 'forces_key', 'stress_key', 'virials_key',
    'E0s', 'device', 'restart_latest', 'num_interactions', 'max_L', 'hidden_irreps', 'model', 'compute_stress',
    'loss', 'distributed', 'wandb', 'config',
})


def les_available() -> bool:
    """Whether the ``les`` package that ``MACELES`` imports is installed."""
    return importlib.util.find_spec('les') is not None


def variant_options(name: str) -> MaceVariant:
    """The options of a named variant.

    :raises UnknownVariantError: an unknown name (the known ones are listed), or ``MACE-T1-E-LES`` where the
        ``les`` package is not installed.
    """
    if name not in VARIANTS:
        raise UnknownVariantError(f'unknown MACE variant `{name}`; choose one of {", ".join(VARIANTS)}')
    variant = VARIANTS[name]
    if variant.requires == 'les' and not les_available():
        raise UnknownVariantError(
            f'variant `{name}` needs the `les` package (latent Ewald summation, github.com/ChengUCB/les), which is '
            'not installed and not on PyPI; train MACE-T1-E instead, or install les from its repository')
    return variant


def write_mace_xyz(structures: Sequence[Atoms], path: str | Path, stress: bool = True) -> Path:
    """Write labelled structures as a ``mace_run_train`` extxyz with ``REF_energy``/``REF_forces``/``REF_stress``.

    :param stress: write ``REF_stress`` (3x3, ASE sign, eV/Å³) for the frames that have one.
    ``info['config_type']`` is kept (mace reports errors per config type); ``info['weight']`` becomes mace's
    ``config_weight``. Frames are written periodic, as our datasets are.

    :raises ValueError: no structures, or a frame without energy or forces (index named).
    """
    path = Path(path)
    if len(structures) == 0:
        raise ValueError(f'cannot write {path}: no structures')
    frames = []
    for index, atoms in enumerate(structures):
        labels = get_labels(atoms)
        if 'energy' not in labels or 'forces' not in labels:
            raise ValueError(f'structure {index}: needs an energy and forces to be a MACE training structure')
        copy = Atoms(symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.get_cell(),
                     pbc=atoms.pbc)
        copy.info[ENERGY_KEY] = float(np.asarray(labels['energy']).reshape(()))
        copy.arrays[FORCES_KEY] = np.asarray(labels['forces'], dtype=float)
        if stress:
            tensor = _stress_3x3(labels, atoms)
            if tensor is not None:
                copy.info[STRESS_KEY] = tensor.reshape(-1)
        if 'config_type' in atoms.info:
            copy.info['config_type'] = str(atoms.info['config_type'])
        if 'weight' in atoms.info:
            copy.info['config_weight'] = float(atoms.info['weight'])
        frames.append(copy)
    write(str(path), frames, format='extxyz')
    return path


def _stress_3x3(labels: dict, atoms: Atoms) -> np.ndarray | None:
    if 'stress' in labels:
        stress = np.asarray(labels['stress'], dtype=float)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        return stress.reshape(3, 3)
    if 'virial' in labels:
        return -np.asarray(labels['virial'], dtype=float).reshape(3, 3) / atoms.get_volume()
    return None


#: the ``store_true`` switches of mace_run_train 0.3.16 (given bare, no value), for when mace-torch is not importable
_SWITCHES = frozenset({'ema', 'swa', 'stage_two', 'lbfgs', 'restart_latest', 'save_cpu', 'keep_checkpoints',
                       'save_all_checkpoints', 'amsgrad', 'dry_run', 'wandb', 'distributed', 'pair_repulsion'})


@functools.lru_cache(maxsize=1)
def _mace_options() -> dict[str, bool] | None:
    """mace-torch's ``mace_run_train`` options -> whether each is a bare switch (``store_true``); None where
    mace-torch is not importable."""
    try:
        from aiida_sseff.compat import import_mace

        import_mace()
        from mace.tools.arg_parser import build_default_arg_parser
    except ImportError:
        return None
    parser = build_default_arg_parser()
    return {option.lstrip('-'): action.nargs == 0 and action.const is True
            for action in parser._actions for option in action.option_strings}


def _format_value(value) -> str:
    if isinstance(value, bool):
        return 'True' if value else 'False'
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


def training_arguments(parameters: dict, variant: str, *, name: str, seed: int, train_file: str,
                       valid_file: str | None = None, test_file: str | None = None, e0s: dict | str = 'average',
                       stress: bool = False, device: str = 'cpu', restart: bool = False) -> list[str]:
    """The ``mace_run_train`` arguments for ``parameters`` (mace-torch option names without ``--``) and a variant.

    The variant fixes ``num_interactions``, ``max_L`` (a parameter ``max_L`` may raise it for an ``E`` variant) and
    ``model``; ``stress`` selects mace's ``stress`` loss (energy, forces and stress) with ``compute_stress``, else
    its ``weighted`` energy/forces loss. ``e0s`` is ``'average'`` (least squares on the training set), or
    ``{element: eV}``. Booleans are written ``True``/``False``, lists/dicts as JSON, as mace's parser reads them.

    :raises ValueError: a protected option in ``parameters`` (see :data:`PROTECTED_OPTIONS`), an option mace-torch
        does not know, an invariant variant with ``max_L`` > 0 or an equivariant one with ``max_L`` 0.
    :raises UnknownVariantError: see :func:`variant_options`.
    """
    spec = variant_options(variant)
    parameters = dict(parameters)
    max_l = parameters.pop('max_L', spec.max_L)
    if (spec.max_L == 0) != (int(max_l) == 0):
        kind = 'invariant (I): max_L must be 0' if spec.max_L == 0 else 'equivariant (E): max_L must be at least 1'
        raise ValueError(f'variant `{variant}` is {kind}, got max_L = {max_l}')
    protected = sorted(set(parameters) & PROTECTED_OPTIONS)
    if protected:
        raise ValueError(f'parameters may not set {", ".join(protected)}: the CalcJob sets them (variant, files, '
                         'keys, seed, device, e0s and stress inputs)')
    known = _mace_options()
    switches = _SWITCHES if known is None else {key for key, switch in known.items() if switch}
    if known is not None:
        unknown = sorted(key for key in parameters if key not in known)
        if unknown:
            raise ValueError(f'mace_run_train {_mace_version()} has no option(s) {", ".join(unknown)}')
    if isinstance(e0s, dict):
        from ase.data import atomic_numbers

        try:
            e0s_text = json.dumps({int(atomic_numbers[element]): float(energy) for element, energy in e0s.items()})
        except KeyError as exception:
            raise ValueError(f'e0s: `{exception.args[0]}` is not an element symbol') from exception
    elif e0s == 'average':
        e0s_text = 'average'
    else:
        raise ValueError(f"e0s must be 'average' or a dict of element: energy (eV), got {e0s!r}")
    arguments = {
        'name': name, 'seed': int(seed), 'device': device, 'model': spec.model,
        'num_interactions': spec.num_interactions, 'max_L': int(max_l),
        'train_file': train_file, 'E0s': e0s_text,
        'energy_key': ENERGY_KEY, 'forces_key': FORCES_KEY, 'stress_key': STRESS_KEY,
        'compute_stress': bool(stress), 'loss': 'stress' if stress else 'weighted',
    }
    if valid_file is not None:
        arguments['valid_file'] = valid_file
    if test_file is not None:
        arguments['test_file'] = test_file
    arguments.update(parameters)
    result = []
    for key, value in arguments.items():
        if key in switches:  # mace's store_true switches take no value
            result.extend([f'--{key}'] if value else [])
        else:
            result.extend([f'--{key}', _format_value(value)])
    if restart:
        result.append('--restart_latest')
    return result


def _mace_version() -> str:
    try:
        from importlib.metadata import version

        return version('mace-torch')
    except Exception:  # not installed: only named in a message
        return ''


# --------------------------------------------------------------------------------------------------- outputs

_EVAL_COLUMNS = ('loss', 'rmse_e_per_atom', 'rmse_f', 'rmse_stress', 'rmse_virials_per_atom', 'mae_e_per_atom',
                 'mae_f', 'rel_rmse_f')


def read_results(path: str | Path) -> dict[str, np.ndarray]:
    """Read mace-torch's ``results/<tag>_train.txt`` (one JSON object per line) into per-epoch arrays.

    Returns ``epoch`` (the evaluated epochs; -1 for the evaluation before training), ``valid_<column>`` for the
    validation metrics of each ``eval`` row (``loss``, ``rmse_e_per_atom`` eV/atom, ``rmse_f`` eV/Å,
    ``rmse_stress`` eV/Å³, ``rmse_virials_per_atom`` eV/atom, ``mae_e_per_atom``, ``mae_f``, ``rel_rmse_f`` %;
    NaN where mace did not compute it), and ``train_loss``: the mean loss of the ``opt`` rows (optimiser steps)
    of the same epoch (NaN for -1). A restarted run appends to the same file: a repeated epoch keeps its last row.

    :raises ValueError: a line that is not JSON, or no ``eval`` row.
    :raises FileNotFoundError: no such file.
    """
    path = Path(path)
    evals: dict[int, dict] = {}
    opt_losses: dict[int, list[float]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exception:
            raise ValueError(f'{path.name}, line {number}: not a JSON object ({exception})') from exception
        epoch = -1 if row.get('epoch') is None else int(row['epoch'])
        if row.get('mode') == 'eval':
            evals[epoch] = row
        elif row.get('mode') == 'opt':
            opt_losses.setdefault(epoch, []).append(_float(row.get('loss')))
    if not evals:
        raise ValueError(f'{path.name}: no evaluation rows (mode "eval"); the training did not report an epoch')
    epochs = sorted(evals)
    result = {'epoch': np.asarray(epochs, dtype=int)}
    for column in _EVAL_COLUMNS:
        result[f'valid_{column}'] = np.asarray([_float(evals[e].get(column)) for e in epochs], dtype=float)
    result['train_loss'] = np.asarray([np.mean(opt_losses[e]) if opt_losses.get(e) else math.nan for e in epochs],
                                      dtype=float)
    return result


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


_TABLE_START = re.compile(r'Error-table on (?P<sets>[\w ]+):\s*$')


def read_log(path: str | Path) -> dict:
    """Read a ``mace_run_train`` log: ``complete`` (``Training complete`` logged), ``done`` (``Done``, the last
    line of a successful run), ``last_epoch`` (the last ``Epoch N:`` report, None before the first),
    ``start_epoch`` (the first ``Epoch N:`` of this run: > 0 after a restart), ``error_tables``:
    ``{config_type: {column header: value}}`` of the final error tables (values in the log's meV units; ``None``
    where mace printed None), and ``errors``: ERROR lines.
    """
    text = Path(path).read_text(errors='replace')
    lines = text.splitlines()
    epochs = [int(m.group(1)) for m in re.finditer(r'INFO: Epoch (\d+):', text)]
    result = {
        'complete': 'INFO: Training complete' in text,
        'done': bool(lines) and lines[-1].rstrip().endswith('INFO: Done'),
        'last_epoch': epochs[-1] if epochs else None,
        'start_epoch': epochs[0] if epochs else None,
        'error_tables': {},
        'errors': [line for line in lines if ' ERROR: ' in line or 'Traceback' in line],
    }
    index = 0
    while index < len(lines):
        if _TABLE_START.search(lines[index]):
            index, table = _read_table(lines, index + 1)
            result['error_tables'].update(table)
        else:
            index += 1
    return result


def _read_table(lines: list[str], index: int) -> tuple[int, dict]:
    """A prettytable block (+---+ / | a | b | rows) starting at ``lines[index]``."""
    rows = []
    while index < len(lines) and lines[index].startswith(('+', '|')):
        if lines[index].startswith('|'):
            rows.append([cell.strip() for cell in lines[index].strip().strip('|').split('|')])
        index += 1
    if not rows:
        return index, {}
    header, body = rows[0], rows[1:]
    table = {}
    for row in body:
        values = {}
        for column, cell in zip(header[1:], row[1:], strict=False):
            values[column] = None if cell in ('None', '') else _float(cell)
        table[row[0]] = values
    return index, table


def read_predictions(path: str | Path, prefix: str = PREDICTION_PREFIX) -> dict[str, PredictionTarget]:
    """Predictions of ``mace_eval_configs --info_prefix <prefix>`` against the ``REF_`` targets of the same file.

    Returns the tables of a NEP ``*_train.out`` set (:func:`aiida_sseff.io.nep.read_training_directory`), rows in
    file order: ``energy`` (eV/atom, (n,)), ``force`` (eV/Å, (N_atoms, 3)) and, where the model predicted stress,
    ``virial`` (virial/N = −stress·V/N, eV/atom, (n, 6)) and ``stress`` (virial/V in GPa, the sign of GPUMD's
    ``stress_*.out``, i.e. −ASE stress; (n, 6)), components xx yy zz xy yz zx; NaN targets for frames without
    ``REF_stress``.

    :raises ValueError: a frame without the predicted or the target energy/forces (index named).
    """
    path = Path(path)
    frames = read(io.StringIO(path.read_text()), index=':', format='extxyz')
    if not frames:
        raise ValueError(f'{path.name}: no frames')
    energy_p, energy_t, force_p, force_t = [], [], [], []
    virial_p, virial_t = [], []
    has_stress = False
    for index, atoms in enumerate(frames):
        n = len(atoms)
        info, arrays = atoms.info, atoms.arrays
        for key, store in ((prefix + 'energy', info), (ENERGY_KEY, info), (prefix + 'forces', arrays),
                           (FORCES_KEY, arrays)):
            if key not in store:
                raise ValueError(f'{path.name}, frame {index}: no `{key}`')
        energy_p.append(float(info[prefix + 'energy']) / n)
        energy_t.append(float(info[ENERGY_KEY]) / n)
        force_p.append(np.asarray(arrays[prefix + 'forces'], dtype=float))
        force_t.append(np.asarray(arrays[FORCES_KEY], dtype=float))
        volume = atoms.get_volume()
        predicted = info.get(prefix + 'stress')
        if predicted is not None:
            has_stress = True
        virial_p.append(_virial_voigt(predicted, volume, n))
        virial_t.append(_virial_voigt(info.get(STRESS_KEY), volume, n))
    result = {
        'energy': PredictionTarget(np.asarray(energy_p), np.asarray(energy_t)),
        'force': PredictionTarget(np.concatenate(force_p), np.concatenate(force_t)),
    }
    if has_stress:
        virial_p, virial_t = np.asarray(virial_p), np.asarray(virial_t)
        volume_per_atom = np.asarray([atoms.get_volume() / len(atoms) for atoms in frames])[:, None]
        result['virial'] = PredictionTarget(virial_p, virial_t)
        result['stress'] = PredictionTarget(virial_p / volume_per_atom * EV_PER_A3_IN_GPA,
                                            virial_t / volume_per_atom * EV_PER_A3_IN_GPA)
    return result


_VOIGT_INDEX = {'xx': (0, 0), 'yy': (1, 1), 'zz': (2, 2), 'xy': (0, 1), 'yz': (1, 2), 'zx': (2, 0)}


def _virial_voigt(stress, volume: float, n_atoms: int) -> np.ndarray:
    """virial/N (eV/atom) in GPUMD's component order from an ASE-sign stress (9 values or 3x3); NaN if absent."""
    if stress is None:
        return np.full(6, np.nan)
    tensor = np.asarray(stress, dtype=float).reshape(3, 3)
    virial = -tensor * volume / n_atoms
    return np.asarray([virial[_VOIGT_INDEX[c]] for c in GPUMD_TENSOR_COMPONENTS])
