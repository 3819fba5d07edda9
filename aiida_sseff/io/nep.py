"""Files of NEP training: ``nep.in`` (write, read, validate), ``loss.out`` and the ``*_train.out``/``*_test.out``
prediction files, for GPUMD's ``nep`` executable and for ``neppo train`` (which reads and writes the same files).

Formats: https://gpumd.org/nep/input_files/nep_in.html and https://gpumd.org/nep/output_files/index.html;
facts checked in GPUMD's ``src/main_nep`` (parameters.cu, fitness.cu, dataset.cu, structure.cu) and in neppo 1.0
(``neppo/nep_in.py``, ``neppo/output.py``, ``neppo/trainer.py``).

Units: energies and virials in the ``*.out`` files are per atom (eV/atom), forces eV/Å, ``stress_*.out`` GPa
(virial/volume, i.e. the *negative* of the ASE stress), tensor components in GPUMD order xx yy zz xy yz zx.
:func:`rmse_from_outputs` reports meV/atom, meV/Å and GPa.

No aiida imports here (house rule for ``aiida_sseff.io``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from calorine.nep.io import read_loss as _calorine_read_loss
from calorine.nep.io import read_nepfile as _calorine_read_nepfile

from aiida_sseff.units import EV_PER_A3_IN_GPA
from aiida_sseff.utils import json_safe

__all__ = [
    'DEFAULT_BATCH',
    'GPUMD_TENSOR_COMPONENTS',
    'MISSING_TARGET',
    'NEP_KEYWORDS',
    'NepKeyword',
    'PredictionTarget',
    'read_bec_out',
    'read_charge_out',
    'read_energy_out',
    'read_force_out',
    'read_loss',
    'read_nep_in',
    'read_stress_out',
    'read_training_directory',
    'read_virial_out',
    'charge_rmse',
    'mean_charge_by_element',
    'rmse_from_outputs',
    'loss_summary',
    'rows_follow_input_order',
    'summarise_training_directory',
    'training_summary',
    'validate_nep_parameters',
    'virial_from_stress',
    'write_nep_in',
]

#: Order of the six tensor components in ``virial_*.out`` / ``stress_*.out`` (GPUMD ``Fitness::output``).
GPUMD_TENSOR_COMPONENTS = ('xx', 'yy', 'zz', 'xy', 'yz', 'zx')

#: Target value GPUMD and neppo store for a frame without virial/stress (GPUMD ``structure.cu``: -1e6 per atom).
MISSING_TARGET = -1.0e6

PROGRAMS = ('nep', 'neppo')


@dataclass(frozen=True)
class NepKeyword:
    """Schema of one ``nep.in`` keyword.

    ``kind``: python type of each value; ``count``: (min, max) number of values; ``programs``: programs that
    accept it; ``ignored_by``: programs that accept the line but ignore it (neppo warns, we drop it);
    ``architecture``: part of the model (always written explicitly); ``default``: value written when absent
    (``None``: written only when given); ``doc``: meaning and unit.
    """

    kind: type
    count: tuple[int, int]
    programs: tuple[str, ...] = PROGRAMS
    ignored_by: tuple[str, ...] = ()
    architecture: bool = False
    default: Any = None
    doc: str = ''


# Defaults are those of GPUMD >= v5.3 (n_max 6 6, basis_size 6 6 -- before v5.3 they were 4 4 and 8 8), and they
# agree with neppo's; the architecture keywords are always written, so the model never depends on a version's
# default. Ranges are the intersection of what GPUMD versions accept (docs and parameters.cu of v4.x ... dev):
# e.g. newer GPUMD allows rc_R up to 100 Å, zbl up to 4 Å and l_max_3b 2..8, older ones only rc_R <= 10 Å,
# zbl <= 2.5 Å and l_max_3b = 4; calorine's CPUNEP evaluates one hidden layer only.
NEP_KEYWORDS: dict[str, NepKeyword] = {
    'type': NepKeyword(str, (1, 103), architecture=True, doc='chemical symbols, in model order (derived)'),
    'version': NepKeyword(int, (1, 1), architecture=True, default=4, doc='NEP version; only 4 (v5.3+ refuse 3)'),
    'model_type': NepKeyword(int, (1, 1), architecture=True, doc='0 potential (only 0 supported here)'),
    'cutoff': NepKeyword(float, (2, 2), architecture=True, default=(8.0, 4.0),
                         doc='radial and angular cutoff rc_R rc_A in Å, 3 <= rc_A <= rc_R <= 10'),
    'n_max': NepKeyword(int, (2, 2), architecture=True, default=(6, 6),
                        doc='radial/angular descriptor sizes, 0..12 and 0..8'),
    'basis_size': NepKeyword(int, (2, 2), architecture=True, default=(6, 6),
                             doc='radial/angular basis sizes, 0..16 and 0..12'),
    'l_max': NepKeyword(int, (1, 3), architecture=True, default=(4, 2, 0),
                        doc='l_max_3b (4) [l_max_4b (0|2) [l_max_5b (0|1)]]'),
    'neuron': NepKeyword(int, (1, 1), architecture=True, default=30, doc='neurons of the single hidden layer, 1..120'),
    'zbl': NepKeyword(float, (1, 1), architecture=True, doc='outer ZBL cutoff in Å, 1..3 (optional)'),
    'charge_mode': NepKeyword(int, (1, 1), architecture=True,
                              doc='0 plain NEP; 1 qNEP with real- and reciprocal-space Coulomb, 2 qNEP with the '
                                  'reciprocal-space part only; written only when non-zero (older GPUMD lack it)'),
    'lambda_1': NepKeyword(float, (1, 1), doc='L1 regularization weight >= 0 (absent: GPUMD automatic, neppo none)'),
    'lambda_2': NepKeyword(float, (1, 1), doc='L2 regularization weight >= 0 (absent: GPUMD automatic, neppo none)'),
    'lambda_e': NepKeyword(float, (1, 1), default=1.0, doc='energy loss weight >= 0'),
    'lambda_f': NepKeyword(float, (1, 1), default=1.0, doc='force loss weight >= 0'),
    'lambda_v': NepKeyword(float, (1, 1), default=0.1, doc='virial loss weight >= 0'),
    'lambda_shear': NepKeyword(float, (1, 1), doc='extra weight of the shear virial components >= 0'),
    # GPUMD knows lambda_q since v4.3 and lambda_z since v4.8 (src/main_nep/parameters.cu of the tags); older
    # versions abort on them, so they are written only when given
    'lambda_q': NepKeyword(float, (1, 1), doc='qNEP: weight of the total-charge loss (e/atom) >= 0 (default 0.1)'),
    'lambda_z': NepKeyword(float, (1, 1),
                           doc='qNEP: weight of the Born-effective-charge loss (e) >= 0 (default 0.5; no effect '
                               'without BEC targets)'),
    'type_weight': NepKeyword(float, (1, 103), doc='force weight per type, one value per element'),
    'force_delta': NepKeyword(float, (1, 1), programs=('nep',), doc='force-loss modifier in eV/Å (GPUMD only)'),
    'batch': NepKeyword(int, (1, 1), default={'nep': 1000, 'neppo': 32}, doc='structures per batch >= 1'),
    'population': NepKeyword(int, (1, 1), ignored_by=('neppo',), default={'nep': 50},
                             doc='SNES population size >= 1 (neppo ignores it)'),
    'generation': NepKeyword(int, (1, 1), default=100000, doc='SNES generations / neppo optimizer steps >= 1'),
    'prediction': NepKeyword(int, (1, 1), doc='1: evaluate nep.txt instead of training'),
    'seed': NepKeyword(int, (1, 1), doc='random seed >= 0 (neppo; GPUMD only in recent development versions)'),
    'output_interval': NepKeyword(int, (1, 1), programs=('neppo',),
                                  doc='steps between loss.out rows (neppo; newer GPUMD only)'),
    'learning_rate': NepKeyword(float, (2, 2), programs=('neppo',), doc='AdamW start and end rate (neppo only)'),
    'weight_decay': NepKeyword(float, (1, 1), programs=('neppo',), doc='AdamW weight decay >= 0 (neppo only)'),
    'output_descriptor': NepKeyword(int, (1, 1), programs=('nep',), doc='write descriptors (GPUMD only)'),
}

# Stable order of the lines of nep.in: ``type`` first (GPUMD rejects cutoff/type_weight before it).
_ORDER = tuple(NEP_KEYWORDS)

_REASONS_NOT_KNOWN = {
    ('force_delta', 'neppo'): 'neppo 1.0 refuses force_delta (NotImplementedError in neppo.nep_in.read_nep_in)',
    ('output_descriptor', 'neppo'): 'neppo 1.0 refuses output_descriptor (NotImplementedError)',
    ('output_interval', 'nep'): 'GPUMD nep releases write loss.out every 100 generations and do not know '
                                'output_interval (only newer development versions do)',
    ('learning_rate', 'nep'): 'learning_rate is a neppo (AdamW) keyword; GPUMD nep (SNES) aborts on it',
    ('weight_decay', 'nep'): 'weight_decay is a neppo (AdamW) keyword; GPUMD nep (SNES) aborts on it',
}


def _as_values(key: str, value: Any) -> list:
    """Turn a scalar, string or sequence into a list of the keyword's values; ValueError if not convertible."""
    spec = NEP_KEYWORDS[key]
    if isinstance(value, str):
        raw = value.split()
    elif isinstance(value, Sequence | np.ndarray):
        raw = list(value)
    else:
        raw = [value]
    low, high = spec.count
    if not low <= len(raw) <= high:
        raise ValueError(f'nep.in keyword {key!r}: got {len(raw)} value(s) {raw}, expected {low} to {high}')
    try:
        if spec.kind is int:
            values = []
            for item in raw:
                number = float(item)
                if not number.is_integer():
                    raise ValueError
                values.append(int(number))
            return values
        if spec.kind is float:
            values = [float(item) for item in raw]
            if not all(math.isfinite(v) for v in values):
                raise ValueError
            return values
        return [str(item) for item in raw]
    except (TypeError, ValueError):
        raise ValueError(f'nep.in keyword {key!r}: values {raw} are not {spec.kind.__name__}s') from None


