"""``sseff.mace.train.base`` (:class:`MaceTrainBaseWorkChain`): one ``sseff.mace.train`` CalcJob with restarts.

Out of wall time (the scheduler says so, or the log shows that mace-torch stopped before ``Training complete``),
the next CalcJob gets the ``remote_folder`` of the last one as ``parent_folder``: mace-torch's ``checkpoints/`` are
copied in and ``--restart_latest`` continues after the last saved epoch, up to the same ``max_num_epochs`` (mace
saves an epoch only when the validation loss improves and restarts at that epoch, so training resumes from the
best epoch so far). A NaN
validation loss is retried once with a ten times lower learning rate. Protocols: ``protocols/mace.yaml``.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ProcessHandlerReport, process_handler

from aiida_sseff.calculations.mace import MaceTrainCalculation
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.workflows.restart import SseffBaseRestartWorkChain

__all__ = ['MaceTrainBaseWorkChain']


class MaceTrainBaseWorkChain(ProtocolMixin, SseffBaseRestartWorkChain):
    """One MACE training (``sseff.mace.train``) that continues from its checkpoints when it runs out of time."""

    _process_class = MaceTrainCalculation
    _protocol_file = 'mace.yaml'
    _protocol_open_keys = ('mace.parameters',)

    defaults = AttributeDict({
        'learning_rate_factor': 0.1,  # NaN loss: retry once with the learning rate scaled by this
        'max_learning_rate_reductions': 1,
        'default_learning_rate': 0.01,  # mace-torch's default `lr` (mace/tools/arg_parser.py)
    })

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MaceTrainCalculation, namespace='mace')
        spec.expose_outputs(MaceTrainCalculation)
        spec.exit_code(410, 'ERROR_LOSS_NAN',
                       message='The training diverged (NaN validation loss) also with a lower learning rate; check '
                               'the dataset for outliers.')
        spec.exit_code(412, 'ERROR_CANNOT_CONTINUE',
                       message='The training ran out of time and cannot be continued: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, train, variant: str, protocol: str | None = None,
                                  overrides: dict | None = None, options: dict | None = None, **datasets):
        """A ready builder: ``code`` (the ``aiida-sseff-mace`` wrapper), the training set, the variant name, and
        optionally ``validation=``/``test=`` datasets; protocol ``fast``/``balanced``/``stringent``."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.mace.code = code
        builder.mace.train = train
        for key in ('validation', 'test'):
            if datasets.get(key) is not None:
                builder.mace[key] = datasets[key]
        builder.mace.variant = orm.Str(variant)
        builder.mace.parameters = orm.Dict(inputs['mace']['parameters'])
        builder.mace.seed = orm.Int(inputs['mace']['seed'])
        builder.mace.metadata.options = {**inputs['mace']['options'], **(options or {})}
        builder.max_iterations = orm.Int(inputs['max_iterations'])
        return builder

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(MaceTrainCalculation, 'mace'))
        self.ctx.learning_rate_reductions = 0

    @process_handler(priority=500, exit_codes=[MaceTrainCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
                                               MaceTrainCalculation.exit_codes.ERROR_TRAINING_INCOMPLETE])
    def handle_out_of_walltime(self, node):
        """Out of wall time: continue from the checkpoints mace-torch left in the remote folder."""
        if 'training_log' not in node.outputs:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_CANNOT_CONTINUE.format(
                message='mace-torch evaluated no epoch before it stopped, so it saved no checkpoint'))
        if 'remote_folder' not in node.outputs:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_CANNOT_CONTINUE.format(
                message='the CalcJob left no remote folder'))
        self.ctx.inputs.parent_folder = node.outputs.remote_folder
        epochs = node.outputs.training_log.get_array('epoch')
        self.report_error_handled(node, f'continuing from the checkpoints after epoch {int(epochs.max())}')
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[MaceTrainCalculation.exit_codes.ERROR_LOSS_NAN])
    def handle_loss_nan(self, node):
        """NaN validation loss: retry once from scratch with a ten times lower learning rate, then stop."""
        if self.ctx.learning_rate_reductions >= self.defaults.max_learning_rate_reductions:
            self.report_error_handled(node, 'NaN loss again: giving up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_LOSS_NAN)
        parameters = self.ctx.inputs.parameters.get_dict()
        parameters['lr'] = float(parameters.get('lr', self.defaults.default_learning_rate)) \
            * self.defaults.learning_rate_factor
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.ctx.inputs.pop('parent_folder', None)  # the diverged checkpoints are of no use
        self.ctx.learning_rate_reductions += 1
        self.report_error_handled(node, f'NaN loss: training again with lr = {parameters["lr"]:g}')
        return ProcessHandlerReport(True)
