"""GPUMD (``gpumd`` executable) file formats: ``msd.out``, ``thermo.out``, the log's speed lines, ``model.xyz``
and ``run.in``.

Pure functions, no aiida. Units are GPUMD's: time ps (``msd.out``), MSD Å², SDC Å²/ps, temperature K, energy eV,
pressure GPa, cell Å, time step fs, speed atom·step/s. Format documentation: https://gpumd.org/gpumd/
(``output_files/msd_out.html``, ``output_files/thermo_out.html``, ``input_files/model_xyz.html``,
``input_parameters/*.html``). Facts about version differences are collected in ``shared/reference/GPUMD_NOTES.md``.

Reuse: ``read_thermo`` and ``write_model_xyz`` wrap calorine 4.1 (``calorine.gpumd.read_thermo``/``write_xyz``).
``read_msd`` is our own: calorine's ``read_msd`` refuses a file with several ``#`` header blocks (one per
``run``) and, for header-less files (GPUMD ≤ 5.5), silently concatenates the appended runs into one table whose
time column restarts; both cases occur in practice because ``msd.out`` is appended across runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    'ComputeMsd',
    'MsdBlock',
    'TrajectoryDump',
    'make_run_in',
    'parse_gpumd_version',
    'read_msd',
    'read_speed',
    'read_thermo',
    'species_grouping',
    'write_model_xyz',
    'write_run_in',
]

_MSD_FIELDS = ('msd_x', 'msd_y', 'msd_z', 'sdc_x', 'sdc_y', 'sdc_z')


# ----------------------------------------------------------------------------------------------------------- msd.out
@dataclass
class MsdBlock:
    """One correlation function of ``msd.out`` (one ``run`` with ``compute_msd``).

    Attributes
    ----------
    time : (M,) correlation time in ps (starts at 0).
    msd : (G, M, 3) MSD of each group in x, y, z (Å²).
    sdc : (G, M, 3) self-diffusion coefficient ½ dMSD/dt of each group in x, y, z (Å²/ps).
    header : ``#`` header lines of the block (GPUMD ≥ 5.6) as ``{key: [tokens]}``; empty for older files.
    first_line : 1-based line number of the block's first data row in the file.
    """

    time: np.ndarray
    msd: np.ndarray
    sdc: np.ndarray
    header: dict = field(default_factory=dict)
    first_line: int = 0

    @property
    def n_groups(self) -> int:
        return int(self.msd.shape[0])

    def msd_xyz(self, group: int = 0) -> np.ndarray:
        """(M, 3) MSD of ``group`` (Å²)."""
        return self.msd[group]


def _msd_block(path, rows, header, first_line) -> MsdBlock:
    data = np.array(rows, dtype=float)
    ncols = data.shape[1]
    n_groups = (ncols - 1) // 6
    if ncols < 7 or (ncols - 1) % 6:
        raise ValueError(f'{path}: line {first_line}: {ncols} columns; expected 1 + 6·G (time, then msd_x msd_y '
                         f'msd_z sdc_x sdc_y sdc_z per group).')
    if 'columns' in header and len(header['columns']) != ncols:
        raise ValueError(f'{path}: block starting at line {first_line}: the header declares '
                         f'{len(header["columns"])} columns, the data have {ncols}.')
    if 'num_groups' in header and int(header['num_groups'][0]) != n_groups:
        raise ValueError(f'{path}: block starting at line {first_line}: the header declares '
                         f'{header["num_groups"][0]} groups, the data have {n_groups} (from {ncols} columns).')
    per_group = data[:, 1:].reshape(data.shape[0], n_groups, 6).transpose(1, 0, 2)
    return MsdBlock(time=data[:, 0], msd=per_group[:, :, :3].copy(), sdc=per_group[:, :, 3:].copy(),
                    header=dict(header), first_line=first_line)


def read_msd(path) -> list[MsdBlock]:
    """Read GPUMD's ``msd.out`` into one :class:`MsdBlock` per run.

    GPUMD appends to ``msd.out`` at the end of every ``run`` that has ``compute_msd``. A new block starts at a
    ``#`` header that follows data (GPUMD ≥ 5.6 writes ``# compute_msd …``, ``# format_version``, ``# columns …``
    before each block) or, in header-less files, where the time column does not increase (it restarts at 0).
    The number of groups comes from the column count, 1 + 6·G (``all_groups`` gives G > 1; a single group, or
    ``compute_msd`` without a group, gives 7 columns).

    Returns
    -------
    list of MsdBlock
        In file order; raises ``ValueError`` (naming the file and line) on malformed content or no data.
    """
    path = Path(path)
    blocks: list[MsdBlock] = []
    header: dict = {}
    rows: list[list[float]] = []
    first = 0
    prev_t = None
    ncols = None
    with open(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith('#'):
                if rows:
                    blocks.append(_msd_block(path, rows, header, first))
                    header, rows, prev_t, ncols = {}, [], None, None
                tokens = line[1:].split()
                if tokens:
                    header[tokens[0]] = tokens[1:]
                continue
            try:
                values = [float(tok) for tok in line.split()]
            except ValueError:
                raise ValueError(f'{path}: line {lineno}: not a row of numbers: {line[:80]!r}') from None
            t = values[0]
            if rows and (t <= prev_t or len(values) != ncols):
                if len(values) != ncols and t > prev_t:
                    raise ValueError(f'{path}: line {lineno}: {len(values)} columns, the rows above have {ncols}.')
                blocks.append(_msd_block(path, rows, header, first))
                header, rows = {}, []
            if not rows:
                first, ncols = lineno, len(values)
            rows.append(values)
            prev_t = t
    if rows:
        blocks.append(_msd_block(path, rows, header, first))
    if not blocks:
        raise ValueError(f'{path}: no data rows (expected the output of compute_msd).')
    return blocks


# -------------------------------------------------------------------------------------------------------- thermo.out
def read_thermo(path):
    """Read GPUMD's ``thermo.out`` as a pandas DataFrame, with a ``block`` column (0, 1, … per appended run).

    Parsing is calorine's ``read_thermo`` (9, 12, 15 or 18 columns; ``#`` headers of GPUMD ≥ 5.6, whose blocks
    it lays end to end with a ``time`` column in ps). Columns: ``temperature`` (K), ``kinetic_energy``,
    ``potential_energy`` (eV), ``stress_*`` (GPa), ``cell_*`` (Å), ``volume`` (Å³), ``pressure`` (GPa), cell lengths
    and angles. ``block`` numbers the header blocks; a header-less file carries no marker between appended runs,
    so it is one block.
    """
    from calorine.gpumd import read_thermo as _calorine_read_thermo

    path = Path(path)
    df = _calorine_read_thermo(str(path))
    block_of_row: list[int] = []
    block = -1
    seen_rows_in_block = True
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            if line.startswith('#'):
                if seen_rows_in_block:
                    block += 1
                    seen_rows_in_block = False
                continue
            if block < 0:
                block = 0
            seen_rows_in_block = True
            block_of_row.append(block)
    if len(block_of_row) != len(df):
        raise ValueError(f'{path}: {len(block_of_row)} data rows but {len(df)} parsed rows.')
    df['block'] = np.asarray(block_of_row, dtype=int)
    return df


# ------------------------------------------------------------------------------------------------------------- log
_SPEED_RE = re.compile(r'Speed of this run\s*=\s*([-+0-9.eE]+)\s*atom\*step/second')


def read_speed(log_text: str) -> list[float]:
    """Every ``Speed of this run = X atom*step/second.`` of a GPUMD log (stdout), in atom·step/s, in order."""
    return [float(m.group(1)) for m in _SPEED_RE.finditer(log_text)]


# ------------------------------------------------------------------------------------------------------- model.xyz
def species_grouping(symbols, mobile: str = 'Li', order: Sequence[str] | None = None) -> np.ndarray:
    """Group labels for one grouping method: ``mobile`` → 0, every other species its own group 1, 2, ….

    Other species are numbered in ``order`` if given (it must list every other species), else by first
    appearance. This is the grouping used with ``compute_msd … all_groups 0`` (e.g. LLZO: Li 0, La 1, Zr 2, O 3).
    """
    symbols = [str(s) for s in symbols]
    if mobile not in symbols:
        raise ValueError(f'species_grouping: no {mobile!r} atom among {sorted(set(symbols))}.')
    others = [s for s in dict.fromkeys(symbols) if s != mobile]
    if order is not None:
        order = [s for s in order if s != mobile]
        missing = set(others) - set(order)
        if missing:
            raise ValueError(f'species_grouping: order {list(order)} lacks {sorted(missing)}.')
        others = [s for s in order if s in others]
    label = {mobile: 0, **{s: i + 1 for i, s in enumerate(others)}}
    return np.array([label[s] for s in symbols], dtype=int)


def write_model_xyz(atoms, path, groups=None) -> None:
    """Write GPUMD's ``model.xyz`` (extended XYZ with ``mass``, ``vel`` in Å/fs if set, ``group:I:k``).

    Parameters
    ----------
    atoms : ase.Atoms (periodic).
    path : output file.
    groups : None, one label array ``(N,)`` (one grouping method) or a sequence of up to 3 such arrays; labels
        are integers 0 … n-1 (e.g. from :func:`species_grouping`).

    Uses ``calorine.gpumd.write_xyz`` (which converts ASE velocities to Å/fs); labels are converted to its
    index-list form here (as sets, so its membership test stays linear in N).
    """
    from calorine.gpumd import write_xyz as _calorine_write_xyz

    groupings = None
    if groups is not None:
        arr = np.asarray(groups)
        methods = [arr] if arr.ndim == 1 else list(arr)
        if len(methods) > 3:
            raise ValueError(f'write_model_xyz: GPUMD accepts at most 3 grouping methods, got {len(methods)}.')
        groupings = []
        for k, labels in enumerate(methods):
            labels = np.asarray(labels)
            if labels.shape != (len(atoms),):
                raise ValueError(f'write_model_xyz: grouping method {k} has {labels.shape} labels, expected '
                                 f'({len(atoms)},) (one per atom).')
            if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
                raise ValueError(f'write_model_xyz: grouping method {k}: labels must be integers >= 0.')
            n_groups = int(labels.max()) + 1
            empty = sorted(set(range(n_groups)) - set(labels.tolist()))
            if empty:
                raise ValueError(f'write_model_xyz: grouping method {k}: labels must be 0 … n-1 without gaps; '
                                 f'no atom in group(s) {empty}.')
            groupings.append([set(np.flatnonzero(labels == g).tolist()) for g in range(n_groups)])
    if not all(atoms.pbc):
        raise ValueError('write_model_xyz: GPUMD needs a periodic cell in all three directions (atoms.pbc).')
    _calorine_write_xyz(str(path), atoms, groupings)


# ---------------------------------------------------------------------------------------------------------- run.in
def parse_gpumd_version(version) -> tuple[int, int, int]:
    """``'5.6'``, ``'v4.9.1'`` → ``(5, 6, 0)``, ``(4, 9, 1)``; ``'dev'``/``'main'``/``'master'`` (the development
    branch after the latest release) → ``(99, 0, 0)``."""
    text = str(version).strip().lower().lstrip('v')
    if text in ('dev', 'development', 'main', 'master'):
        return (99, 0, 0)
    m = re.fullmatch(r'(\d+)(?:\.(\d+))?(?:\.(\d+))?', text)
    if not m:
        raise ValueError(f"gpumd_version: expected 'X.Y[.Z]' or 'dev', got {version!r}.")
    return tuple(int(g) if g else 0 for g in m.groups())


@dataclass(frozen=True)
class ComputeMsd:
    """``compute_msd <sample_interval> <Nc> [group <gm> <gid> | all_groups <gm>] [save_every <n>]``.

    ``sample_interval`` and ``save_every`` in MD steps, ``n_correlation`` (Nc) in samples: the MSD reaches lags
    up to ``Nc·sample_interval`` steps.
    """

    sample_interval: int
    n_correlation: int
    group: tuple[int, int] | None = None
    all_groups: int | None = None
    save_every: int | None = None


@dataclass(frozen=True)
class TrajectoryDump:
    """A trajectory dump. ``style='dump_xyz'`` (``interval`` steps, ``filename``, optional ``group`` (gm, gid),
    ``properties`` such as ``velocity force unwrapped_position``, ``precision`` single|double on GPUMD > 5.6)
    or ``style='dump_exyz'`` (GPUMD ≤ 5.6 only: ``dump.xyz`` with ``velocity``/``force`` flags)."""

    interval: int
    filename: str = 'dump.xyz'
    group: tuple[int, int] | None = None
    properties: tuple[str, ...] = ()
    precision: str | None = None
    style: str = 'dump_xyz'
    velocity: bool = False
    force: bool = False


_NVT = ('nvt_ber', 'nvt_nhc', 'nvt_bdp', 'nvt_lan', 'nvt_bao')
_NPT = ('npt_ber', 'npt_scr')
_MTTK_DIRECTIONS = ('iso', 'aniso', 'tri')
_DUMP_XYZ_PROPERTIES = {'mass', 'velocity', 'force', 'potential', 'virial', 'charge', 'bec',
                        'unwrapped_position', 'group'}


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f'run.in: {name}: expected a positive integer, got {value!r}.')
    return int(value)


def _positive(name, value):
    if not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and value > 0):
        raise ValueError(f'run.in: {name}: expected a positive number, got {value!r}.')
    return value


def _num(x) -> str:
    """Compact number formatting for run.in (integers without decimals)."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _ensemble_line(ensemble, temperature, temperature_end, coupling, pressure, pressure_direction,
                   pressure_coupling) -> str:
    t1, t2 = _num(temperature), _num(temperature if temperature_end is None else temperature_end)
    if ensemble == 'nve':
        return 'ensemble nve'
    if ensemble in _NVT:
        if pressure is not None:
            raise ValueError(f'run.in: ensemble {ensemble} takes no pressure arguments.')
        return f'ensemble {ensemble} {t1} {t2} {_num(coupling)}'
    if ensemble in _NPT:
        if pressure is None or len(pressure) not in (3, 7, 13):
            raise ValueError(f'run.in: ensemble {ensemble}: pressure must be 3 numbers (p_hydro C_hydro p_coup), 7 '
                             f'(p_xx p_yy p_zz C_xx C_yy C_zz p_coup) or 13 (6 p, 6 C, p_coup), got {pressure!r}.')
        return f'ensemble {ensemble} {t1} {t2} {_num(coupling)} ' + ' '.join(_num(p) for p in pressure)
    if ensemble == 'npt_mttk':
        if pressure is None or len(pressure) != 2:
            raise ValueError(f'run.in: ensemble npt_mttk: pressure must be (p_1, p_2) in GPa, got {pressure!r}.')
        if pressure_direction not in _MTTK_DIRECTIONS:
            raise ValueError(f'run.in: ensemble npt_mttk: pressure_direction must be one of {_MTTK_DIRECTIONS}, '
                             f'got {pressure_direction!r}.')
        line = (f'ensemble npt_mttk temp {t1} {t2} {pressure_direction} {_num(pressure[0])} {_num(pressure[1])} '
                f'tperiod {_num(coupling)}')
        if pressure_coupling is not None:
            line += f' pperiod {_num(pressure_coupling)}'
        return line
    raise ValueError(f'run.in: ensemble {ensemble!r} not supported; expected nve, {", ".join(_NVT)}, '
                     f'{", ".join(_NPT)} or npt_mttk.')