def _check_range(key: str, value: float, low: float | None, high: float | None, what: str = '') -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f'{low if low is not None else "-inf"} <= {what or key} <= {high if high is not None else "inf"}'
        raise ValueError(f'nep.in keyword {key!r}: {what or "value"} = {value} out of range, expected {bounds}')


def validate_nep_parameters(
    params: Mapping[str, Any],
    elements: Sequence[str],
    program: str = 'nep',
    *,
    allow_gpumd_seed: bool = False,
) -> dict[str, Any]:
    """Check ``nep.in`` parameters for ``program`` and return them normalised, defaults filled in.

    :param params: keyword -> value (scalar, sequence, or the whitespace-separated string of ``nep.in``).
        ``type`` may be omitted; if given it must list exactly ``elements`` (a leading count is allowed).
    :param elements: chemical symbols of the dataset, in the order they shall have in the model.
    :param program: ``'nep'`` (GPUMD) or ``'neppo'`` (``neppo train``).
    :param allow_gpumd_seed: GPUMD ``nep`` knows ``seed`` only in recent development versions
        (``parse_seed`` in ``src/main_nep/parameters.cu``, doc ``seed.rst``); released versions checked abort on it
        as an unknown keyword. Set this to accept ``seed`` for ``program='nep'``.
    :returns: dict in the stable order of :data:`NEP_KEYWORDS`: ``type`` -> tuple of symbols, single values as
        scalars, multi-valued keywords as tuples; every architecture keyword present (``zbl`` and ``charge_mode``
        only when set / non-zero), and ``lambda_e/f/v``, ``batch``, ``generation`` (and ``population`` for nep).
        Keywords neppo ignores (``population``) are dropped for neppo with a warning.
    :raises ValueError: unknown keyword, keyword the chosen program does not know, wrong count/type, value out of
        range, or a ``type`` line that disagrees with ``elements``; the message names the keyword.

    Cutoffs are in Å; see :data:`NEP_KEYWORDS` for every keyword's unit and range.
    """
    if program not in PROGRAMS:
        raise ValueError(f'program must be one of {PROGRAMS}, got {program!r}')
    elements = tuple(str(e) for e in elements)
    if not elements:
        raise ValueError('elements is empty; expected the chemical symbols of the dataset')
    if len(set(elements)) != len(elements):
        raise ValueError(f'elements {elements} has duplicates')
    from ase.data import atomic_numbers  # local: only needed here

    unknown_symbols = [e for e in elements if e not in atomic_numbers or atomic_numbers[e] > 94]
    if unknown_symbols:
        raise ValueError(f'elements {unknown_symbols} are not elements H..Pu, the range GPUMD and neppo support')

    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in NEP_KEYWORDS:
            raise ValueError(f'unknown nep.in keyword {key!r}; known keywords: {", ".join(NEP_KEYWORDS)}')
        spec = NEP_KEYWORDS[key]
        if program not in spec.programs:
            reason = _REASONS_NOT_KNOWN.get((key, program), f'{key!r} is not a keyword of {program}')
            raise ValueError(f'nep.in keyword {key!r} is not accepted by {program}: {reason}')
        if key == 'seed' and program == 'nep' and not allow_gpumd_seed:
            raise ValueError("nep.in keyword 'seed' is not accepted by nep: released GPUMD versions abort on it "
                             '(it exists only in recent development versions; pass allow_gpumd_seed=True for those)')
        if program in spec.ignored_by:
            warnings.warn(f'nep.in keyword {key!r} is ignored by {program}; it is left out of nep.in', stacklevel=2)
            continue
        values = _as_values(key, value)
        out[key] = values

    # type: derived from the dataset elements
    if 'type' in out:
        listed = out['type']
        if listed and listed[0].isdigit():
            if int(listed[0]) != len(listed) - 1:
                raise ValueError(f"nep.in keyword 'type': count {listed[0]} does not match the symbols {listed[1:]}")
            listed = listed[1:]
        if tuple(listed) != elements:
            raise ValueError(f"nep.in keyword 'type': {tuple(listed)} differs from the dataset elements {elements}")
    out['type'] = list(elements)

    # fill defaults
    for key, spec in NEP_KEYWORDS.items():
        if key in out or spec.default is None or program not in spec.programs:
            continue
        default = spec.default.get(program) if isinstance(spec.default, dict) else spec.default
        if default is not None and program not in spec.ignored_by:
            out[key] = _as_values(key, default)

    _check_values(out, elements, program)

    normalised = {}
    for key in _ORDER:
        if key not in out:
            continue
        values = out[key]
        if key == 'type':
            normalised[key] = tuple(values)
        elif key == 'charge_mode' and values[0] == 0:
            continue  # plain NEP: not written, older GPUMD versions do not know the keyword
        elif key == 'model_type' and values[0] == 0:
            continue
        elif NEP_KEYWORDS[key].count == (1, 1):
            normalised[key] = values[0]
        else:
            normalised[key] = tuple(values)
    return normalised


