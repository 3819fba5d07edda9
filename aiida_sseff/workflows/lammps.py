"""``sseff.lammps.md``: classical MD (Buckingham + Ewald/PPPM Coulomb) on LAMMPS through aiida-lammps, giving the
same ``trajectory`` (unwrapped positions) and ``thermo`` outputs as the CPU engine, so that
:func:`aiida_sseff.workflows.diffusion.diffusion_from_trajectory` turns it into D* unchanged.

aiida-lammps 1.0.2's ``lammps.base`` CalcJob writes a potential as one ``pair_coeff * *`` line and the structure
without charges: it cannot express ``pair_style buck/coul/long`` with per-pair coefficients and partial charges. So
the MD runs through its ``lammps.raw`` CalcJob (:class:`aiida_lammps.calculations.raw.LammpsRawCalculation`, and its
parser for errors and the performance line), with the input script and data file written by the calcfunction
:func:`lammps_md_inputs` (the data file by aiida-lammps' own ``generate_lammps_structure``), and the retrieved dump
turned into a ``TrajectoryData`` by :func:`lammps_md_outputs` (the dump read by aiida-lammps' own
``iter_trajectories``).
"""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction
from aiida_lammps.calculations.raw import LammpsRawCalculation

from aiida_sseff.potentials.classical import classical_potential, pair_key, potential_problems, total_charge
from aiida_sseff.utils import json_safe

__all__ = ['DEFAULT_LAMMPS_MD', 'LammpsMdWorkChain', 'lammps_md_inputs', 'lammps_md_outputs', 'lammps_md_script',
           'lammps_potential_problem', 'validate_lammps_md_parameters']

#: MD parameters of :class:`LammpsMdWorkChain` (the CPU engine's names where they mean the same); steps counted in
#: time steps
DEFAULT_LAMMPS_MD = {
    'temperature_K': None,  # required
    'timestep_fs': 1.0,
    'n_steps': 1000,  # production
    'n_equilibration_steps': 0,
    'trajectory_interval': 10,  # dump of unwrapped positions (and a thermo.txt row) every this many steps
    'thermo_interval': None,  # rows of thermo.txt; default: trajectory_interval
    'seed': 1,
    'thermostat_time_fs': 100.0,
    # 'nvt' (Nose-Hoover) or 'npt' (Nose-Hoover, isotropic barostat), for the production; the equilibration
    # follows `equilibration_ensemble` (default: the production's)
    'ensemble': 'nvt',
    'equilibration_ensemble': None,
    # 'equilibrated_mean': the production starts in the mean cell of the second half of the equilibration
    'production_cell': None,
    'pressure_GPa': 0.0,
    'barostat_time_fs': 1000.0,
}

_ENSEMBLES = ('nvt', 'npt')
#: files the script writes and the CalcJob retrieves
_TRAJECTORY = 'trajectory.dump'
_THERMO = 'thermo.txt'
_INITIAL = 'initial_state.txt'
_DATA = 'structure.dat'
_THERMO_COLUMNS = ('step', 'temperature_K', 'potential_energy_eV', 'volume_A3', 'pressure_bar')
_BAR_TO_GPA = 1.0e-4