def _fix_lines(fix, version) -> list[str]:
    lines = []
    for item in fix or ():
        gm, gid = item
        if gm < 0 or gid < 0:
            raise ValueError(f'run.in: fix {item!r}: grouping method and group must be >= 0.')
        if version < (5, 3, 0):
            # GPUMD < 5.3: `fix <gid>` always refers to grouping method 0
            if gm != 0:
                raise ValueError(f'run.in: fix {item!r}: GPUMD {".".join(map(str, version))} only fixes groups of '
                                 f'grouping method 0 (`fix <gid>`); `fix <gm> <gid>` needs GPUMD >= 5.3.')
            lines.append(f'fix {gid}')
        else:
            lines.append(f'fix {gm} {gid}')
    return lines


def _msd_line(msd: ComputeMsd, production_steps: int, version) -> str:
    si = _positive_int('compute_msd sample_interval', msd.sample_interval)
    nc = _positive_int('compute_msd Nc', msd.n_correlation)
    if version >= (5, 0, 0):
        if nc * si > production_steps:
            raise ValueError(f'run.in: compute_msd: Nc·sample_interval = {nc}·{si} = {nc * si} exceeds the '
                             f'{production_steps} production steps (GPUMD >= 5.0 refuses it).')
    elif nc > production_steps:
        raise ValueError(f'run.in: compute_msd: Nc = {nc} exceeds the {production_steps} production steps '
                         f'(GPUMD < 5.0 refuses it).')
    if msd.group is not None and msd.all_groups is not None:
        raise ValueError('run.in: compute_msd: `group` and `all_groups` cannot be used together.')
    line = f'compute_msd {si} {nc}'
    if msd.group is not None:
        gm, gid = msd.group
        if gm < 0 or gid < 0:
            raise ValueError(f'run.in: compute_msd group {msd.group!r}: expected non-negative integers.')
        line += f' group {gm} {gid}'
    if msd.all_groups is not None:
        if msd.all_groups < 0:
            raise ValueError(f'run.in: compute_msd all_groups {msd.all_groups!r}: expected a grouping method >= 0.')
        line += f' all_groups {msd.all_groups}'
    if msd.save_every is not None:
        line += f' save_every {_positive_int("compute_msd save_every", msd.save_every)}'
    return line


