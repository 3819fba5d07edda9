"""The restart loop every ``sseff.*.base`` wrapper shares: aiida-core's ``BaseRestartWorkChain`` with its standard
outline and aiida-quantumespresso's report of a handled failure, so each wrapper only adds its handlers."""

from __future__ import annotations

from aiida.engine import BaseRestartWorkChain, while_


class SseffBaseRestartWorkChain(BaseRestartWorkChain):
    """``setup → while should_run_process: (run_process, inspect_process) → results``, as in ``PwBaseWorkChain``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )

    def report_error_handled(self, node, action: str) -> None:
        """What failed, and what is done about it (aiida-quantumespresso's wording)."""
        self.report(f'{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: '
                    f'{node.exit_message}')
        self.report(f'Action taken: {action}')