def validate_lammps_md_parameters(parameters: dict) -> dict:
    """The parameters with defaults filled in; ``ValueError`` naming the bad setting."""
    unknown = sorted(set(parameters) - set(DEFAULT_LAMMPS_MD))
    if unknown:
        raise ValueError(f'lammps parameters: unknown key(s) {unknown}; known: {sorted(DEFAULT_LAMMPS_MD)}')
    p = {**DEFAULT_LAMMPS_MD, **parameters}
    if p['temperature_K'] is None or not float(p['temperature_K']) > 0:
        raise ValueError(f'lammps parameters: temperature_K must be > 0 (K), got {p["temperature_K"]}')
    for key in ('timestep_fs', 'thermostat_time_fs', 'barostat_time_fs'):
        if not float(p[key]) > 0:
            raise ValueError(f'lammps parameters: {key} must be > 0, got {p[key]}')
    for key in ('n_steps', 'trajectory_interval'):
        if int(p[key]) < 1:
            raise ValueError(f'lammps parameters: {key} must be >= 1, got {p[key]}')
    if int(p['n_equilibration_steps']) < 0:
        raise ValueError(f'lammps parameters: n_equilibration_steps must be >= 0, got {p["n_equilibration_steps"]}')
    if p['thermo_interval'] is None:
        p['thermo_interval'] = p['trajectory_interval']
    if int(p['thermo_interval']) < 1:
        raise ValueError(f'lammps parameters: thermo_interval must be >= 1, got {p["thermo_interval"]}')
    if int(p['n_steps']) // int(p['trajectory_interval']) < 2:
        raise ValueError(f'lammps parameters: n_steps ({p["n_steps"]}) / trajectory_interval '
                         f'({p["trajectory_interval"]}) gives fewer than 2 frames')
    if int(p['seed']) < 1:
        raise ValueError(f'lammps parameters: seed must be a positive integer (LAMMPS velocity), got {p["seed"]}')
    if p['equilibration_ensemble'] is None:
        p['equilibration_ensemble'] = p['ensemble']
    for key in ('ensemble', 'equilibration_ensemble'):
        if p[key] not in _ENSEMBLES:
            raise ValueError(f'lammps parameters: {key} must be one of {_ENSEMBLES}, got {p[key]!r}')
    if p['production_cell'] not in (None, 'equilibrated_mean'):
        raise ValueError(f"lammps parameters: production_cell must be None or 'equilibrated_mean', got "
                         f"{p['production_cell']!r}")
    if p['production_cell'] == 'equilibrated_mean':
        if p['equilibration_ensemble'] != 'npt' or int(p['n_equilibration_steps']) < 2:
            raise ValueError("lammps parameters: production_cell 'equilibrated_mean' needs an NPT equilibration "
                             '(equilibration_ensemble npt, n_equilibration_steps >= 2)')
    return p


def lammps_potential_problem(potential: dict, symbols) -> str | None:
    """Why ``potential`` (a classical parameter set) cannot run a structure of ``symbols``, or None."""
    problems = potential_problems(potential, set(symbols))
    if problems:
        return f'the classical potential {potential.get("name", "")!r} cannot describe this structure: ' + \
            '; '.join(problems)
    charge = total_charge(potential, symbols)
    if abs(charge) > 1e-6:
        return (f'the structure is not neutral under the potential {potential.get("name", "")!r}: net charge '
                f'{charge:+.4f} e (the Ewald/PPPM sum needs a neutral cell)')
    return None


def _type_symbols(structure: orm.StructureData) -> list[str]:
    """Element of each LAMMPS atom type, in the order aiida-lammps' ``generate_lammps_structure`` numbers the kinds
    (first appearance among the sites)."""
    kinds = []
    for name in structure.get_site_kindnames():
        if name not in kinds:
            kinds.append(name)
    return [structure.get_kind(name).symbol for name in kinds]


def _kind_charges(structure: orm.StructureData, potential: dict) -> dict:
    return {kind.name: float(potential['charges'][kind.symbol]) for kind in structure.kinds}


