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
``read_run_in`` is our own too: calorine's ``read_runfile`` takes ``#`` comment lines for keywords, refuses
one-word lines, drops ``velocity … seed n``, reads the old ``dump_xyz gm gid interval …`` syntax's grouping method as
the interval and gives no line numbers for errors. ``read_model_xyz`` wraps calorine's ``read_xyz``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    'ChargeModelSettingError',
    'ComputeMsd',
    'GpumdRun',
    'MsdBlock',
    'MsdTimeOriginsError',
    'TrajectoryDump',
    'is_charge_model_header',
    'make_run_in',
    'model_group_sizes',
    'msd_run',
    'parse_gpumd_version',
    'read_model_xyz',
    'read_msd',
    'read_run_in',
    'read_speed',
    'read_thermo',
    'species_grouping',
    'write_model_xyz',
    'write_msd',
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

    The typed fields below come from the header that GPUMD ≥ 5.6 writes before each block (``MSD::write`` in
    ``src/measure/msd.cu``); every one is None for a header-less file (GPUMD ≤ 5.5, e.g. the reference
    ``msd.out``). The header does not give the run length, so the number of time origins needs ``run.in``
    (:func:`read_run_in`) or the CalcJob's parameters.

    sample_interval, n_correlation : ``# compute_msd <sample_interval> <Nc> …`` (steps, samples).
    group : ``(grouping_method, group_id)`` of ``compute_msd … group gm gid``.
    all_groups : grouping method of ``compute_msd … all_groups gm``.
    save_every : ``save_every n`` (steps).
    format_version : ``# format_version``.
    num_atoms : ``# num_atoms``: atoms the MSD was accumulated over (all atoms, or those of ``group``).
    num_atoms_per_group : (G,) ``# num_atoms_per_group``: the ions of each group (the normalisation).
    cell : (3, 3) ``# cell`` at the start of the run, rows a, b, c (Å).
    dt_output_ps : ``# dt_output <x> ps``: time between samples (= time step × sample_interval).
    columns : ``# columns`` names.
    """

    time: np.ndarray
    msd: np.ndarray
    sdc: np.ndarray
    header: dict = field(default_factory=dict)
    first_line: int = 0
    sample_interval: int | None = None
    n_correlation: int | None = None
    group: tuple[int, int] | None = None
    all_groups: int | None = None
    save_every: int | None = None
    format_version: int | None = None
    num_atoms: int | None = None
    num_atoms_per_group: np.ndarray | None = None
    cell: np.ndarray | None = None
    dt_output_ps: float | None = None
    columns: tuple[str, ...] | None = None

    @property
    def n_groups(self) -> int:
        return int(self.msd.shape[0])

    @property
    def has_header(self) -> bool:
        """True when the block carries GPUMD ≥ 5.6's ``# compute_msd`` header."""
        return self.n_correlation is not None

    def msd_xyz(self, group: int = 0) -> np.ndarray:
        """(M, 3) MSD of ``group`` (Å²)."""
        return self.msd[group]


def _header_int(path, first_line, header, key, index=0) -> int:
    try:
        return int(header[key][index])
    except (IndexError, ValueError):
        raise ValueError(f'{path}: block starting at line {first_line}: header `# {key} {" ".join(header[key])}`: '
                         f'expected an integer at position {index + 1}.') from None