def _check_values(out: dict[str, list], elements: tuple[str, ...], program: str) -> None:
    """Range checks on the parsed values (lists); ValueError naming the keyword."""
    if out['version'][0] != 4:
        raise ValueError(f"nep.in keyword 'version': {out['version'][0]} not supported, expected 4 "
                         '(GPUMD >= v5.3 and neppo accept only NEP4)')
    if 'model_type' in out and out['model_type'][0] != 0:
        raise ValueError(f"nep.in keyword 'model_type': {out['model_type'][0]} not supported, expected 0 (potential)")
    rc_r, rc_a = out['cutoff']
    _check_range('cutoff', rc_a, 3.0, None, 'rc_A')
    _check_range('cutoff', rc_r, None, 10.0, 'rc_R')
    if rc_a > rc_r:
        raise ValueError(f"nep.in keyword 'cutoff': rc_A = {rc_a} > rc_R = {rc_r}, expected 3 <= rc_A <= rc_R <= 10 Å")
    _check_range('n_max', out['n_max'][0], 0, 12, 'n_max radial')
    _check_range('n_max', out['n_max'][1], 0, 8, 'n_max angular')
    _check_range('basis_size', out['basis_size'][0], 0, 16, 'basis_size radial')
    _check_range('basis_size', out['basis_size'][1], 0, 12, 'basis_size angular')
    l_max = out['l_max'] + [0] * (3 - len(out['l_max']))  # one value: 4b = 5b = 0; two values: 5b = 0
    if l_max[0] != 4:
        raise ValueError(f"nep.in keyword 'l_max': l_max_3b = {l_max[0]}, expected 4 (the only value all GPUMD "
                         'versions accept)')
    if l_max[1] not in (0, 2):
        raise ValueError(f"nep.in keyword 'l_max': l_max_4b = {l_max[1]}, expected 0 or 2")
    if l_max[2] not in (0, 1):
        raise ValueError(f"nep.in keyword 'l_max': l_max_5b = {l_max[2]}, expected 0 or 1")
    out['l_max'] = l_max
    _check_range('neuron', out['neuron'][0], 1, 120, 'neurons')
    if 'zbl' in out:
        _check_range('zbl', out['zbl'][0], 1.0, 3.0, 'outer ZBL cutoff (Å)')
        if out['zbl'][0] > rc_r:
            raise ValueError(f"nep.in keyword 'zbl': {out['zbl'][0]} Å exceeds the radial cutoff {rc_r} Å")
    if 'charge_mode' in out and out['charge_mode'][0] not in (0, 1, 2):
        raise ValueError(f"nep.in keyword 'charge_mode': {out['charge_mode'][0]}, expected 0, 1 or 2")
    # lambda_q/lambda_z weight the loss terms of a charge model only (GPUMD parameters.cu, neppo nep_in.get_loss):
    # for a plain NEP they would be silently ignored, so a forgotten charge_mode is refused here.
    charged = out.get('charge_mode', [0])[0] != 0
    for key in ('lambda_q', 'lambda_z'):
        if key in out and not charged:
            raise ValueError(f"nep.in keyword {key!r} weights a loss term of a charge model (qNEP) only; "
                             'set charge_mode 1 or 2, or leave it out')
    for key in ('lambda_1', 'lambda_2', 'lambda_e', 'lambda_f', 'lambda_v', 'lambda_shear', 'lambda_q', 'lambda_z',
                'weight_decay'):
        if key in out:
            _check_range(key, out[key][0], 0.0, None)
    if 'type_weight' in out:
        if len(out['type_weight']) != len(elements):
            raise ValueError(f"nep.in keyword 'type_weight': {len(out['type_weight'])} values, expected one per "
                             f'element ({len(elements)})')
        for w in out['type_weight']:
            _check_range('type_weight', w, 0.0, None)
    for key in ('batch', 'population', 'generation', 'output_interval'):
        if key in out:
            _check_range(key, out[key][0], 1, None)
    if 'prediction' in out and out['prediction'][0] not in (0, 1):
        raise ValueError(f"nep.in keyword 'prediction': {out['prediction'][0]}, expected 0 or 1")
    if 'output_descriptor' in out and out['output_descriptor'][0] not in (0, 1, 2):
        raise ValueError(f"nep.in keyword 'output_descriptor': {out['output_descriptor'][0]}, expected 0, 1 or 2")
    if 'seed' in out:
        _check_range('seed', out['seed'][0], 0, None)
    if 'learning_rate' in out:
        for rate in out['learning_rate']:
            if rate <= 0:
                raise ValueError(f"nep.in keyword 'learning_rate': {out['learning_rate']}, expected positive values")