def lammps_md_script(potential: dict, type_symbols: list[str], parameters: dict) -> str:
    """The LAMMPS input (``units metal``) of an MD run: ``read_data`` of the charged structure, ``buck/coul/long`` with
    one ``pair_coeff`` per type pair, an equilibration, then the production writing unwrapped positions
    (``xu yu zu``) to ``trajectory.dump`` and temperature, potential energy, volume and pressure to ``thermo.txt``.
    The state of the input structure (step 0, before any velocity) goes to ``initial_state.txt``."""
    p = validate_lammps_md_parameters(parameters)
    dt_ps = float(p['timestep_fs']) / 1000.0
    temperature = float(p['temperature_K'])
    t_damp = float(p['thermostat_time_fs']) / 1000.0
    p_damp = float(p['barostat_time_fs']) / 1000.0
    pressure_bar = float(p['pressure_GPa']) / _BAR_TO_GPA
    cutoff = float(potential['cutoff_A'])
    kspace = potential['kspace']
    lines = [
        '# written by aiida-sseff (sseff.lammps.md)',
        f'# potential: {potential.get("name", "")}',
        'units metal',
        'atom_style charge',
        'boundary p p p',
        f'read_data {_DATA}',
        f'pair_style buck/coul/long {cutoff:g}',
    ]
    pairs = {pair_key(*key.split('-')): value for key, value in potential['pairs'].items()}
    for i, a in enumerate(type_symbols, start=1):
        for j in range(i, len(type_symbols) + 1):
            b = type_symbols[j - 1]
            c = pairs[pair_key(a, b)]
            lines.append(f'pair_coeff {i} {j} {float(c["A"]):.10g} {float(c["rho"]):.10g} {float(c["C"]):.10g}'
                         f'  # {a}-{b}')
    lines += [
        f'kspace_style {kspace["style"]} {float(kspace["accuracy"]):g}',
        'neighbor 2.0 bin',
        'neigh_modify every 1 delay 0 check yes',
        f'timestep {dt_ps:.10g}',
        'thermo_style custom step temp pe etotal vol press',
        f'thermo {int(p["thermo_interval"])}',
        'variable step_ equal step',
        'variable temp_ equal temp',
        'variable pe_ equal pe',
        'variable vol_ equal vol',
        'variable press_ equal press',
        'run 0',
        f'print "# {" ".join(_THERMO_COLUMNS)}" file {_INITIAL} screen no',
        f'print "${{step_}} ${{temp_}} ${{pe_}} ${{vol_}} ${{press_}}" append {_INITIAL} screen no',
        f'velocity all create {temperature:g} {int(p["seed"])} dist gaussian mom yes rot no',
    ]

    def integrator(ensemble: str) -> str:
        if ensemble == 'npt':
            return (f'fix integrate all npt temp {temperature:g} {temperature:g} {t_damp:g} iso {pressure_bar:g} '
                    f'{pressure_bar:g} {p_damp:g}')
        return f'fix integrate all nvt temp {temperature:g} {temperature:g} {t_damp:g}'

    n_eq = int(p['n_equilibration_steps'])
    if n_eq:
        lines.append(integrator(p['equilibration_ensemble']))
        if p['production_cell'] == 'equilibrated_mean':
            # the mean cell of the second half of the NPT equilibration (the first half is the barostat settling)
            second = n_eq // 2
            every = max(1, min(int(p['thermo_interval']), second))
            repeat = second // every
            lines += [
                f'run {n_eq - repeat * every}',
                'reset_timestep 0',
                *(f'variable {name}_ equal {name}' for name in ('lx', 'ly', 'lz', 'xy', 'xz', 'yz')),
                f'fix cell_mean all ave/time {every} {repeat} {repeat * every} v_lx_ v_ly_ v_lz_ v_xy_ v_xz_ v_yz_',
                f'run {repeat * every}',
                'variable xhi_mean equal xlo+f_cell_mean[1]',
                'variable yhi_mean equal ylo+f_cell_mean[2]',
                'variable zhi_mean equal zlo+f_cell_mean[3]',
                'variable xy_mean equal f_cell_mean[4]',
                'variable xz_mean equal f_cell_mean[5]',
                'variable yz_mean equal f_cell_mean[6]',
                'change_box all x final $(xlo) ${xhi_mean} y final $(ylo) ${yhi_mean} z final $(zlo) ${zhi_mean} '
                'xy final ${xy_mean} xz final ${xz_mean} yz final ${yz_mean} remap units box',
                'unfix cell_mean',
            ]
        else:
            lines.append(f'run {n_eq}')
        lines.append('unfix integrate')
    lines += [
        'reset_timestep 0',
        integrator(p['ensemble']),
        f'dump trajectory all custom {int(p["trajectory_interval"])} {_TRAJECTORY} id type element xu yu zu',
        f'dump_modify trajectory sort id element {" ".join(type_symbols)} format float %.10g',
        f'print "# {" ".join(_THERMO_COLUMNS)}" file {_THERMO} screen no',
        f'fix thermo_rows all print {int(p["thermo_interval"])} "${{step_}} ${{temp_}} ${{pe_}} ${{vol_}} '
        f'${{press_}}" append {_THERMO} screen no',
        f'run {int(p["n_steps"])}',
    ]
    return '\n'.join(lines) + '\n'