def _typed_header(path, header, first_line, n_groups, n_rows, time) -> dict:
    """The typed MsdBlock fields of a GPUMD ≥ 5.6 header (``MSD::write`` in msd.cu), checked against the data."""
    typed: dict = {}
    where = f'{path}: block starting at line {first_line}'
    if 'compute_msd' in header:
        args = header['compute_msd']
        typed['sample_interval'] = _header_int(path, first_line, header, 'compute_msd', 0)
        typed['n_correlation'] = _header_int(path, first_line, header, 'compute_msd', 1)
        k = 2
        while k < len(args):
            if args[k] == 'group' and k + 2 < len(args):
                typed['group'] = (_header_int(path, first_line, header, 'compute_msd', k + 1),
                                  _header_int(path, first_line, header, 'compute_msd', k + 2))
                k += 3
            elif args[k] in ('all_groups', 'save_every') and k + 1 < len(args):
                typed[args[k]] = _header_int(path, first_line, header, 'compute_msd', k + 1)
                k += 2
            else:
                raise ValueError(f'{where}: header `# compute_msd {" ".join(args)}`: unexpected {args[k]!r} '
                                 f'(expected group gm gid, all_groups gm or save_every n).')
        if typed['n_correlation'] != n_rows:
            raise ValueError(f'{where}: the header says Nc = {typed["n_correlation"]}, the block has {n_rows} rows.')
    if 'format_version' in header:
        typed['format_version'] = _header_int(path, first_line, header, 'format_version')
    if 'num_atoms' in header:
        typed['num_atoms'] = _header_int(path, first_line, header, 'num_atoms')
    if 'num_atoms_per_group' in header:
        counts = [_header_int(path, first_line, header, 'num_atoms_per_group', i)
                  for i in range(len(header['num_atoms_per_group']))]
        if len(counts) != n_groups:
            raise ValueError(f'{where}: `# num_atoms_per_group` lists {len(counts)} groups, the data have {n_groups}.')
        typed['num_atoms_per_group'] = np.array(counts, dtype=int)
    if 'cell' in header:
        try:
            cell = np.array([float(x) for x in header['cell']])
        except ValueError:
            cell = np.array([])
        if cell.shape != (9,):
            raise ValueError(f'{where}: `# cell` must hold 9 numbers (ax ay az bx by bz cx cy cz), got '
                             f'{header["cell"]}.')
        typed['cell'] = cell.reshape(3, 3)
    if 'dt_output' in header:
        try:
            dt = float(header['dt_output'][0])
        except (IndexError, ValueError):
            raise ValueError(f'{where}: `# dt_output {" ".join(header["dt_output"])}`: expected a number in ps.') \
                from None
        # rows print nc·dt with %g (6 significant digits)
        if n_rows > 1 and not np.isclose(time[1] - time[0], dt, rtol=1e-4, atol=0.0):
            raise ValueError(f'{where}: `# dt_output {dt:g} ps` but the time column steps by {time[1] - time[0]:g} ps.')
        typed['dt_output_ps'] = dt
    if 'columns' in header:
        typed['columns'] = tuple(header['columns'])
    return typed


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
    typed = _typed_header(path, header, first_line, n_groups, data.shape[0], data[:, 0])
    return MsdBlock(time=data[:, 0], msd=per_group[:, :, :3].copy(), sdc=per_group[:, :, 3:].copy(),
                    header=dict(header), first_line=first_line, **typed)


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