def _format_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ' '.join(_format_value(v) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # '6' rather than '6.0', as GPUMD's own examples write it
    return repr(value) if isinstance(value, float) else str(value)


def write_nep_in(params: Mapping[str, Any], path: str | Path) -> Path:
    """Write normalised parameters (output of :func:`validate_nep_parameters`) to ``path`` as ``nep.in``.

    Lines follow the stable order of :data:`NEP_KEYWORDS` with ``type N sym...`` first, so every architecture
    keyword appears explicitly (GPUMD changed the n_max/basis_size defaults in v5.3). Floats are written with
    ``repr`` (round-trip exact). Returns the path written.

    :raises ValueError: ``params`` lacks ``type`` or one of the architecture keywords, or has an unknown keyword
        (call :func:`validate_nep_parameters` first).
    """
    path = Path(path)
    unknown = [k for k in params if k not in NEP_KEYWORDS]
    if unknown:
        raise ValueError(f'cannot write {path}: unknown nep.in keywords {unknown}')
    required = [k for k in ('type', 'version', 'cutoff', 'n_max', 'basis_size', 'l_max', 'neuron') if k not in params]
    if required:
        raise ValueError(f'cannot write {path}: missing architecture keywords {required}; '
                         'pass the output of validate_nep_parameters')
    lines = []
    for key in _ORDER:
        if key not in params:
            continue
        value = params[key]
        if key == 'type':
            symbols = [value] if isinstance(value, str) else list(value)
            lines.append(f'type {len(symbols)} {" ".join(symbols)}')
        else:
            lines.append(f'{key} {_format_value(value)}')
    path.write_text('\n'.join(lines) + '\n')
    return path


def read_nep_in(path: str | Path) -> dict[str, Any]:
    """Read a ``nep.in`` into the normalised form of :func:`validate_nep_parameters` (no defaults added).

    Uses calorine's :func:`calorine.nep.io.read_nepfile` for the tokenising (comments after ``#`` dropped) and
    converts its mixed output: ``type`` -> tuple of symbols, multi-valued keywords -> tuples, single values ->
    scalars. Unknown keywords are kept as strings (the caller decides).
    """
    raw = _calorine_read_nepfile(str(path))
    result: dict[str, Any] = {}
    for key, value in raw.items():
        if key == 'type':
            result[key] = tuple(str(v) for v in value[1:])
            continue
        if key not in NEP_KEYWORDS:
            result[key] = value
            continue
        values = _as_values(key, value if not isinstance(value, str) else value.split())
        result[key] = values[0] if NEP_KEYWORDS[key].count == (1, 1) else tuple(values)
    return result


# ----------------------------------------------------------------------------------------------------------- outputs


class PredictionTarget(NamedTuple):
    """Model prediction and reference target of one ``*_train.out``/``*_test.out`` file (rows in file order).

    Missing targets (GPUMD/neppo sentinel -1e6 for frames without virial) are NaN in ``target``.
    """

    predicted: np.ndarray
    target: np.ndarray


def read_loss(path: str | Path):
    """Read ``loss.out`` of GPUMD ``nep`` or ``neppo`` into a pandas DataFrame indexed by generation (step).

    Reuses :func:`calorine.nep.io.read_loss`, which names the columns from the ``# columns`` header (GPUMD >= v5.6,
    neppo; neppo writes only the columns it has, e.g. 5 without test set and without lambda_1/lambda_2) or, for a
    file without header, from the column count: 10 (potential: ``total_loss L1 L2 RMSE_E_train RMSE_F_train
    RMSE_V_train RMSE_E_test RMSE_F_test RMSE_V_test``) or 14 (qNEP, adding ``RMSE_Q_*`` and ``RMSE_Z_*``).
    RMSE units: eV/atom (E, V), eV/Å (F). Restarts appended to the same file get increasing generations.

    :raises ValueError: unreadable or empty file, or an unexpected number of columns (message names the file).
    :raises FileNotFoundError: missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist')
    try:
        frame = _calorine_read_loss(str(path))
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error
    if len(frame) == 0:
        raise ValueError(f'{path}: no data rows; expected at least one loss.out row')
    frame.index.name = 'generation'
    return frame


def _read_table(path: str | Path, n_columns: int) -> np.ndarray:
    """Read a whitespace table with exactly ``n_columns`` columns; ``#`` comment lines are skipped.

    Own reader (not calorine): calorine only has the private ``_read_data_file`` and ``read_structures``, which
    needs nep.in + train.xyz and insists on both virial_*.out and stress_*.out (stress-only runs exist).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist')
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            text = line.split('#', 1)[0].strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) != n_columns:
                raise ValueError(f'{path}, line {number}: {len(fields)} columns, expected {n_columns}')
            try:
                rows.append([float(f) for f in fields])
            except ValueError:
                raise ValueError(f'{path}, line {number}: non-numeric value in {fields}') from None
    if not rows:
        raise ValueError(f'{path}: no data rows; expected rows of {n_columns} columns')
    return np.asarray(rows, dtype=float)