@calcfunction
def lammps_md_inputs(structure: orm.StructureData, potential: orm.Dict, parameters: orm.Dict):
    """The LAMMPS input script and the data file (atom_style charge, the potential's charges) of an MD run."""
    from aiida_lammps.parsers.utils import generate_lammps_structure

    pot = potential.get_dict()
    data, _ = generate_lammps_structure(structure, 'charge', charge_dict=_kind_charges(structure, pot))
    script = lammps_md_script(pot, _type_symbols(structure), parameters.get_dict())
    return {
        'script': orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in'),
        'data': orm.SinglefileData(io.BytesIO(data.encode()), filename=_DATA),
    }


def _read_rows(text: str, name: str) -> np.ndarray:
    rows = np.loadtxt(io.StringIO(text), comments='#', ndmin=2)
    if rows.shape[1] != len(_THERMO_COLUMNS):
        raise ValueError(f'{name}: expected {len(_THERMO_COLUMNS)} columns {_THERMO_COLUMNS}, got {rows.shape[1]}')
    return rows


@calcfunction
def lammps_md_outputs(retrieved: orm.FolderData, structure: orm.StructureData, parameters: orm.Dict):
    """``trajectory`` (TrajectoryData: unwrapped positions in Å, times in ps from the start of the production, cells)
    and ``thermo`` (ArrayData: time_ps, temperature_K, potential_energy_eV, volume_A3, pressure_GPa) from the files
    the LAMMPS run wrote. Positions and cells are rotated back from LAMMPS' lower-triangular frame to that of the
    input structure. ``thermo`` carries the input structure's state (``initial_potential_energy_eV``, ...) as
    attributes."""
    from aiida_lammps.parsers.parse_raw.trajectory import iter_trajectories
    from aiida_lammps.parsers.utils import _transform_cell

    p = validate_lammps_md_parameters(parameters.get_dict())
    dt_ps = float(p['timestep_fs']) / 1000.0
    _, transform = _transform_cell(structure.cell)
    text = retrieved.base.repository.get_object_content(_TRAJECTORY)
    steps, positions, cells, symbols = [], [], [], None
    for block in iter_trajectories(text.splitlines()):
        fields = block.atom_fields
        order = np.argsort(np.asarray(fields['id'], dtype=int))
        xyz = np.array([fields['xu'], fields['yu'], fields['zu']], dtype=float).T[order]
        positions.append(xyz @ transform)
        cells.append(np.asarray(block.cell) @ transform)
        steps.append(block.timestep)
        if symbols is None:
            symbols = [fields['element'][i] for i in order]
    expected = [site.kind_name for site in structure.sites]
    expected = [structure.get_kind(name).symbol for name in expected]
    if symbols != expected:
        raise ValueError('lammps_md_outputs: the dump atoms are not those of the input structure')
    trajectory = orm.TrajectoryData()
    steps = np.asarray(steps, dtype=int)
    trajectory.set_trajectory(symbols, np.asarray(positions), stepids=steps, cells=np.asarray(cells),
                              times=steps * dt_ps)
    rows = _read_rows(retrieved.base.repository.get_object_content(_THERMO), _THERMO)
    thermo = orm.ArrayData()
    thermo.set_array('step', rows[:, 0].astype(int))
    thermo.set_array('time_ps', rows[:, 0] * dt_ps)
    thermo.set_array('temperature_K', rows[:, 1])
    thermo.set_array('potential_energy_eV', rows[:, 2])
    thermo.set_array('volume_A3', rows[:, 3])
    thermo.set_array('pressure_GPa', rows[:, 4] * _BAR_TO_GPA)
    initial = _read_rows(retrieved.base.repository.get_object_content(_INITIAL), _INITIAL)[0]
    thermo.base.attributes.set_many(json_safe({
        'initial_potential_energy_eV': float(initial[2]), 'initial_volume_A3': float(initial[3]),
        'initial_pressure_GPa': float(initial[4]) * _BAR_TO_GPA,
        'units': {'time_ps': 'ps', 'temperature_K': 'K', 'potential_energy_eV': 'eV', 'volume_A3': 'angstrom^3',
                  'pressure_GPa': 'GPa'},
    }))
    return {'trajectory': trajectory, 'thermo': thermo}