def _dump_line(dump: TrajectoryDump, version) -> str:
    interval = _positive_int('dump interval', dump.interval)
    new_syntax = version > (5, 6, 0)
    if dump.style == 'dump_exyz':
        if new_syntax:
            raise ValueError('run.in: dump_exyz was removed after GPUMD 5.6; use style="dump_xyz".')
        if dump.properties or dump.group is not None or dump.precision is not None:
            raise ValueError('run.in: dump_exyz takes only velocity/force flags (no group, properties, precision).')
        return f'dump_exyz {interval} {int(dump.velocity)} {int(dump.force)}'
    if dump.style != 'dump_xyz':
        raise ValueError(f"run.in: dump style {dump.style!r}: expected 'dump_xyz' or 'dump_exyz'.")
    props = list(dump.properties)
    if dump.velocity and 'velocity' not in props:
        props.append('velocity')
    if dump.force and 'force' not in props:
        props.append('force')
    unknown = [p for p in props if p not in _DUMP_XYZ_PROPERTIES | {'group_labels'}]
    if unknown:
        raise ValueError(f'run.in: dump_xyz: unknown properties {unknown}; allowed {sorted(_DUMP_XYZ_PROPERTIES)}.')
    # the per-atom group column is `group` up to 5.6 and `group_labels` after
    props = [('group_labels' if new_syntax else 'group') if p in ('group', 'group_labels') else p for p in props]
    if not dump.filename or any(c.isspace() for c in dump.filename):
        raise ValueError(f'run.in: dump_xyz filename {dump.filename!r}: expected a name without spaces.')
    if new_syntax:
        line = f'dump_xyz {interval} {dump.filename}'
        if dump.group is not None:
            line += f' group {dump.group[0]} {dump.group[1]}'
        if dump.precision is not None:
            if dump.precision not in ('single', 'double'):
                raise ValueError(f"run.in: dump_xyz precision {dump.precision!r}: expected 'single' or 'double'.")
            line += f' precision {dump.precision}'
    else:
        if dump.precision is not None:
            raise ValueError('run.in: dump_xyz precision needs GPUMD > 5.6.')
        gm, gid = dump.group if dump.group is not None else (-1, 0)  # negative grouping method: whole system
        line = f'dump_xyz {gm} {gid} {interval} {dump.filename}'
    return line + ''.join(f' {p}' for p in props)