def _split(table: np.ndarray, width: int) -> PredictionTarget:
    return PredictionTarget(table[:, :width].copy(), table[:, width:].copy())


def read_energy_out(path: str | Path) -> PredictionTarget:
    """Read ``energy_train.out``/``energy_test.out``: 2 columns, predicted and target energy per atom (eV/atom).

    Returns 1-D arrays, one entry per structure.
    """
    table = _read_table(path, 2)
    return PredictionTarget(table[:, 0].copy(), table[:, 1].copy())


def read_force_out(path: str | Path) -> PredictionTarget:
    """Read ``force_train.out``/``force_test.out``: 6 columns, predicted fx fy fz then target (eV/Å), one row per
    atom (structures concatenated). Returns two (n_atoms, 3) arrays."""
    return _split(_read_table(path, 6), 3)


def _mask_missing(target: np.ndarray) -> np.ndarray:
    # GPUMD stores -1e6 per atom as the virial of a frame without virial/stress; virial_*.out shows -1e6, while
    # GPUMD's stress_*.out shows -1e6 * N/V * 160.2 (a value of order -1e7 GPa) and neppo's shows -1e6.
    # No physical virial per atom or stress reaches -1e5 (eV/atom or GPa), so a row whose six components are
    # equal and <= -1e5 is a missing target.
    target = target.copy()
    missing = np.all(target <= -1.0e5, axis=1) & np.all(target == target[:, :1], axis=1)
    target[missing] = np.nan
    return target


def read_virial_out(path: str | Path) -> PredictionTarget:
    """Read ``virial_train.out``/``virial_test.out``: 12 columns, predicted then target virial per atom (eV/atom),
    components xx yy zz xy yz zx (:data:`GPUMD_TENSOR_COMPONENTS`). Frames without a virial target (sentinel
    -1e6) have NaN targets. Returns two (n_structures, 6) arrays."""
    predicted, target = _split(_read_table(path, 12), 6)
    return PredictionTarget(predicted, _mask_missing(target))


def read_stress_out(path: str | Path) -> PredictionTarget:
    """Read ``stress_train.out``/``stress_test.out``: 12 columns, predicted then target virial/volume in GPa,
    components xx yy zz xy yz zx. This is the *negative* of the ASE stress (checked on the LLZO reference:
    target xx = -0.497 GPa for ASE stress xx = +0.0031 eV/Å³). Frames without virial targets have NaN targets.
    Returns two (n_structures, 6) arrays."""
    predicted, target = _split(_read_table(path, 12), 6)
    return PredictionTarget(predicted, _mask_missing(target))


def read_charge_out(path: str | Path) -> np.ndarray:
    """Read ``charge_train.out``/``charge_test.out`` of a charge model (qNEP): one column, the predicted charge of
    each atom in units of the elementary charge e, structures concatenated (no target: qNEP learns charges from
    energies, forces and optional Born effective charges). Returns a 1-D array, one entry per atom.

    These are the *raw* charges before the shift that makes each structure's total charge exact (GPUMD
    ``Fitness::update_charge``; neppo ``output.get_prediction_rows``: ``raw_charges``), so their sum per structure
    differs from the total charge by the error that ``RMSE_Q`` of ``loss.out`` measures.
    Format: https://gpumd.org/nep/output_files/charge_out.html.
    """
    return _read_table(path, 1)[:, 0].copy()


