"""``sseff.engine.md.base``: engine MD (:class:`~aiida_sseff.calculations.engine.EngineMdCalculation`) that survives
its cluster.

- Out of wall time (the engine stopped cleanly at a checkpoint), or killed hard after it wrote one: continue from the
  checkpoint for the remaining steps; the trajectory is the same as that of a run that never stopped.
- Unstable (NaN, runaway temperature) or atoms too close: start again once with half the time step, the step counts
  doubled so that the run length and the sampling intervals stay the same in *time*; then a named exit code.

The outputs are those of ``EngineMdCalculation`` for the whole run: the trajectory, thermo and snapshots of all
segments joined by :func:`join_md_segments` (a calcfunction, so the join is in the provenance graph).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ProcessHandlerReport, calcfunction, process_handler

from aiida_sseff.calculations.engine import EngineMdCalculation
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.engines.md import validate_md_parameters
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.restart import SseffBaseRestartWorkChain

__all__ = ['STEP_COUNT_PARAMETERS', 'EngineMdBaseWorkChain', 'join_md_segments']

#: MD parameters counted in steps: multiplied by the time-step divisor so that they stay the same in time.
STEP_COUNT_PARAMETERS = ('n_steps', 'n_equilibration_steps', 'thermo_interval', 'trajectory_interval',
                         'snapshot_interval', 'checkpoint_interval')

#: results keys that are sums over the segments
_SUMMED_RESULTS = ('wall_time_s', 'n_checkpoints', 'checkpoint_wall_time_s')


def _keep_until(steps: np.ndarray, cut: int | None) -> np.ndarray:
    """Mask of the rows of a segment to keep: up to and including the step the next segment continued from (a run
    killed after its checkpoint may have recorded rows beyond it, which the next segment recorded again)."""
    return np.ones(len(steps), dtype=bool) if cut is None else steps <= cut


@calcfunction
def join_md_segments(**segments):
    """Join the outputs of consecutive segments of one MD run (inputs ``trajectory_00``, ``thermo_00``,
    ``results_00``, optional ``snapshots_00``, ...) into one ``trajectory``, ``thermo``, ``results`` and
    ``snapshots``, as if the run had never stopped. A segment that ended during the equilibration has no trajectory.
    """
    indices = sorted({int(key.rsplit('_', 1)[1]) for key in segments})
    results = [segments[f'results_{i:02d}'].get_dict() for i in indices]
    # the production step each later segment resumed from; rows of the segment before it beyond that step are dropped
    cuts = [results[k + 1].get('restart_step') for k in range(len(indices) - 1)] + [None]

    arrays: dict[str, list] = {}
    thermo: dict[str, list] = {}
    snapshots = []
    symbols, template = None, None
    for k, i in enumerate(indices):
        trajectory = segments.get(f'trajectory_{i:02d}')
        if trajectory is not None:
            template = trajectory
            symbols = trajectory.symbols
            keep = _keep_until(trajectory.get_stepids(), cuts[k])
            for name in trajectory.get_arraynames():
                arrays.setdefault(name, []).append(trajectory.get_array(name)[keep])
        table = segments.get(f'thermo_{i:02d}')
        if table is not None:
            keep = _keep_until(table.get_array('step'), cuts[k])
            for name in table.get_arraynames():
                thermo.setdefault(name, []).append(table.get_array(name)[keep])
        dataset = segments.get(f'snapshots_{i:02d}')
        if dataset is not None:
            snapshots += [atoms for atoms in dataset.get_ase()
                          if cuts[k] is None or atoms.info.get('md_step', 0) <= cuts[k]]

    outputs = {}
    joined = {name: np.concatenate(parts) for name, parts in arrays.items()}
    if template is not None:
        trajectory = orm.TrajectoryData()
        trajectory.set_trajectory(symbols=symbols, positions=joined['positions'], stepids=joined['steps'],
                                  cells=joined.get('cells'), times=joined.get('times'),
                                  velocities=joined.get('velocities'))
        for name, values in joined.items():
            if name not in ('positions', 'steps', 'cells', 'times', 'velocities'):
                trajectory.set_array(name, values)
        for key in ('positions_unwrapped', 'units'):
            if key in template.base.attributes.keys():
                trajectory.base.attributes.set(key, template.base.attributes.get(key))
        outputs['trajectory'] = trajectory
    if thermo:
        table = orm.ArrayData()
        for name, parts in thermo.items():
            table.set_array(name, np.concatenate(parts))
        outputs['thermo'] = table
    if snapshots:
        outputs['snapshots'] = LabelledDataset(snapshots, require_labels=False)

    summary = {key: value for key, value in results[-1].items() if not key.startswith('restart_')}
    for key in _SUMMED_RESULTS:
        summary[key] = sum(float(r.get(key) or 0) for r in results)
    summary['equilibrated_volume_A3'] = next((r['equilibrated_volume_A3'] for r in results
                                              if r.get('equilibrated_volume_A3') is not None), None)
    summary['n_segments'] = len(results)
    summary['n_frames'] = int(len(joined['steps'])) if 'steps' in joined else 0
    summary['n_snapshots'] = len(snapshots)
    if thermo:
        temperature = np.concatenate(thermo['temperature_K'])
        pressure = np.concatenate(thermo['pressure_GPa'])
        summary.update({
            'mean_temperature_K': float(temperature.mean()), 'std_temperature_K': float(temperature.std()),
            'mean_volume_A3': float(np.concatenate(thermo['volume_A3']).mean()),
            'mean_pressure_GPa': float(np.nanmean(pressure)) if np.isfinite(pressure).any() else None,
        })
    summary.pop('speed_atom_step_per_s', None)  # a per-segment number; the segments' own results keep it
    outputs['results'] = orm.Dict(json_safe(summary))
    return outputs


class EngineMdBaseWorkChain(SseffBaseRestartWorkChain):
    """Run an :class:`EngineMdCalculation`, continuing it from its checkpoint when it runs out of wall time and
    restarting it once with half the time step when it becomes unstable."""

    _process_class = EngineMdCalculation

    defaults = AttributeDict({
        'timestep_divisor': 2,  # unstable or atoms too close: the time step is divided by this, step counts multiplied
        'max_timestep_reductions': 1,  # ... this many times; then the work chain stops with a named exit code
    })

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(EngineMdCalculation, namespace='md')
        spec.expose_outputs(EngineMdCalculation)
        spec.exit_code(410, 'ERROR_MD_UNSTABLE',
                       message='The MD was still unstable after a restart with the time step reduced to '
                               '{timestep_fs} fs ({message}): the model is likely unphysical at these conditions.')
        spec.exit_code(411, 'ERROR_ATOMS_TOO_CLOSE',
                       message='Atoms still came too close after a restart with the time step reduced to '
                               '{timestep_fs} fs ({message}): the model lets atoms collapse (no short-range '
                               'repulsion?), or the structure is wrong.')
        spec.exit_code(413, 'ERROR_ENGINE_REFUSED',
                       message='The engine refused or failed ([{status}] {message}): a restart would fail the same way.')
        spec.exit_code(412, 'ERROR_NO_CHECKPOINT',
                       message='The run stopped ({message}) before it wrote a checkpoint, so it cannot be continued: '
                               'give it more wall time or a shorter `checkpoint_interval`.')

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(EngineMdCalculation, 'md'))
        self.ctx.segments = []  # the stopped runs whose trajectories the next run continues
        self.ctx.timestep_reductions = 0

    def _continue_from_checkpoint(self, node, why: str):
        if 'checkpoint' not in node.outputs:
            self.report_error_handled(node, 'no checkpoint to continue from: giving up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_CHECKPOINT.format(
                message=f'{why}: {node.exit_message}'))
        self.ctx.segments.append(node)
        self.ctx.inputs.checkpoint = node.outputs.checkpoint
        results = node.outputs.results.get_dict() if 'results' in node.outputs else {}
        where = (f"production step {results['step']} of {results['n_steps']}" if results.get('phase') == 'production'
                 else 'its last checkpoint')
        self.report_error_handled(node, f'continuing from the checkpoint at {where}')
        return ProcessHandlerReport(True)

    @process_handler(priority=600, exit_codes=[EngineMdCalculation.exit_codes.ERROR_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """The engine stopped for its wall time at a checkpoint: continue from it for the remaining steps."""
        return self._continue_from_checkpoint(node, 'out of wall time')

    @process_handler(priority=590, exit_codes=[EngineMdCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
                                               EngineMdCalculation.exit_codes.ERROR_MISSING_REPORT])
    def handle_killed(self, node):
        """The scheduler (or anything else) killed the engine: continue from the last checkpoint it wrote."""
        return self._continue_from_checkpoint(node, 'killed')

    def _halve_timestep(self, node, exit_code):
        parameters = self.ctx.inputs.parameters.get_dict()
        full = validate_md_parameters(parameters)
        if self.ctx.timestep_reductions >= self.defaults.max_timestep_reductions:
            self.report_error_handled(node, 'the time step was reduced already: giving up')
            return ProcessHandlerReport(True, exit_code.format(timestep_fs=f"{full['timestep_fs']:g}",
                                                               message=node.exit_message))
        divisor = self.defaults.timestep_divisor
        parameters['timestep_fs'] = full['timestep_fs'] / divisor
        for key in STEP_COUNT_PARAMETERS:
            parameters[key] = int(full[key]) * divisor
        self.ctx.inputs.parameters = orm.Dict(parameters)
        # the failed trajectory is not continued: the run starts again from the structure
        self.ctx.inputs.pop('checkpoint', None)
        self.ctx.segments = []
        self.ctx.timestep_reductions += 1
        self.report_error_handled(node, f"restarting from the structure with timestep_fs = {parameters['timestep_fs']:g} "
                                        f'and {divisor}× the step counts (the same times)')
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[EngineMdCalculation.exit_codes.ERROR_MD_UNSTABLE])
    def handle_unstable(self, node):
        """NaN positions or a runaway temperature: once more with half the time step, then ``ERROR_MD_UNSTABLE``."""
        return self._halve_timestep(node, self.exit_codes.ERROR_MD_UNSTABLE)

    @process_handler(priority=490, exit_codes=[EngineMdCalculation.exit_codes.ERROR_ATOMS_TOO_CLOSE])
    def handle_atoms_too_close(self, node):
        """Two atoms closer than ``min_distance_A``: once more with half the time step, then
        ``ERROR_ATOMS_TOO_CLOSE``."""
        if 'at step 0 ' in (node.exit_message or ''):
            # the structure given was already too dense: a shorter time step cannot help
            self.report_error_handled(node, 'the input structure itself has atoms too close: giving up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_ATOMS_TOO_CLOSE.format(
                timestep_fs=f"{validate_md_parameters(self.ctx.inputs.parameters.get_dict())['timestep_fs']:g}",
                message=node.exit_message))
        return self._halve_timestep(node, self.exit_codes.ERROR_ATOMS_TOO_CLOSE)

    @process_handler(priority=100, exit_codes=[EngineMdCalculation.exit_codes.ERROR_INVALID_INPUT,
                                               EngineMdCalculation.exit_codes.ERROR_UNKNOWN_ELEMENT,
                                               EngineMdCalculation.exit_codes.ERROR_ENGINE_EXCEPTION])
    def handle_refused(self, node):
        """Input the engine refuses, an element the model does not know, an exception: no restart can help, so stop
        at once with the engine's own message (aiida-core's unhandled-failure path would rerun it and lose it)."""
        self.report_error_handled(node, 'not recoverable by a restart: giving up')
        return ProcessHandlerReport(True, self.exit_codes.ERROR_ENGINE_REFUSED.format(status=node.exit_status,
                                                                                      message=node.exit_message))

    def get_outputs(self, node):
        """The last run's outputs; with several segments, their trajectory, thermo, snapshots and results joined."""
        outputs = dict(self.exposed_outputs(node, EngineMdCalculation))
        segments = self.ctx.segments + [node]
        if len(segments) == 1:
            return outputs
        inputs = {}
        for index, segment in enumerate(segments):
            for name in ('trajectory', 'thermo', 'snapshots', 'results'):
                if name in segment.outputs:
                    inputs[f'{name}_{index:02d}'] = segment.outputs[name]
        joined = join_md_segments(**inputs, metadata={'call_link_label': 'join_segments'})
        for name in ('trajectory', 'thermo', 'snapshots'):
            outputs.pop(name, None)
        outputs.update(joined)
        self.report(f'joined {len(segments)} segments into one trajectory')
        return outputs