def make_run_in(
    *,
    temperature: float,
    production_steps: int,
    potential: str = 'nep.txt',
    equilibration_steps: int = 0,
    time_step_fs: float = 1.0,
    ensemble: str = 'nvt_bdp',
    temperature_end: float | None = None,
    temperature_coupling: float = 100.0,
    pressure: Sequence[float] | None = None,
    pressure_direction: str = 'iso',
    pressure_coupling: float | None = None,
    equilibration_ensemble: str | None = None,
    velocity_seed: int | None = None,
    dump_thermo: int | None = 1000,
    msd: ComputeMsd | None = None,
    trajectory: TrajectoryDump | None = None,
    kspace: str | None = None,
    kspace_spacing: float | None = None,
    model_header: str | None = None,
    fix: Sequence[tuple[int, int]] | None = None,
    gpumd_version: str = '5.6',
) -> str:
    """Text of a GPUMD ``run.in`` for an MD diffusion run (equilibration, then production), validated.

    Layout::

        potential <potential>
        [kspace ewald | pppm [spacing]]        (qNEP models only)
        velocity <T> [seed <n>]
        time_step <dt_fs>                      (propagates to every run)
        ensemble …  [fix …]  [dump_thermo n]  run <equilibration_steps>          (if > 0)
        ensemble …  [fix …]  [dump_thermo n]  [compute_msd …]  [dump …]  run <production_steps>

    Parameters
    ----------
    temperature, temperature_end : target temperatures in K (T1, T2; T2 defaults to T1).
    production_steps, equilibration_steps : MD steps.
    time_step_fs : time step in fs.
    ensemble : ``nvt_ber``, ``nvt_nhc``, ``nvt_bdp``, ``nvt_lan``, ``nvt_bao``, ``npt_ber``, ``npt_scr``,
        ``npt_mttk`` or ``nve``; ``equilibration_ensemble`` overrides it for the equilibration run.
    temperature_coupling : T_coup (time steps; ``tperiod`` for npt_mttk).
    pressure : for npt_ber/npt_scr the numbers after T_coup (3, 7 or 13 of them, GPa and GPa); for npt_mttk
        ``(p_1, p_2)`` in GPa with ``pressure_direction`` iso|aniso|tri and ``pressure_coupling`` (pperiod).
    velocity_seed : seed of the initial velocities (``velocity T seed n``).
    dump_thermo : ``thermo.out`` interval (steps), None for none.
    msd : :class:`ComputeMsd` for the production run (Nc·sample_interval ≤ production steps on GPUMD ≥ 5.0,
        Nc ≤ steps before).
    trajectory : :class:`TrajectoryDump` for the production run (syntax follows ``gpumd_version``).
    kspace, kspace_spacing : ``ewald`` or ``pppm`` [spacing Å] for charge-aware NEP models (qNEP).
    model_header : first line of ``nep.txt`` (e.g. ``nep4_zbl 4 Li La Zr O``); if given, ``kspace`` is refused
        for a model without ``charge`` in its type.
    fix : ``(grouping_method, group)`` pairs frozen in both runs (``fix gid`` before GPUMD 5.3, method 0 only).
    gpumd_version : ``'X.Y[.Z]'`` or ``'dev'`` (the development branch after 5.6).
    """
    version = parse_gpumd_version(gpumd_version)
    _positive('temperature', temperature)
    if temperature_end is not None:
        _positive('temperature_end', temperature_end)
    _positive('time_step_fs', time_step_fs)
    _positive('temperature_coupling', temperature_coupling)
    production_steps = _positive_int('production_steps', production_steps)
    if isinstance(equilibration_steps, bool) or not isinstance(equilibration_steps, (int, np.integer)) \
            or equilibration_steps < 0:
        raise ValueError(f'run.in: equilibration_steps: expected an integer >= 0, got {equilibration_steps!r}.')
    if not potential or any(c.isspace() for c in str(potential)):
        raise ValueError(f'run.in: potential {potential!r}: expected a file name without spaces.')
    lines = [f'potential {potential}']
    if kspace is not None:
        if kspace not in ('ewald', 'pppm'):
            raise ValueError(f"run.in: kspace {kspace!r}: expected 'ewald' or 'pppm'.")
        if model_header is not None and 'charge' not in model_header.split()[0]:
            raise ValueError(f'run.in: kspace is for charge-aware NEP models (header nep*_charge*), but the model '
                             f'header is {model_header.split()[0]!r}.')
        line = f'kspace {kspace}'
        if kspace_spacing is not None:
            if kspace != 'pppm' or not 0.2 <= kspace_spacing <= 2.0:
                raise ValueError(f'run.in: kspace spacing {kspace_spacing!r}: only for pppm, 0.2–2.0 Å.')
            line += f' {_num(kspace_spacing)}'
        lines.append(line)
    velocity = f'velocity {_num(temperature)}'
    if velocity_seed is not None:
        velocity += f' seed {_positive_int("velocity_seed", velocity_seed)}'
    lines += [velocity, f'time_step {_num(time_step_fs)}']
    fix_lines = _fix_lines(fix, version)
    thermo = [] if dump_thermo is None else [f'dump_thermo {_positive_int("dump_thermo", dump_thermo)}']
    if pressure_coupling is not None:
        _positive('pressure_coupling', pressure_coupling)
    ens_args = (temperature, temperature_end, temperature_coupling, pressure, pressure_direction, pressure_coupling)
    production_ensemble = _ensemble_line(ensemble, *ens_args)
    if equilibration_steps > 0:
        eq_ens = equilibration_ensemble or ensemble
        eq_args = ens_args if eq_ens[:3] == ensemble[:3] else (temperature, temperature_end, temperature_coupling,
                                                               None, pressure_direction, None)
        lines += ['', _ensemble_line(eq_ens, *eq_args), *fix_lines, *thermo, f'run {equilibration_steps}']
    lines += ['', production_ensemble, *fix_lines, *thermo]
    if msd is not None:
        lines.append(_msd_line(msd, production_steps, version))
    if trajectory is not None:
        lines.append(_dump_line(trajectory, version))
    lines.append(f'run {production_steps}')
    return '\n'.join(lines) + '\n'


def write_run_in(path, **parameters) -> str:
    """Write :func:`make_run_in` (``**parameters``) to ``path``; returns the text written."""
    text = make_run_in(**parameters)
    Path(path).write_text(text)
    return text