def read_bec_out(path: str | Path) -> PredictionTarget:
    """Read ``bec_train.out``/``bec_test.out`` of a charge model trained on Born effective charges: 18 columns,
    the 9 predicted then the 9 target components (xx xy xz yx yy yz zx zy zz, first index the direction of the
    polarisation; units of e), one row per atom (GPUMD ``Fitness::update_bec`` / ``output_atomic(9, ...)``; neppo
    writes zero targets for structures without BEC). Returns two (n_atoms, 9) arrays."""
    return _split(_read_table(path, 18), 9)


_READERS = {
    'energy': read_energy_out,
    'force': read_force_out,
    'virial': read_virial_out,
    'stress': read_stress_out,
    'charge': read_charge_out,
    'bec': read_bec_out,
}


def charge_rmse(charges, atoms_per_structure: Sequence[int], total_charges: Sequence[float] | None = None) -> float:
    """RMSE of the total charge per atom (e/atom), GPUMD's ``RMSE_Q`` of ``loss.out``, from :func:`read_charge_out`.

    sqrt(mean over structures of ((sum_i q_i - Q) / N)^2) with the raw charges q_i of each structure's N atoms and
    its total charge Q (``total_charges``, default 0: neutral cells), as GPUMD's ``Dataset::get_rmse_charge`` and
    neppo's ``losses.get_charge_errors`` define it. The rows must follow the structures' order
    (:func:`rows_follow_input_order`). Checked on GPUMD's own ``examples/qnep_train`` (0.000976 vs 0.00098 in its
    loss.out) and on a neppo run.

    :raises ValueError: the atom counts do not add up to the number of charges.
    """
    charges = np.asarray(charges, dtype=float).reshape(-1)
    counts = np.asarray(atoms_per_structure, dtype=int).reshape(-1)
    if counts.sum() != charges.shape[0] or (counts <= 0).any():
        raise ValueError(f'{charges.shape[0]} charges for structures of {counts.sum()} atoms in all; expected one '
                         'charge per atom')
    totals = np.add.reduceat(charges, np.concatenate(([0], np.cumsum(counts)[:-1])))
    targets = np.zeros_like(totals) if total_charges is None else np.asarray(total_charges, dtype=float)
    return float(np.sqrt(np.mean(((totals - targets) / counts) ** 2)))


def mean_charge_by_element(charges, symbols: Sequence[str]) -> dict[str, float]:
    """Mean predicted charge (e) of each element, from :func:`read_charge_out` and the chemical symbols of the
    structures in the same (concatenated) order; rows follow ``train.xyz`` only where
    :func:`rows_follow_input_order` holds.

    :raises ValueError: ``charges`` and ``symbols`` differ in length.
    """
    charges = np.asarray(charges, dtype=float).reshape(-1)
    symbols = np.asarray(list(symbols))
    if charges.shape[0] != symbols.shape[0]:
        raise ValueError(f'{charges.shape[0]} charges for {symbols.shape[0]} atoms; expected one charge per atom')
    return {str(element): float(charges[symbols == element].mean()) for element in dict.fromkeys(symbols.tolist())}


