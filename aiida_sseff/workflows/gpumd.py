"""``sseff.gpumd.base``: GPUMD MD that survives its cluster (aiida-quantumespresso's ``PwBaseWorkChain`` style).

- A run stopped by its wall time (exit 400) that left a ``restart.xyz`` and the MSD saved with it
  (``dump_restart``; the CalcJob saves ``msd_step<n>.out`` at the same steps) continues from that file for the
  remaining production steps. The segments' MSDs are combined by their own time origins
  (:func:`aiida_sseff.analysis.gpumd_msd.combine_gpumd_msd`) and ``n_time_origins`` becomes the list of the
  segments' origins, which the diffusion fit takes as it is.
- An unstable run (exit 402) is run again from the start with half the time step (every interval in steps doubled,
  so the physical times stay), once; then ``ERROR_MD_UNSTABLE_AT_HALF_TIME_STEP``.

What a restart costs: GPUMD's ring buffer starts empty in each segment, so a segment of ``n_s`` samples gives
``n_s - Nc + 1`` origins and every restart loses ``Nc - 1`` of them (and the MSD of lags that span the restart).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ProcessHandlerReport, calcfunction, process_handler

from aiida_sseff.calculations.gpumd import GpumdCalculation
from aiida_sseff.workflows.restart import SseffBaseRestartWorkChain

__all__ = ['GpumdBaseWorkChain', 'combine_msd_segments', 'halved_time_step', 'restart_interval']


def restart_interval(parameters: dict, fraction: float) -> int:
    """Steps between ``restart.xyz`` dumps: ``fraction`` of the production run, a multiple of the MSD sample
    interval (msd.cu saves the MSD only at sampled steps), and at least Nc samples (before that GPUMD has no MSD
    to save, so a restart there would keep nothing)."""
    cmsd = parameters.get('compute_msd') or {}
    sample = int(cmsd.get('sample_interval', 10))
    n_correlation = int(cmsd.get('n_correlation') or 1)
    wanted = max(int(fraction * int(parameters['production_steps'])), n_correlation * sample)
    return int(np.ceil(wanted / sample)) * sample


#: parameters counted in time steps, doubled when the time step is halved so that physical times stay the same
_STEP_KEYS = ('production_steps', 'equilibration_steps', 'dump_thermo', 'dump_restart', 'temperature_coupling',
              'pressure_coupling')


def halved_time_step(parameters: dict) -> dict:
    """The same run with half the time step: every interval in steps doubled (MSD sampling, dumps, couplings)."""
    result = dict(parameters)
    result['time_step_fs'] = float(parameters.get('time_step_fs', 1.0)) / 2
    for key in _STEP_KEYS:
        if result.get(key) is not None:
            result[key] = 2 * result[key]
    if result.get('compute_msd'):
        cmsd = dict(result['compute_msd'])
        for key in ('sample_interval', 'save_every'):
            if cmsd.get(key) is not None:
                cmsd[key] = 2 * cmsd[key]
        result['compute_msd'] = cmsd
    if result.get('dump'):
        result['dump'] = {**result['dump'], 'interval': 2 * result['dump']['interval']}
    return result


@calcfunction
def combine_msd_segments(**segments: orm.ArrayData) -> orm.ArrayData:
    """The MSD of one trajectory run in segments (restarts), each segment weighted by its own time origins.

    Inputs are the segments' ``msd`` nodes (keys sort in run order: ``segment_00``, ...), each with the
    ``n_time_origins`` attribute. The output has the same arrays (``time``, ``msd``, ``sdc`` as GPUMD defines it,
    ½ ΔMSD/Δt) and ``n_time_origins`` = the list of the segments' origins (what the diffusion fit needs).
    """
    from aiida_sseff.analysis.gpumd_msd import combine_gpumd_msd

    nodes = [segments[key] for key in sorted(segments)]
    time = nodes[0].get_array('time')
    for key, node in zip(sorted(segments), nodes, strict=True):
        if node.get_array('time').shape != time.shape or not np.allclose(node.get_array('time'), time):
            raise ValueError(f'combine_msd_segments: {key} has other lags than the first segment')
    origins = [node.base.attributes.get('n_time_origins') for node in nodes]
    if any(o is None for o in origins):
        raise ValueError('combine_msd_segments: every segment needs its `n_time_origins` attribute')
    msd, per_segment = combine_gpumd_msd([(node.get_array('msd'), int(o)) for node, o in zip(nodes, origins,
                                                                                               strict=True)])
    dt = float(time[1] - time[0]) if len(time) > 1 else 1.0
    sdc = np.zeros_like(msd)
    sdc[:, 1:] = 0.5 * np.diff(msd, axis=1) / dt
    node = orm.ArrayData()
    node.set_array('time', time)
    node.set_array('msd', msd)
    node.set_array('sdc', sdc)
    attributes = {key: value for key, value in nodes[-1].base.attributes.all.items()
                  if key not in ('array|time', 'array|msd', 'array|sdc', 'steps_completed')
                  and not key.startswith('array|')}
    attributes.update({'n_time_origins': [int(o) for o in per_segment], 'n_segments': len(nodes),
                       'n_samples': int(sum(int(n.base.attributes.get('n_samples', 0)) for n in nodes))})
    node.base.attributes.set_many(attributes)
    return node


class GpumdBaseWorkChain(SseffBaseRestartWorkChain):
    """Run a :class:`~aiida_sseff.calculations.gpumd.GpumdCalculation`, continuing after a wall-time stop from
    GPUMD's ``restart.xyz`` and halving the time step once for an unstable run."""

    _process_class = GpumdCalculation

    defaults = AttributeDict({
        'restart_interval_fraction': 0.1,  # a restart.xyz every 10 % of the production run
        'time_step_factor': 0.5,
    })

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(GpumdCalculation, namespace='gpumd')
        spec.expose_outputs(GpumdCalculation)
        spec.exit_code(310, 'ERROR_NO_RESTART_FILE',
                       message='GPUMD stopped before its first restart file with a saved MSD (Nc samples into the '
                               'production run): raise the wall time (metadata.options.max_wallclock_seconds).')
        spec.exit_code(320, 'ERROR_MD_UNSTABLE_AT_HALF_TIME_STEP',
                       message='The MD was unstable also with half the time step: check the model and the structure '
                               '(atoms too close, a model outside its training data).')

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(GpumdCalculation, 'gpumd'))
        parameters = self.ctx.inputs.parameters.get_dict()
        self.ctx.production_steps = int(parameters['production_steps'])
        if parameters.get('compute_msd') and not parameters.get('dump_restart'):
            parameters['dump_restart'] = restart_interval(parameters, self.defaults.restart_interval_fraction)
            self.ctx.inputs.parameters = orm.Dict(parameters)
        self.ctx.initial_restart = self.ctx.inputs.get('restart')  # a start from a given state (e.g. equilibrated)
        self.ctx.segments = []  # the msd nodes of the segments stopped early, in order
        self.ctx.steps_done = 0
        self.ctx.time_step_halved = False

    def results(self):
        """The last run's outputs; after restarts ``msd`` is the segments' combination, and ``trajectory`` (the last
        segment's dump only, not the whole run) is left out."""
        node = self.ctx.children[self.ctx.iteration - 1]
        if not (self.ctx.segments and 'msd' in node.outputs):
            return super().results()
        segments = {f'segment_{i:02d}': msd for i, msd in enumerate([*self.ctx.segments, node.outputs.msd])}
        combined = combine_msd_segments(**segments, metadata={'call_link_label': 'combine_msd_segments'})
        outputs = self.exposed_outputs(node, GpumdCalculation)
        outputs.pop('trajectory', None)
        self.out_many({**outputs, 'msd': combined})
        self.report(f'work chain completed after {self.ctx.iteration} iterations; the MSD of {len(segments)} '
                    f'segments combined, time origins {combined.base.attributes.get("n_time_origins")}')
        return None

    @process_handler(priority=600, exit_codes=[GpumdCalculation.exit_codes.ERROR_MD_INCOMPLETE])
    def handle_walltime(self, node):
        """GPUMD stopped early (wall time): continue from its restart.xyz for the remaining production steps."""
        if 'restart' not in node.outputs or 'msd' not in node.outputs:
            self.report_error_handled(node, 'no restart.xyz with a saved MSD: cannot continue')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_RESTART_FILE)
        msd = node.outputs.msd
        done = int(msd.base.attributes.get('steps_completed'))
        self.ctx.segments.append(msd)
        self.ctx.steps_done += done
        parameters = node.inputs.parameters.get_dict()
        cmsd = parameters['compute_msd']
        minimum = int(cmsd['n_correlation']) * int(cmsd['sample_interval'])
        # a segment shorter than Nc samples would give no MSD at all: the last one runs at least that long
        remaining = max(self.ctx.production_steps - self.ctx.steps_done, minimum)
        parameters.update({'production_steps': remaining, 'equilibration_steps': 0})
        if parameters.get('dump_restart'):
            parameters['dump_restart'] = min(int(parameters['dump_restart']), remaining - remaining % int(
                cmsd['sample_interval'])) or int(cmsd['sample_interval'])
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.ctx.inputs.restart = node.outputs.restart
        self.report_error_handled(node, f'continuing from restart.xyz after {done} production steps; '
                                        f'{remaining} steps remain')
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[GpumdCalculation.exit_codes.ERROR_MD_UNSTABLE])
    def handle_unstable(self, node):
        """The MD blew up: run again from the start (the initial state given, if any) with half the time step, once."""
        if self.ctx.time_step_halved:
            self.report_error_handled(node, 'unstable again with half the time step')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_MD_UNSTABLE_AT_HALF_TIME_STEP)
        parameters = halved_time_step(self.ctx.inputs.parameters.get_dict())
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.ctx.production_steps = int(parameters['production_steps'])
        self.ctx.inputs.pop('restart', None)
        if self.ctx.initial_restart is not None:
            self.ctx.inputs.restart = self.ctx.initial_restart
        self.ctx.segments, self.ctx.steps_done = [], 0
        self.ctx.time_step_halved = True
        self.report_error_handled(node, f'restarting from the start with the time step halved to '
                                        f'{parameters["time_step_fs"]:g} fs')
        return ProcessHandlerReport(True)
