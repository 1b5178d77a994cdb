"""``LammpsRawBaseWorkChain``: aiida-lammps' ``lammps.raw`` calculation with the package's walltime policy."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_multiscale.workflows.base import EXIT_OUT_OF_WALLTIME, define_walltime_limit, next_walltime

__all__ = ('PARSER_NAME', 'LammpsRawBaseWorkChain', 'describe_failure', 'last_calculation')

LammpsRawCalculation = CalculationFactory('lammps.raw')

#: The parser of every run (:mod:`aiida_multiscale.parsers.lammps`): aiida-lammps 1.0.2's own ``lammps.raw`` parser
#: raises ``IndexError`` on a run cut short (``scancel``, a time or memory limit), so the calculation would except
#: instead of keeping the scheduler's exit code (110, 120) that a handler can act on; ours keeps it, or gives 352.
PARSER_NAME = 'multiscale.lammps.raw'


class LammpsRawBaseWorkChain(BaseRestartWorkChain):
    """One ``lammps.raw`` run, resubmitted from scratch with more time when the scheduler kills it at its walltime.

    aiida-lammps' ``LammpsBaseWorkChain`` does the same for ``lammps.base`` (its ``handle_out_of_walltime``), which
    needs aiida-lammps' own input format; the MD rung writes its own scripts, so it runs ``lammps.raw`` through this
    chain.  A scheduler kill (exit 120) is the only failure handled: the runs are short minimisations that leave no
    restart file worth reading, so the next run starts from scratch with the time given by the package's walltime
    policy (:func:`~aiida_multiscale.workflows.base.next_walltime`), up to ``max_wallclock_seconds_limit`` (then exit
    320) and ``max_iterations`` runs (then exit 401).  Any other failure ends the chain at once (aiida-core's
    ``ERROR_UNHANDLED_FAILURE``, 402), as the same inputs would fail the same way.
    """

    _process_class = LammpsRawCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            LammpsRawCalculation,
            namespace='lammps',
            namespace_options={
                'help': f'Inputs of the LammpsRawCalculation; its metadata.options.parser_name is always {PARSER_NAME}.'
            },
        )
        define_walltime_limit(spec)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
        spec.expose_outputs(LammpsRawCalculation)

    def setup(self):
        """The inputs of the first run, from the ``lammps`` namespace, with our parser."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(LammpsRawCalculation, 'lammps'))
        metadata = dict(self.ctx.inputs.get('metadata', {}))
        metadata['options'] = {**metadata.get('options', {}), 'parser_name': PARSER_NAME}
        self.ctx.inputs.metadata = metadata

    def report_error_handled(self, calculation, action: str) -> None:
        """Report the failed calculation and what is done about it (as aiida-lammps and aiida-quantumespresso do)."""
        self.report(
            f'{calculation.process_label}<{calculation.pk}> failed with exit status {calculation.exit_status}: '
            f'{calculation.exit_message}'
        )
        self.report(f'Action taken: {action}')

    @process_handler(priority=600, exit_codes=[LammpsRawCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, calculation):
        """Resubmit from scratch with more time, or stop with ``ERROR_OUT_OF_WALLTIME`` at the walltime bound."""
        options = self.ctx.inputs.metadata['options']
        seconds = options.get('max_wallclock_seconds') or calculation.get_option('max_wallclock_seconds')
        if not seconds:
            return None  # not a time limit we set: nothing to raise, an unhandled failure
        name = f'{calculation.process_label}<{calculation.pk}>'
        limit = self.inputs.max_wallclock_seconds_limit.value
        raised = next_walltime(seconds, limit)
        if raised is None:
            self.report_error_handled(calculation, f'none: max_wallclock_seconds {seconds} s is the limit {limit} s')
            exit_code = self.exit_codes.ERROR_OUT_OF_WALLTIME.format(calculation=name, seconds=seconds, limit=limit)
            return ProcessHandlerReport(True, exit_code)
        pause = self.inputs.get('pause_on_max_iterations')
        if self.ctx.iteration >= self.inputs.max_iterations.value and not (pause and pause.value):
            self.report_error_handled(calculation, f'none: max_iterations = {self.ctx.iteration} runs are used up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED)
        options['max_wallclock_seconds'] = raised
        self.report_error_handled(calculation, f'resubmitting from scratch with max_wallclock_seconds {raised} s')
        return ProcessHandlerReport(True)


def last_calculation(node: orm.WorkflowNode) -> orm.CalcJobNode | None:
    """The last calculation a :class:`LammpsRawBaseWorkChain` ran (None before the first one was submitted)."""
    calculations = [child for child in node.called if isinstance(child, orm.CalcJobNode)]
    return max(calculations, key=lambda child: child.ctime) if calculations else None


def describe_failure(node: orm.WorkflowNode) -> tuple[bool, str]:
    """``(out_of_walltime, detail)`` of a failed :class:`LammpsRawBaseWorkChain`, for its caller's exit message.

    ``out_of_walltime`` is True when its last run was still killed at its walltime, both when the walltime reached
    ``max_wallclock_seconds_limit`` (exit 320) and when ``max_iterations`` was used up (exit 401); ``detail`` names the
    calculation and what to raise.
    """
    calculation = last_calculation(node)
    killed = LammpsRawCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status
    if node.exit_status == EXIT_OUT_OF_WALLTIME[0]:
        return True, node.exit_message
    if calculation is not None and calculation.exit_status == killed:
        return True, (
            f'{calculation.process_label}<{calculation.pk}> after {calculation.get_option("max_wallclock_seconds")} s, '
            f'the last of max_iterations = {node.inputs.max_iterations.value} runs: raise max_iterations or the '
            'starting max_wallclock_seconds'
        )
    failed = calculation if calculation is not None and not calculation.is_finished_ok else node
    detail = f'{failed.process_label}<{failed.pk}> exit status {failed.exit_status}'
    return False, detail + (f' ({failed.exit_message})' if failed.exit_message else '')