def read_training_directory(directory: str | Path) -> dict[str, Any]:
    """Read every NEP training output present in ``directory``.

    Returns ``{'loss': DataFrame | None, 'train': {...}, 'test': {...}, 'files': [names read]}`` where ``train`` and
    ``test`` map ``'energy'``, ``'force'``, ``'virial'``, ``'stress'`` (and for a charge model ``'bec'``) to
    :class:`PredictionTarget`, and ``'charge'`` (charge model) to the array of predicted charges, for each
    ``<quantity>_<set>.out`` found (any may be absent: e.g. stress-only runs have ``stress_train.out`` without
    ``virial_train.out``; runs without test.xyz have no ``*_test.out``). Row order follows train.xyz only for a
    full batch or in prediction mode (GPUMD reorders structures otherwise).

    :raises FileNotFoundError: ``directory`` is not a directory or holds none of these files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f'{directory} is not a directory')
    result: dict[str, Any] = {'loss': None, 'train': {}, 'test': {}, 'files': []}
    if (directory / 'loss.out').is_file():
        result['loss'] = read_loss(directory / 'loss.out')
        result['files'].append('loss.out')
    for label in ('train', 'test'):
        for quantity, reader in _READERS.items():
            name = f'{quantity}_{label}.out'
            if (directory / name).is_file():
                result[label][quantity] = reader(directory / name)
                result['files'].append(name)
    if not result['files']:
        raise FileNotFoundError(f'{directory} holds no loss.out and no *_train.out / *_test.out files')
    return result


def rmse_from_outputs(
    outputs: Mapping[str, PredictionTarget],
    *,
    remove_energy_shift: bool = False,
) -> dict[str, float]:
    """RMSEs as GPUMD defines them, from one set (``read_training_directory(d)['train']`` or ``['test']``).

    - ``energy_mev_per_atom``: sqrt(mean over structures of (E_pred/N - E_ref/N)²) x 1000. GPUMD's *training*
      RMSE in loss.out first removes the mean difference and then folds it into the output bias before writing
      ``energy_train.out``, so the file's plain RMSE equals it; ``remove_energy_shift=True`` subtracts the mean.
    - ``force_mev_per_angstrom``: sqrt(sum |ΔF|² / (3 N_atoms)) x 1000, over all components of all atoms
      (``Dataset::get_rmse_force``).
    - ``virial_mev_per_atom``: sqrt(sum over frames with a virial target of the 6 squared component errors
      / (6 n_frames)) x 1000 (``Dataset::get_rmse_virial``).
    - ``stress_gpa``: the same over ``stress_*.out``, in GPa.
    - ``bec_e`` (only when ``bec_*.out`` is present, charge models): RMSE of the Born-effective-charge components
      over the atoms with targets, in e.

    Missing targets (NaN) are ignored; a quantity that is absent or has no targets is NaN.
    """
    from aiida_sseff.analysis.metrics import rmse  # pure numpy module, no aiida

    result = {'energy_mev_per_atom': math.nan, 'force_mev_per_angstrom': math.nan,
              'virial_mev_per_atom': math.nan, 'stress_gpa': math.nan}
    if 'bec' in outputs:
        result['bec_e'] = math.nan
    if 'energy' in outputs:
        predicted, target = (np.asarray(a, dtype=float) for a in outputs['energy'])
        if remove_energy_shift:
            difference = predicted - target
            predicted = predicted - np.nanmean(difference)
        result['energy_mev_per_atom'] = 1000.0 * rmse(predicted, target)
    if 'force' in outputs:
        result['force_mev_per_angstrom'] = 1000.0 * rmse(*outputs['force'])
    if 'virial' in outputs:
        result['virial_mev_per_atom'] = 1000.0 * rmse(*outputs['virial'])
    if 'stress' in outputs:
        result['stress_gpa'] = rmse(*outputs['stress'])
    if 'bec' in outputs:
        # only atoms of structures with BEC targets (neppo writes zero targets for the others, GPUMD has none)
        predicted, target = (np.asarray(a, dtype=float) for a in outputs['bec'])
        labelled = np.any(target != 0.0, axis=1)
        if labelled.any():
            result['bec_e'] = rmse(predicted[labelled], target[labelled])
    return result


#: 1 eV/Å³ in GPa (GPUMD's PRESSURE_UNIT_CONVERSION, neppo's EV_PER_CUBIC_ANGSTROM_IN_GPA)


def virial_from_stress(stress: PredictionTarget, volume_per_atom) -> PredictionTarget:
    """Virial per atom (eV/atom) from a ``stress_*.out`` table (GPa, virial/volume) and the volume per atom (Å³).

    For runs that write ``stress_*.out`` but no ``virial_*.out`` (newer GPUMD): virial/N = stress x (V/N) / 160.2.
    ``volume_per_atom`` holds one value per row, so the rows must follow the order of ``train.xyz`` (neppo
    always; GPUMD only with a full batch or in prediction mode). NaN targets stay NaN.

    :raises ValueError: ``volume_per_atom`` does not have one value per row.
    """
    factor = np.asarray(volume_per_atom, dtype=float).reshape(-1)
    if factor.shape[0] != stress.predicted.shape[0]:
        raise ValueError(f'volume_per_atom has {factor.shape[0]} values but the stress table has '
                         f'{stress.predicted.shape[0]} rows; expected one per structure')
    factor = factor[:, None] / EV_PER_A3_IN_GPA
    return PredictionTarget(stress.predicted * factor, stress.target * factor)


# --- training summaries (the parser of sseff.nep.train and `aiida-sseff analyze nep-training`) ----------------------
#: the ``batch`` of ``nep.in`` when it is not given: GPUMD nep 1000 (parameters.cu), neppo 32 (neppo/nep_in.py)
DEFAULT_BATCH = {'nep': 1000, 'neppo': 32}

_LOSS_COLUMNS = {'energy_mev_per_atom': 'RMSE_E', 'force_mev_per_angstrom': 'RMSE_F', 'virial_mev_per_atom': 'RMSE_V'}
#: the extra loss.out columns of a charge model (qNEP), already in these units (GPUMD fitness.cu: RMSE of the total
#: charge per atom, e/atom, and of the Born effective charges, e); calorine names them RMSE_Q_*/RMSE_Z_*
_CHARGE_LOSS_COLUMNS = {'charge_e_per_atom': 'RMSE_Q', 'bec_e': 'RMSE_Z'}


def rows_follow_input_order(program: str, batch: int | None, n_structures: int | None) -> bool:
    """Whether the rows of ``*_train.out`` follow ``train.xyz``: always for neppo (its evaluation batches keep the
    file order), for GPUMD only with a full batch (``batch >= n_structures``; it reorders otherwise)."""
    if program == 'neppo':
        return True
    return batch is not None and n_structures is not None and batch >= n_structures


def loss_summary(loss, has_test: bool) -> dict:
    """Last row of ``loss.out`` (DataFrame of :func:`read_loss`) as RMSEs in meV/atom, meV/Å.

    Returns ``{'train': {...}, 'test': {...} | None}`` with ``energy_mev_per_atom``, ``force_mev_per_angstrom``,
    ``virial_mev_per_atom`` (None where the column is absent), and for a charge model (a ``RMSE_Q_*`` column)
    also ``charge_e_per_atom`` and ``bec_e`` (None where absent: neppo leaves out the BEC column without BEC
    targets, GPUMD writes 0). GPUMD writes zeros in the test columns when there is no test set, so ``test`` is None
    unless ``has_test``.
    """
    last = loss.iloc[-1]
    result = {}
    for label in ('train', 'test'):
        if label == 'test' and not has_test:
            result[label] = None
            continue
        result[label] = {key: json_safe(1000.0 * last[f'{column}_{label}']) if f'{column}_{label}' in loss.columns
                         else None for key, column in _LOSS_COLUMNS.items()}
        if any(column.startswith('RMSE_Q_') for column in loss.columns):
            result[label].update({key: json_safe(last[f'{column}_{label}']) if f'{column}_{label}' in loss.columns
                                  else None for key, column in _CHARGE_LOSS_COLUMNS.items()})
    return result


def training_summary(outputs: dict, program: str | None = None, volume_per_atom: dict | None = None,
                     rows_in_order: bool = True, atoms_per_structure: dict | None = None) -> dict:
    """Final RMSEs of a NEP training from :func:`read_training_directory`'s result.

    :param outputs: ``{'loss': DataFrame | None, 'train': {...}, 'test': {...}}``.
    :param program: ``'nep'``/``'neppo'`` (recorded only).
    :param volume_per_atom: ``{'train': array, 'test': array}`` of V/N (Å³/atom) in the order of train.xyz/test.xyz;
        used to turn ``stress_*.out`` (GPa) into virial RMSEs (meV/atom) when ``virial_*.out`` is absent
        (stress-only GPUMD runs) and ``rows_in_order`` holds.
    :param atoms_per_structure: ``{'train': [N, ...], 'test': [...]}`` in file order; with ``charge_*.out`` (a charge
        model) and ``rows_in_order``, ``recomputed`` gets ``charge_e_per_atom`` (:func:`charge_rmse`, neutral cells).
    :returns: dict with ``loss_out`` (RMSEs of the last loss.out row), ``recomputed`` (RMSEs from the ``*.out``
        files: ``energy_mev_per_atom``, ``force_mev_per_angstrom``, ``virial_mev_per_atom``, ``stress_gpa``),
        ``generation`` (last reported), ``n_reports``, ``total_loss_first``/``_last``/``_min``, ``virial_from``
        (``'virial_out'``, ``'stress_out'`` or None). NaN values become None.
    """
    summary: dict = {'program': program}
    recomputed, virial_from = {}, {}
    for label in ('train', 'test'):
        files = dict(outputs.get(label) or {})
        if not files:
            recomputed[label] = None
            continue
        source = 'virial_out' if 'virial' in files else None
        if 'virial' not in files and 'stress' in files and rows_in_order and volume_per_atom \
                and volume_per_atom.get(label) is not None \
                and len(volume_per_atom[label]) == len(files['stress'].predicted):
            files['virial'] = virial_from_stress(files['stress'], volume_per_atom[label])
            source = 'stress_out'
        recomputed[label] = {key: json_safe(value) for key, value in rmse_from_outputs(files).items()}
        counts = (atoms_per_structure or {}).get(label)
        if 'charge' in files and rows_in_order and counts is not None and sum(counts) == len(files['charge']):
            recomputed[label]['charge_e_per_atom'] = json_safe(charge_rmse(files['charge'], counts))
        virial_from[label] = source
    summary['recomputed'] = recomputed
    summary['virial_from'] = virial_from
    loss = outputs.get('loss')
    if loss is not None:
        has_test = bool(outputs.get('test')) or any(
            c.endswith('_test') and float(np.nanmax(np.abs(loss[c].to_numpy()))) > 0 for c in loss.columns)
        summary['loss_out'] = loss_summary(loss, has_test)
        summary['generation'] = int(loss.index[-1])
        summary['n_reports'] = int(len(loss))
        total = loss['total_loss'].to_numpy(dtype=float) if 'total_loss' in loss.columns else None
        if total is not None:
            summary['total_loss_first'] = json_safe(total[0])
            summary['total_loss_last'] = json_safe(total[-1])
            summary['total_loss_min'] = json_safe(np.nanmin(total)) if np.isfinite(total).any() else None
    return summary


def summarise_training_directory(directory: str | Path, program: str = 'auto') -> tuple[dict, dict]:
    """The :func:`training_summary` of a nep/neppo run directory, and the raw :func:`read_training_directory` outputs.

    :param program: ``'nep'``, ``'neppo'``, or ``'auto'``: neppo when ``nep_best.txt`` is present (neppo writes it),
        else nep. The ``batch`` of ``nep.in`` (if present) and ``train.xyz``/``test.xyz`` (the volumes, for virial
        RMSEs from ``stress_*.out``) are read when present.
    :returns: ``(summary, outputs)``; ``summary['directory']`` is the directory.
    :raises FileNotFoundError: no directory, or no output file in it.
    :raises ValueError: an unknown ``program``; an output file that cannot be read (its name in the message).
    """
    from aiida_sseff.io.extxyz import read_train_xyz

    directory = Path(directory)
    if program not in ('auto', *DEFAULT_BATCH):
        raise ValueError(f"program must be 'auto', 'nep' or 'neppo'; got {program!r}")
    outputs = read_training_directory(directory)
    if program == 'auto':
        program = 'neppo' if (directory / 'nep_best.txt').is_file() else 'nep'
    settings = {}
    if (directory / 'nep.in').is_file():
        try:
            settings = read_nep_in(directory / 'nep.in')
        except ValueError:
            settings = {}  # the batch size is only needed for the row order; the default covers a missing one
    volume_per_atom, n_structures, atoms_per_structure = {}, {}, {}
    for label in ('train', 'test'):
        path = directory / f'{label}.xyz'
        needed = 'virial' not in outputs[label] or 'charge' in outputs[label]
        if outputs[label] and needed and path.is_file():
            frames = read_train_xyz(path)
            if 'virial' not in outputs[label]:
                volume_per_atom[label] = [atoms.get_volume() / len(atoms) for atoms in frames]
            atoms_per_structure[label] = [len(atoms) for atoms in frames]
            n_structures[label] = len(frames)
    batch = int(settings.get('batch', DEFAULT_BATCH[program]))
    in_order = rows_follow_input_order(program, batch, n_structures.get('train'))
    summary = training_summary(outputs, program, volume_per_atom, rows_in_order=in_order,
                               atoms_per_structure=atoms_per_structure)
    summary['directory'] = str(directory)
    return summary, outputs