def write_msd(path, time_ps, msd, sdc, *, compute_msd: ComputeMsd, num_atoms: int, num_atoms_per_group,
              cell, dt_output_ps: float) -> None:
    """Append one ``msd.out`` block exactly as GPUMD ≥ 5.6 writes it (``MSD::write`` in ``src/measure/msd.cu``).

    The header lines ``# compute_msd …``, ``# format_version 1``, ``# num_atoms``, ``# num_groups``,
    ``# num_atoms_per_group``, ``# cell`` (ax ay az bx by bz cx cy cz, ``%.10e``), ``# dt_output <x> ps``,
    ``# columns …``, then one row per lag: ``%g`` time, and per group ``% g %g %g %g %g %g`` (msd xyz in Å², sdc
    xyz in Å²/ps). Used by the GPUMD stand-in of the tests; ``msd``/``sdc`` are (G, Nc, 3).
    """
    msd, sdc = np.asarray(msd, dtype=float), np.asarray(sdc, dtype=float)
    counts = np.atleast_1d(np.asarray(num_atoms_per_group, dtype=int))
    n_groups = msd.shape[0]
    if msd.shape != sdc.shape or msd.ndim != 3 or msd.shape[2] != 3 or len(counts) != n_groups:
        raise ValueError(f'write_msd: msd {msd.shape}, sdc {sdc.shape}, num_atoms_per_group {counts.shape}: '
                         f'expected (G, Nc, 3), (G, Nc, 3) and (G,).')
    head = f'# compute_msd {compute_msd.sample_interval} {compute_msd.n_correlation}'
    if compute_msd.all_groups is not None:
        head += f' all_groups {compute_msd.all_groups}'
    elif compute_msd.group is not None:
        head += f' group {compute_msd.group[0]} {compute_msd.group[1]}'
    if compute_msd.save_every:
        head += f' save_every {compute_msd.save_every}'
    if compute_msd.all_groups is None:
        columns = ' msdx msdy msdz sdcx sdcy sdcz'
    else:
        columns = ''.join(f' msdx_{g} msdy_{g} msdz_{g} sdcx_{g} sdcy_{g} sdcz_{g}' for g in range(n_groups))
    lines = [head, '# format_version 1', f'# num_atoms {int(num_atoms)}', f'# num_groups {n_groups}',
             '# num_atoms_per_group' + ''.join(f' {int(c)}' for c in counts),
             '# cell ' + ' '.join(f'{x:.10e}' for x in np.asarray(cell, dtype=float).reshape(9)),
             f'# dt_output {dt_output_ps:.10e} ps', '# columns time_ps' + columns]
    for nc, t in enumerate(np.asarray(time_ps, dtype=float)):
        row = f'{t:g}'
        for g in range(n_groups):
            m, d = msd[g, nc], sdc[g, nc]
            row += f'{m[0]: g} {m[1]:g} {m[2]:g} {d[0]:g} {d[1]:g} {d[2]:g}'
        lines.append(row)
    with open(path, 'a') as handle:
        handle.write('\n'.join(lines) + '\n')


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

    def n_samples(self, steps: int) -> int:
        """Samples taken in a run of ``steps`` steps: GPUMD samples after step s when (s + 1) % interval == 0."""
        return int(steps) // int(self.sample_interval)

    def n_time_origins(self, steps: int) -> int:
        """Time origins of every lag in a run of ``steps`` steps
        (:func:`aiida_sseff.analysis.gpumd_msd.gpumd_time_origins`: ``n_samples - Nc + 1``)."""
        from aiida_sseff.analysis.gpumd_msd import gpumd_time_origins

        return gpumd_time_origins(self.n_samples(steps), int(self.n_correlation))

    def check(self, steps: int, min_time_origins: int = 1, gpumd_version='5.6') -> int:
        """Raise :class:`MsdTimeOriginsError` unless a run of ``steps`` steps gives at least ``min_time_origins``
        time origins (and GPUMD's own limit holds); returns the number of time origins."""
        _msd_line(self, steps, parse_gpumd_version(gpumd_version), min_time_origins)
        return self.n_time_origins(steps)


class ChargeModelSettingError(ValueError):
    """A ``run.in`` setting for the long-range part of a charge model (qNEP) that GPUMD cannot run.

    Checked in GPUMD's sources (tags v4.1 ... v5.6 and the development branch): ``src/force/nep_charge.cu``
    (``NEP_Charge::check_ewald_pppm``) reads ``kspace <ewald|pppm>`` from ``run.in`` and exits on any other
    method or on a second parameter ("kspace must have 1 parameter"; the PPPM mesh and the Ewald splitting
    alpha = pi / rc_radial are fixed by GPUMD); with no ``kspace`` line it uses PPPM
    (doc/gpumd/input_parameters/kspace.rst: "The default is pppm"). The keyword exists since v4.5 (before, GPUMD's
    ``run.cu`` aborts on it as an unknown keyword, and v4.1 ... v4.4 evaluate the reciprocal part by Ewald only);
    charge models exist since v4.1. ``kspace`` is meaningless for a model without charges.
    """


#: first GPUMD version with charge models (``src/force/nep_charge.cu``) and with the ``kspace`` keyword
GPUMD_CHARGE_MODEL_SINCE = (4, 1, 0)
GPUMD_KSPACE_SINCE = (4, 5, 0)
#: GPUMD's reciprocal-space solvers of a charge model; the first is its default
KSPACE_METHODS = ('pppm', 'ewald')