def _validate_inputs(inputs, _):
    """Refuse, before LAMMPS runs, a potential that misses a charge or a pair of the structure's species."""
    if 'structure' not in inputs:
        return None  # exposed in a parent that validates with its own structure
    potential = inputs['potential'].get_dict() if 'potential' in inputs else classical_potential()
    problem = lammps_potential_problem(potential, inputs['structure'].get_ase().get_chemical_symbols())
    if problem:
        return problem
    if 'parameters' in inputs:
        try:
            validate_lammps_md_parameters(inputs['parameters'].get_dict())
        except ValueError as exception:
            return str(exception)
    return None


class LammpsMdWorkChain(WorkChain):
    """MD of a structure with a classical Buckingham + Coulomb potential on LAMMPS (aiida-lammps ``lammps.raw``);
    outputs the unwrapped ``trajectory`` and ``thermo`` of the production, as the CPU engine does."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(LammpsRawCalculation, namespace='lammps', exclude=('script', 'files', 'filenames',
                                                                             'settings'),
                           namespace_options={'help': 'The LAMMPS code (aiida-lammps `lammps.raw`) and its options.'})
        spec.inputs['lammps']['metadata']['options']['resources'].required = False
        spec.input('structure', valid_type=orm.StructureData, help='The periodic cell.')
        spec.input('potential', valid_type=orm.Dict, default=lambda: orm.Dict(classical_potential()),
                   help='Classical parameter set (charges, Buckingham pairs, cutoff_A, kspace), see '
                        'aiida_sseff.potentials.classical; default: the Du/Teter Li-La-Zr-O set.')
        spec.input('parameters', valid_type=orm.Dict,
                   help='temperature_K, timestep_fs, n_steps, n_equilibration_steps, trajectory_interval, seed, '
                        'thermostat_time_fs, ensemble, ... (see DEFAULT_LAMMPS_MD).')
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.run_lammps, cls.inspect_lammps, cls.results)
        spec.output('trajectory', valid_type=orm.TrajectoryData, help='Unwrapped positions of the production (Å, ps).')
        spec.output('thermo', valid_type=orm.ArrayData,
                    help='time_ps, temperature_K, potential_energy_eV, volume_A3, pressure_GPa of the production.')
        spec.output('results', valid_type=orm.Dict, help="aiida-lammps' parsed lammps.out (steps per second, ...).")
        spec.exit_code(310, 'ERROR_OUTPUT_UNREADABLE',
                       message='The LAMMPS output files could not be read: {message}')
        spec.exit_code(410, 'ERROR_LAMMPS_FAILED', message='LAMMPS failed: [{status}] {message}')

    def run_lammps(self):
        files = lammps_md_inputs(self.inputs.structure, self.inputs.potential, self.inputs.parameters,
                                 metadata={'call_link_label': 'lammps_inputs'})
        inputs = AttributeDict(self.exposed_inputs(LammpsRawCalculation, namespace='lammps'))
        inputs.script = files['script']
        inputs.files = {'data': files['data']}
        inputs.filenames = orm.Dict({'data': _DATA})
        inputs.settings = orm.Dict({'additional_retrieve_list': [_TRAJECTORY, _THERMO, _INITIAL]})
        metadata = AttributeDict(inputs.get('metadata', {}))
        options = AttributeDict(metadata.get('options', {}))
        options.setdefault('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        metadata.options = options
        metadata.call_link_label = 'lammps'
        inputs.metadata = metadata
        return ToContext(calculation=self.submit(LammpsRawCalculation, **inputs))

    def inspect_lammps(self):
        node = self.ctx.calculation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LAMMPS_FAILED.format(status=node.exit_status, message=node.exit_message)
        self.out('results', node.outputs.results)

    def results(self):
        retrieved = self.ctx.calculation.outputs.retrieved
        missing = sorted(set((_TRAJECTORY, _THERMO, _INITIAL)) - set(retrieved.base.repository.list_object_names()))
        if missing:  # refused before the calcfunction, so that no excepted node is left in the graph
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(message=f'LAMMPS wrote no {", ".join(missing)}')
        try:
            out = lammps_md_outputs(retrieved, self.inputs.structure,
                                    self.inputs.parameters, metadata={'call_link_label': 'lammps_outputs'})
        except (OSError, ValueError, KeyError, FileNotFoundError) as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(message=str(exception))
        self.out('trajectory', out['trajectory'])
        self.out('thermo', out['thermo'])
