"""``sseff.gpumd``: molecular dynamics with GPUMD's ``gpumd`` executable and a NEP model, for Li transport.

The CalcJob writes ``model.xyz`` (the structure, with one grouping method that puts the mobile species in group 0
and every other species in a group of its own) and ``run.in`` (equilibration, then production with
``compute_msd`` on the mobile group), both through :mod:`aiida_sseff.io.gpumd`, which knows the syntax of each
GPUMD version. It retrieves ``thermo.out``, ``msd.out``, the log (stdout), stderr and any trajectory dump.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_sseff.data.model import NepModel

__all__ = ['DEFAULT_GPUMD_VERSION', 'GpumdCalculation', 'gpumd_run_in', 'resolve_gpumd_version']

#: GPUMD version assumed when neither the ``gpumd_version`` input nor the code's extra says otherwise
DEFAULT_GPUMD_VERSION = '5.6'

#: keys of the ``parameters`` Dict passed on unchanged to :func:`aiida_sseff.io.gpumd.make_run_in`
_RUN_IN_KEYS = (
    'temperature', 'production_steps', 'equilibration_steps', 'time_step_fs', 'ensemble', 'temperature_end',
    'temperature_coupling', 'pressure', 'pressure_direction', 'pressure_coupling', 'equilibration_ensemble',
    'velocity_seed', 'dump_thermo', 'kspace', 'kspace_spacing', 'fix', 'min_time_origins', 'dump_restart',
)
_MSD_KEYS = ('sample_interval', 'n_correlation', 'save_every', 'all_groups')
_DUMP_KEYS = ('interval', 'filename', 'properties', 'precision', 'style', 'velocity', 'force', 'mobile_only')

LOG_FILENAME = 'log'
RESTART_FILENAME = 'restart.xyz'
#: the cumulative MSDs that ``compute_msd … save_every n`` writes (``msd_step<step>.out``, msd.cu)
MSD_STEP_PATTERN = 'msd_step*.out'
STDERR_FILENAME = 'gpumd.err'
POTENTIAL_FILENAME = 'nep.txt'


def resolve_gpumd_version(gpumd_version=None, code=None) -> str:
    """The GPUMD version that ``run.in`` is written for: the ``gpumd_version`` input, else the code's extra
    ``gpumd_version`` (set it once with ``code.base.extras.set('gpumd_version', '5.6')``), else '5.6'."""
    if gpumd_version is not None:
        return str(gpumd_version.value if isinstance(gpumd_version, orm.Str) else gpumd_version)
    if code is not None:
        value = code.base.extras.get('gpumd_version', None)
        if value:
            return str(value)
    return DEFAULT_GPUMD_VERSION


def gpumd_run_in(parameters: dict, gpumd_version: str, model_header: str | None = None,
                 restart: bool = False) -> str:
    """Text of ``run.in`` from the CalcJob's ``parameters`` (raises ``ValueError`` naming the bad key).

    ``parameters``: the arguments of :func:`aiida_sseff.io.gpumd.make_run_in` (``temperature`` K,
    ``production_steps``, ``equilibration_steps``, ``time_step_fs`` fs, ``ensemble``, …) plus
    ``compute_msd`` = ``{sample_interval, n_correlation, [save_every], [all_groups]}`` (default: every 10 steps,
    lags up to half the production run; MSD of group 0 of grouping method 0, the mobile species, or of every
    group with ``all_groups: true``; ``compute_msd: null`` for none, e.g. an NPT equilibration job) and an optional ``dump`` = ``{interval, [filename], [properties],
    [precision], [style], [velocity], [force], [mobile_only]}``. Charge-aware (qNEP) models get ``kspace pppm``
    (GPUMD's default, written explicitly) unless ``kspace: ewald``; see
    :class:`aiida_sseff.io.gpumd.ChargeModelSettingError` for the settings refused. ``dump_restart`` (steps) writes ``restart.xyz`` that often and, unless
    ``compute_msd.save_every`` is given, saves the MSD accumulated so far at the same steps (``msd_step<n>.out``),
    so that a run stopped by its wall time can be continued and its MSD kept. ``restart=True`` (a continuation
    from a ``restart.xyz`` as model.xyz) omits the ``velocity`` line: GPUMD keeps the file's velocities.
    """
    from aiida_sseff.io.gpumd import ComputeMsd, TrajectoryDump, make_run_in

    unknown = sorted(set(parameters) - set(_RUN_IN_KEYS) - {'compute_msd', 'dump'})
    if unknown:
        raise ValueError(f'parameters: unknown key(s) {unknown}; known: {sorted((*_RUN_IN_KEYS, "compute_msd", "dump"))}')
    for key in ('temperature', 'production_steps'):
        if key not in parameters:
            raise ValueError(f'parameters: `{key}` is required')
    kwargs = {key: parameters[key] for key in _RUN_IN_KEYS if key in parameters}
    for key in ('pressure', 'fix'):
        if key in kwargs and kwargs[key] is not None:
            kwargs[key] = [tuple(item) for item in kwargs[key]] if key == 'fix' else tuple(kwargs[key])
    with_msd = not ('compute_msd' in parameters and parameters['compute_msd'] is None)
    msd = dict(parameters.get('compute_msd') or {})
    unknown = sorted(set(msd) - set(_MSD_KEYS))
    if unknown:
        raise ValueError(f'parameters.compute_msd: unknown key(s) {unknown}; known: {list(_MSD_KEYS)}')
    production = parameters['production_steps']
    sample_interval = msd.get('sample_interval', 10)
    n_correlation = msd.get('n_correlation')
    if n_correlation is None and isinstance(production, int) and isinstance(sample_interval, int) and sample_interval:
        n_correlation = max(production // (2 * sample_interval), 1)
    save_every = msd.get('save_every')
    if save_every is None and parameters.get('dump_restart'):
        save_every = parameters['dump_restart']
        if isinstance(sample_interval, int) and sample_interval and save_every % sample_interval:
            raise ValueError(f'parameters.dump_restart ({save_every}) must be a multiple of compute_msd.sample_interval '
                             f'({sample_interval}): msd.cu saves the MSD only at sampled steps')
    kwargs['msd'] = ComputeMsd(
        sample_interval=sample_interval,
        n_correlation=n_correlation,
        group=None if msd.get('all_groups') else (0, 0),
        all_groups=0 if msd.get('all_groups') else None,
        save_every=save_every,
    ) if with_msd else None
    if restart:
        kwargs['initial_velocities'] = False
    dump = parameters.get('dump')
    if dump:
        unknown = sorted(set(dump) - set(_DUMP_KEYS))
        if unknown:
            raise ValueError(f'parameters.dump: unknown key(s) {unknown}; known: {list(_DUMP_KEYS)}')
        if 'interval' not in dump:
            raise ValueError('parameters.dump: `interval` (steps) is required')
        options = {k: v for k, v in dump.items() if k != 'mobile_only'}
        if 'properties' in options:
            options['properties'] = tuple(options['properties'])
        if dump.get('mobile_only'):
            options['group'] = (0, 0)
        kwargs['trajectory'] = TrajectoryDump(**options)
    return make_run_in(potential=POTENTIAL_FILENAME, model_header=model_header, gpumd_version=gpumd_version, **kwargs)


def _validate_inputs(inputs, _):
    """Refuse, before submission, what GPUMD would refuse (or silently misread)."""
    structure = inputs.get('structure')
    model = inputs.get('model')
    mobile = inputs['mobile_species'].value if 'mobile_species' in inputs else 'Li'
    if structure is not None:
        symbols = set(structure.get_symbols_set())
        if mobile not in symbols:
            return f'the structure holds no {mobile} (the mobile species); it holds {", ".join(sorted(symbols))}'
        if not all(structure.pbc):
            return 'GPUMD needs a structure periodic in all three directions'
        if model is not None and model.elements:
            missing = sorted(symbols - set(model.elements))
            if missing:
                return f'the model does not know the element(s) {", ".join(missing)} (it knows {", ".join(model.elements)})'
    if 'parameters' in inputs:
        try:
            version = resolve_gpumd_version(inputs.get('gpumd_version'), inputs.get('code'))
            header = model.base.attributes.get('model_header', None) if model is not None else None
            gpumd_run_in(inputs['parameters'].get_dict(), version, header, restart='restart' in inputs)
        except ValueError as exception:
            return str(exception)


def _gpumd_atoms(structure: orm.StructureData):
    """Symbols, positions, cell and masses only: ASE's extxyz writer (behind calorine's ``write_xyz``) writes every
    per-atom array and info key, and StructureData.get_ase() adds a ``masses`` array and kind tags that GPUMD's
    model.xyz reader does not expect. Non-standard masses (isotopes) are kept in the ``mass`` column."""
    import numpy as np
    from ase import Atoms

    source = structure.get_ase()
    atoms = Atoms(source.get_chemical_symbols(), positions=source.positions, cell=source.cell, pbc=True)
    masses = source.get_masses()
    if not np.allclose(masses, atoms.get_masses()):
        atoms.new_array('mass', masses)
    return atoms


def declare_gpumd_run_exit_codes(spec) -> None:
    """The exit codes of every GPUMD job: what :func:`aiida_sseff.parsers.gpumd.read_gpumd_log` returns (no log,
    GPUMD's input or run errors) and the missing, unreadable or incomplete outputs every GPUMD parser checks."""
    spec.exit_code(300, 'ERROR_MISSING_LOG',
                   message='The GPUMD log (stdout) was not retrieved: GPUMD did not start or the job was killed.')
    spec.exit_code(301, 'ERROR_MISSING_OUTPUT', message='The output file `{filename}` is missing.')
    spec.exit_code(302, 'ERROR_UNREADABLE_OUTPUT', message='The output file `{filename}` cannot be read: {message}')
    spec.exit_code(310, 'ERROR_INPUT_REFUSED', message='GPUMD refused its input: {message}')
    spec.exit_code(400, 'ERROR_MD_INCOMPLETE',
                   message='GPUMD stopped before the end of the run ({message}): out of wall time, or crashed.')
    spec.exit_code(401, 'ERROR_GPUMD_FAILED', message='GPUMD reported an error: {message}')


class GpumdCalculation(CalcJob):
    """MD with GPUMD (``gpumd``) and a NEP model: ``compute_msd`` of the mobile species, ``thermo.out``.

    Outputs (by :class:`aiida_sseff.parsers.gpumd.GpumdParser`): ``msd`` (ArrayData: ``time`` ps, ``msd`` and
    ``sdc`` of shape (groups, lags, 3) in Å² and Å²/ps), ``thermo`` (ArrayData, one array per ``thermo.out``
    column), ``performance`` (Dict: speed in atom·step/s, GPUMD version, wall time).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The initial structure (periodic).')
        spec.input('model', valid_type=NepModel, help='The NEP model (nep.txt), copied as `nep.txt`.')
        spec.input('parameters', valid_type=orm.Dict,
                   help='run.in settings: temperature (K), production_steps, equilibration_steps, time_step_fs, '
                        'ensemble, dump_thermo, compute_msd {sample_interval, n_correlation}, optional dump {...}.')
        spec.input('gpumd_version', valid_type=orm.Str, required=False,
                   help="GPUMD version the run.in is written for ('5.6', '4.9', 'dev'); default: the code's extra "
                        "`gpumd_version`, else '5.6'.")
        spec.input('mobile_species', valid_type=orm.Str, default=lambda: orm.Str('Li'),
                   help='The diffusing species: group 0 of grouping method 0 in model.xyz.')
        spec.input('restart', valid_type=orm.SinglefileData, required=False,
                   help="A GPUMD restart.xyz (positions, velocities, groups) that replaces model.xyz: a continuation; "
                        "run.in then has no `velocity` line. The atoms must be those of `structure`.")
        spec.inputs.validator = _validate_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.gpumd'
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False

        spec.output('msd', valid_type=orm.ArrayData, required=False,
                    help='msd.out (unless compute_msd is null): time (ps), msd (Å²) and sdc (Å²/ps) per group.')
        spec.output('thermo', valid_type=orm.ArrayData, required=False, help='thermo.out, one array per column.')
        spec.output('performance', valid_type=orm.Dict, help='Speed (atom·step/s), GPUMD version, timings.')
        spec.output('trajectory', valid_type=orm.TrajectoryData, required=False,
                    help='The dump of unwrapped positions (dump_xyz … unwrapped_position), when the run wrote one.')
        spec.output('msd_check', valid_type=orm.Dict, required=False,
                    help='The MSD recomputed from the unwrapped dump against msd.out (largest relative deviation).')
        spec.output('restart', valid_type=orm.SinglefileData, required=False,
                    help='restart.xyz: the last state of a finished run, or of a run that stopped early (then '
                         'matching the MSD saved at the same step).')

        declare_gpumd_run_exit_codes(spec)
        spec.exit_code(402, 'ERROR_MD_UNSTABLE', message='The MD became unstable: {message}')
        spec.exit_code(403, 'ERROR_MSD_INCONSISTENT',
                       message='msd.out disagrees with the MSD recomputed from the unwrapped positions of the dump '
                               '({message}): GPUMD had a bug in unwrapped positions under variable cells; do not '
                               'trust this run.')

    def prepare_for_submission(self, folder):
        from aiida_sseff.io.gpumd import species_grouping, write_model_xyz

        version = resolve_gpumd_version(self.inputs.get('gpumd_version'), self.inputs.code)
        header = self.inputs.model.base.attributes.get('model_header', None)
        restart = 'restart' in self.inputs
        run_in = gpumd_run_in(self.inputs.parameters.get_dict(), version, header, restart=restart)
        with folder.open('run.in', 'w', encoding='utf8') as handle:
            handle.write(run_in)

        atoms = _gpumd_atoms(self.inputs.structure)
        mobile = self.inputs.mobile_species.value
        # other species in the model's type order, so group k+1 is the model's k-th non-mobile type
        order = [s for s in (self.inputs.model.elements or []) if s in set(atoms.get_chemical_symbols())] or None
        groups = species_grouping(atoms.get_chemical_symbols(), mobile, order=order)
        if restart:
            # GPUMD's restart.xyz is a model.xyz with velocities and the same groups (dump_restart.cu)
            with self.inputs.restart.open(mode='rb') as source, folder.open('model.xyz', 'wb') as target:
                target.write(source.read())
        else:
            write_model_xyz(atoms, folder.get_abs_path('model.xyz'), groups=groups)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = []
        codeinfo.stdout_name = LOG_FILENAME
        codeinfo.stderr_name = STDERR_FILENAME

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        model = self.inputs.model
        calcinfo.local_copy_list = [(model.uuid, model.filename, POTENTIAL_FILENAME)]
        retrieve = [LOG_FILENAME, STDERR_FILENAME, 'run.in', 'thermo.out', 'msd.out', RESTART_FILENAME,
                    MSD_STEP_PATTERN]
        dump = self.inputs.parameters.get_dict().get('dump')
        if dump:
            retrieve.append(dump.get('filename', 'dump.xyz'))
        calcinfo.retrieve_list = retrieve
        return calcinfo