def is_charge_model_header(model_header: str | None) -> bool:
    """Whether the first line of a ``nep.txt`` names a charge model (``nep4_charge1``, ``nep4_zbl_charge2``,
    ``nep4_charge_vdw`` ...: GPUMD's ``Force::parse_potential`` picks ``NEP_Charge`` for any 'charge' token)."""
    return bool(model_header) and 'charge' in str(model_header).split()[0]


def _kspace_line(kspace: str | None, kspace_spacing, model_header: str | None, version: tuple[int, int, int]
                 ) -> str | None:
    """The ``kspace`` line of ``run.in`` (None: none), or :class:`ChargeModelSettingError`."""
    if kspace_spacing is not None:
        raise ChargeModelSettingError(
            f'run.in: kspace spacing {kspace_spacing!r}: GPUMD\'s kspace takes one parameter, the method '
            "(ewald or pppm), and exits with 'kspace must have 1 parameter' otherwise (src/force/nep_charge.cu); "
            'leave kspace_spacing out')
    if kspace is not None and kspace not in KSPACE_METHODS:
        raise ChargeModelSettingError(f"run.in: kspace {kspace!r}: expected 'ewald' or 'pppm' (GPUMD knows no other "
                                      'reciprocal-space method for a charge model)')
    charged = is_charge_model_header(model_header)
    if model_header is not None and not charged:
        if kspace is not None:
            raise ChargeModelSettingError(
                f'run.in: kspace is for charge-aware NEP models (header nep*_charge*), but the model header is '
                f'{str(model_header).split()[0]!r}: it has no charges')
        return None
    if charged and version < GPUMD_CHARGE_MODEL_SINCE:
        raise ChargeModelSettingError(
            f'the model is a charge model ({str(model_header).split()[0]}), which GPUMD runs only from v4.1 on; '
            f'this run.in is for GPUMD {".".join(map(str, version))}')
    if version < GPUMD_KSPACE_SINCE:
        if kspace == 'pppm':
            raise ChargeModelSettingError(
                f'run.in: kspace pppm needs GPUMD >= 4.5 (GPUMD {".".join(map(str, version))} has Ewald only and no '
                'kspace keyword); leave kspace out')
        return None  # Ewald, the only solver of these versions; the keyword would abort them
    if kspace is None and charged:
        kspace = KSPACE_METHODS[0]  # GPUMD's own default, written out so that run.in says which solver ran
    return None if kspace is None else f'kspace {kspace}'


class MsdTimeOriginsError(ValueError):
    """``compute_msd``'s Nc leaves fewer time origins than required.

    GPUMD (``src/measure/msd.cu``) adds one time origin per sample once ``sample_step >= Nc - 1``, so a
    production run of ``n_samples = steps // sample_interval`` samples has ``n_samples - Nc + 1`` origins for every
    lag; with Nc equal to all the samples the MSD comes from a single origin.
    """


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


def _msd_line(msd: ComputeMsd, production_steps: int, version, min_time_origins: int = 1) -> str:
    si = _positive_int('compute_msd sample_interval', msd.sample_interval)
    nc = _positive_int('compute_msd Nc', msd.n_correlation)
    min_time_origins = _positive_int('min_time_origins', min_time_origins)
    if version >= (5, 0, 0):
        # msd.cu MSD::preprocess: `num_correlation_steps_ > number_of_steps / sample_interval_` is an input error
        if nc * si > production_steps:
            raise ValueError(f'run.in: compute_msd: Nc·sample_interval = {nc}·{si} = {nc * si} exceeds the '
                             f'{production_steps} production steps (GPUMD >= 5.0 refuses it).')
    elif nc > production_steps:
        raise ValueError(f'run.in: compute_msd: Nc = {nc} exceeds the {production_steps} production steps '
                         f'(GPUMD < 5.0 refuses it).')
    n_samples = msd.n_samples(production_steps)
    origins = msd.n_time_origins(production_steps)
    if origins < min_time_origins:
        raise MsdTimeOriginsError(
            f'run.in: compute_msd {si} {nc}: {production_steps} production steps give {n_samples} samples, and Nc = '
            f'{nc} leaves {origins} time origin(s) (samples - Nc + 1, GPUMD msd.cu); at least {min_time_origins} '
            f'are required: use Nc <= {max(n_samples - min_time_origins + 1, 0)} or a longer run.')
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
    min_time_origins: int = 1,
    dump_restart: int | None = None,
    initial_velocities: bool = True,
) -> str:
    """Text of a GPUMD ``run.in`` for an MD diffusion run (equilibration, then production), validated.

    Layout::

        potential <potential>
        [kspace pppm | ewald]                  (charge models, qNEP, GPUMD >= 4.5 only)
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
    min_time_origins : refuse (:class:`MsdTimeOriginsError`) a ``msd`` whose Nc leaves fewer time origins
        (``production_steps // sample_interval - Nc + 1``, GPUMD's msd.cu); 1 is GPUMD's own limit.
    trajectory : :class:`TrajectoryDump` for the production run (syntax follows ``gpumd_version``).
    kspace : reciprocal-space solver of a charge model (qNEP, header ``nep4*_charge*``): ``pppm`` (GPUMD's default,
        O(N log N); GPUMD's own tests find it within 1 % of Ewald, ``tests_pytest/test_kspace_consistency.py``) or
        ``ewald`` (exact, as in training and in calorine's CPUNEP, but its cost grows as N²). None: ``pppm`` for a
        charge model (written explicitly), no line otherwise. See :class:`ChargeModelSettingError` for what is
        refused (a method for a model without charges, ``pppm`` before GPUMD 4.5, a charge model before 4.1).
    kspace_spacing : refused (GPUMD's ``kspace`` takes the method only); kept so that old inputs fail by name.
    model_header : first line of ``nep.txt`` (e.g. ``nep4_zbl 4 Li La Zr O``): decides whether a ``kspace`` line
        is written or allowed.
    fix : ``(grouping_method, group)`` pairs frozen in both runs (``fix gid`` before GPUMD 5.3, method 0 only).
    gpumd_version : ``'X.Y[.Z]'`` or ``'dev'`` (the development branch after 5.6).
    dump_restart : write ``restart.xyz`` (model.xyz format: positions, masses, velocities, groups) every that many
        steps, in both runs. ``dump_restart <interval>`` has one positive integer in every GPUMD version
        (``Dump_Restart::parse``); it applies to the next run only and overwrites the file. Velocities there are in
        Å/fs since GPUMD 3.4 (GPUMD prints that warning); early versions wrote ``restart.out``.
    initial_velocities : False omits the ``velocity`` line, so GPUMD keeps the velocities of ``model.xyz``
        (a continuation from a ``restart.xyz``).
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
    kspace_line = _kspace_line(kspace, kspace_spacing, model_header, version)
    if kspace_line is not None:
        lines.append(kspace_line)
    if initial_velocities:
        velocity = f'velocity {_num(temperature)}'
        if velocity_seed is not None:
            velocity += f' seed {_positive_int("velocity_seed", velocity_seed)}'
        lines.append(velocity)
    lines.append(f'time_step {_num(time_step_fs)}')
    fix_lines = _fix_lines(fix, version)
    thermo = [] if dump_thermo is None else [f'dump_thermo {_positive_int("dump_thermo", dump_thermo)}']
    if dump_restart is not None:
        thermo.append(f'dump_restart {_positive_int("dump_restart", dump_restart)}')
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
        lines.append(_msd_line(msd, production_steps, version, min_time_origins))
    if trajectory is not None:
        lines.append(_dump_line(trajectory, version))
    lines.append(f'run {production_steps}')
    return '\n'.join(lines) + '\n'


def write_run_in(path, **parameters) -> str:
    """Write :func:`make_run_in` (``**parameters``) to ``path``; returns the text written."""
    text = make_run_in(**parameters)
    Path(path).write_text(text)
    return text


# ------------------------------------------------------------------------------------------------- run.in reader
@dataclass(frozen=True)
class GpumdRun:
    """One ``run`` of a GPUMD ``run.in`` with the keywords in force for it.

    GPUMD keeps ``potential`` and ``time_step`` (default 1 fs) from one run to the next; ``ensemble``, ``fix``,
    ``compute_*`` and ``dump_*`` apply to the next ``run`` only (``Integrate::finalize`` and
    ``Measure::finalize`` reset them). ``velocity`` initialises velocities once, where it stands; ``velocity`` here
    is the last one before this run (None: model.xyz's velocities, or the default 300 K of GPUMD's log).

    Attributes
    ----------
    steps : the run's MD steps.
    time_step_fs : time step (fs).
    line : 1-based line of the ``run`` keyword.
    ensemble : tokens after ``ensemble`` (e.g. ``('nvt_bdp', '1000', '1000', '100')``), None if absent.
    velocity : ``(T, seed or None)`` of the last ``velocity`` line before this run.
    compute_msd : the run's ``compute_msd`` as :class:`ComputeMsd`, or None.
    dump_thermo, dump_restart : intervals (steps), or None.
    dumps : trajectory dumps (``dump_xyz`` in either syntax, ``dump_exyz``) as :class:`TrajectoryDump`.
    fix : ``(grouping_method, group)`` pairs (``fix gid`` is method 0).
    potentials : the ``potential`` files in force.
    other : the run's other keyword lines, as token tuples.
    """

    steps: int
    time_step_fs: float
    line: int
    ensemble: tuple[str, ...] | None = None
    velocity: tuple[float, int | None] | None = None
    compute_msd: ComputeMsd | None = None
    dump_thermo: int | None = None
    dump_restart: int | None = None
    dumps: tuple[TrajectoryDump, ...] = ()
    fix: tuple[tuple[int, int], ...] = ()
    potentials: tuple[str, ...] = ()
    other: tuple[tuple[str, ...], ...] = ()

    @property
    def duration_ps(self) -> float:
        return self.steps * self.time_step_fs / 1000.0

    @property
    def n_samples(self) -> int | None:
        """MSD samples of this run (steps // sample_interval), None without ``compute_msd``."""
        return None if self.compute_msd is None else self.compute_msd.n_samples(self.steps)

    @property
    def n_time_origins(self) -> int | None:
        """Time origins of every MSD lag (samples - Nc + 1, GPUMD's msd.cu), None without ``compute_msd``."""
        return None if self.compute_msd is None else self.compute_msd.n_time_origins(self.steps)

    @property
    def dt_sample_ps(self) -> float | None:
        """Time between MSD samples (ps), None without ``compute_msd``."""
        return None if self.compute_msd is None else self.compute_msd.sample_interval * self.time_step_fs / 1000.0


def _run_in_error(source, lineno, message):
    return ValueError(f'{source}: line {lineno}: {message}')


def _int_token(source, lineno, tokens, index, what) -> int:
    try:
        return int(tokens[index])
    except (IndexError, ValueError):
        raise _run_in_error(source, lineno, f'`{" ".join(tokens)}`: {what} must be an integer.') from None


def _parse_compute_msd(source, lineno, tokens) -> ComputeMsd:
    """``compute_msd <interval> <Nc> [group gm gid | all_groups gm] [save_every n]`` (msd.cu ``MSD::parse``)."""
    interval = _int_token(source, lineno, tokens, 1, 'the sample interval')
    nc = _int_token(source, lineno, tokens, 2, 'Nc (number of correlation steps)')
    if interval <= 0 or nc <= 0:
        raise _run_in_error(source, lineno, f'`{" ".join(tokens)}`: sample interval and Nc must be positive.')
    group = all_groups = save_every = None
    k = 3
    while k < len(tokens):
        if tokens[k] == 'group':
            group = (_int_token(source, lineno, tokens, k + 1, 'the grouping method'),
                     _int_token(source, lineno, tokens, k + 2, 'the group id'))
            k += 3
        elif tokens[k] == 'all_groups':
            all_groups = _int_token(source, lineno, tokens, k + 1, 'the grouping method')
            k += 2
        elif tokens[k] == 'save_every':
            save_every = _int_token(source, lineno, tokens, k + 1, 'save_every')
            k += 2
        else:
            raise _run_in_error(source, lineno, f'`{" ".join(tokens)}`: unrecognised argument {tokens[k]!r} '
                                                f'(expected group gm gid, all_groups gm or save_every n).')
    if group is not None and all_groups is not None:
        raise _run_in_error(source, lineno, 'compute_msd: `group` and `all_groups` cannot be used together.')
    return ComputeMsd(interval, nc, group=group, all_groups=all_groups, save_every=save_every)


def _parse_dump(source, lineno, tokens) -> TrajectoryDump:
    """``dump_xyz`` (≤ 5.6: ``gm gid interval file props``; after: ``interval file [group gm gid]
    [precision p] props``) or ``dump_exyz interval [velocity force]``."""
    if tokens[0] == 'dump_exyz':
        interval = _int_token(source, lineno, tokens, 1, 'the dump interval')
        flags = [_int_token(source, lineno, tokens, k, 'a flag') for k in range(2, len(tokens))]
        return TrajectoryDump(interval, style='dump_exyz', velocity=bool(flags[0]) if flags else False,
                              force=bool(flags[1]) if len(flags) > 1 else False)
    if len(tokens) >= 5 and re.fullmatch(r'-?\d+', tokens[2]):  # old syntax: gm gid interval file
        gm, gid = (_int_token(source, lineno, tokens, k, 'the group') for k in (1, 2))
        interval = _int_token(source, lineno, tokens, 3, 'the dump interval')
        return TrajectoryDump(interval, tokens[4], group=None if gm < 0 else (gm, gid), properties=tuple(tokens[5:]))
    interval = _int_token(source, lineno, tokens, 1, 'the dump interval')
    if len(tokens) < 3:
        raise _run_in_error(source, lineno, f'`{" ".join(tokens)}`: expected dump_xyz <interval> <file> ...')
    group, precision, props, k = None, None, [], 3
    while k < len(tokens):
        if tokens[k] == 'group':
            group = (_int_token(source, lineno, tokens, k + 1, 'the grouping method'),
                     _int_token(source, lineno, tokens, k + 2, 'the group id'))
            k += 3
        elif tokens[k] == 'precision' and k + 1 < len(tokens):
            precision = tokens[k + 1]
            k += 2
        else:
            props.append(tokens[k])
            k += 1
    return TrajectoryDump(interval, tokens[2], group=group, properties=tuple(props), precision=precision)


def read_run_in(path_or_text) -> list[GpumdRun]:
    """The ``run`` blocks of a GPUMD ``run.in`` (a path, or the text itself), in order.

    Comment (``#``) and blank lines are skipped. Raises ``ValueError`` naming the line for a malformed
    ``time_step``, ``run``, ``compute_msd``, ``dump_*`` or ``fix``. The run that carries ``compute_msd`` gives the
    MSD statistics: ``run.n_samples``, ``run.n_time_origins``, ``run.dt_sample_ps`` (see :func:`msd_run`).
    """
    if isinstance(path_or_text, Path) or ('\n' not in str(path_or_text) and Path(str(path_or_text)).is_file()):
        source = str(path_or_text)
        text = Path(path_or_text).read_text()
    else:
        source, text = 'run.in', str(path_or_text)
    runs: list[GpumdRun] = []
    time_step, potentials, velocity = 1.0, [], None
    pending: dict = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        tokens = tuple(raw.split('#', 1)[0].split())
        if not tokens:
            continue
        key = tokens[0]
        if key == 'potential':
            potentials.append(tokens[1] if len(tokens) > 1 else '')
        elif key == 'time_step':
            try:
                time_step = float(tokens[1])
            except (IndexError, ValueError):
                raise _run_in_error(source, lineno, f'`{raw.strip()}`: time_step needs a number (fs).') from None
            if not time_step > 0:
                raise _run_in_error(source, lineno, f'`{raw.strip()}`: time_step must be positive.')
        elif key == 'velocity':
            try:
                temperature = float(tokens[1])
            except (IndexError, ValueError):
                raise _run_in_error(source, lineno, f'`{raw.strip()}`: velocity needs a temperature (K).') from None
            seed = _int_token(source, lineno, tokens, 3, 'the seed') if 'seed' in tokens[2:3] else None
            velocity = (temperature, seed)
        elif key == 'ensemble':
            pending['ensemble'] = tokens[1:]
        elif key == 'compute_msd':
            pending['compute_msd'] = _parse_compute_msd(source, lineno, tokens)
        elif key in ('dump_thermo', 'dump_restart'):
            interval = _int_token(source, lineno, tokens, 1, f'the {key} interval')
            if interval <= 0:
                raise _run_in_error(source, lineno, f'`{raw.strip()}`: the interval must be positive.')
            pending[key] = interval
        elif key in ('dump_xyz', 'dump_exyz'):
            pending.setdefault('dumps', []).append(_parse_dump(source, lineno, tokens))
        elif key == 'fix':
            ints = [_int_token(source, lineno, tokens, k, 'the group') for k in range(1, len(tokens))]
            if len(ints) not in (1, 2):
                raise _run_in_error(source, lineno, f'`{raw.strip()}`: expected fix <gid> or fix <gm> <gid>.')
            pending.setdefault('fix', []).append((0, ints[0]) if len(ints) == 1 else tuple(ints))
        elif key == 'run':
            steps = _int_token(source, lineno, tokens, 1, 'the number of steps')
            if steps <= 0 or len(tokens) != 2:
                raise _run_in_error(source, lineno, f'`{raw.strip()}`: expected run <positive number of steps>.')
            runs.append(GpumdRun(steps=steps, time_step_fs=time_step, line=lineno, velocity=velocity,
                                 potentials=tuple(potentials), ensemble=pending.get('ensemble'),
                                 compute_msd=pending.get('compute_msd'), dump_thermo=pending.get('dump_thermo'),
                                 dump_restart=pending.get('dump_restart'), dumps=tuple(pending.get('dumps', ())),
                                 fix=tuple(pending.get('fix', ())), other=tuple(pending.get('other', ()))))
            pending = {}
        else:
            pending.setdefault('other', []).append(tokens)
    return runs


def msd_run(runs: Sequence[GpumdRun], source='run.in') -> GpumdRun:
    """The last run with ``compute_msd`` (the one whose block ends ``msd.out``); ``ValueError`` if none."""
    with_msd = [run for run in runs if run.compute_msd is not None]
    if not with_msd:
        raise ValueError(f'{source}: no run has compute_msd (expected `compute_msd <interval> <Nc> …` before a run).')
    return with_msd[-1]


# -------------------------------------------------------------------------------------------- model.xyz reader
def read_model_xyz(path):
    """GPUMD's ``model.xyz`` → ``(atoms, groups)``: an ``ase.Atoms`` (velocities converted from Å/fs) and the
    ``group:I:k`` labels as an (N, k) integer array, or None without a group column.

    Reading is calorine's ``read_xyz`` (``calorine.gpumd.io``), which knows GPUMD's ``vel`` unit; only the group
    column is taken from the file's ``group`` array here.
    """
    from calorine.gpumd import read_xyz

    path = Path(path)
    try:
        atoms = read_xyz(str(path))
    except Exception as exception:  # calorine/ASE raise many types on a malformed file
        raise ValueError(f'{path}: not a GPUMD model.xyz ({exception}).') from exception
    groups = atoms.arrays.get('group')
    if groups is not None:
        groups = np.asarray(groups, dtype=int)
        groups = groups[:, None] if groups.ndim == 1 else groups
    return atoms, groups


def model_group_sizes(path, grouping_method: int = 0) -> np.ndarray | None:
    """Atoms in each group (labels 0 … n-1) of ``grouping_method`` in a GPUMD ``model.xyz``; None without a
    group column. ``ValueError`` when the file has fewer grouping methods."""
    _, groups = read_model_xyz(path)
    if groups is None:
        return None
    if not 0 <= grouping_method < groups.shape[1]:
        raise ValueError(f'{path}: grouping method {grouping_method} requested, the file has {groups.shape[1]} '
                         f'(0 … {groups.shape[1] - 1}).')
    labels = groups[:, grouping_method]
    return np.bincount(labels[labels >= 0], minlength=int(labels.max()) + 1 if labels.size else 0)
