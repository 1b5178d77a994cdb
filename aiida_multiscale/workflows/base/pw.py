"""``MultiscalePwBaseWorkChain``: aiida-quantumespresso's ``PwBaseWorkChain`` that also survives a scheduler kill."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ProcessHandlerReport, process_handler
from aiida_quantumespresso.calculations.pw import PwCalculation
from aiida_quantumespresso.common.types import RestartType
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from aiida_multiscale.workflows.base import define_walltime_limit, next_walltime

__all__ = ('MultiscalePwBaseWorkChain', 'remote_charge_density')


def remote_charge_density(remote_folder: orm.RemoteData) -> str | None:
    """The name of the charge-density file in a pw.x working directory's ``out/aiida.save``, or None.

    pw.x writes it at the end of an SCF and when it stops at ``CONTROL.max_seconds``; a restarted run also finds its
    parent's copy there.  A run killed during its first SCF leaves none.
    """
    save = f'{PwCalculation._OUTPUT_SUBFOLDER}{PwCalculation._PREFIX}.save'
    try:
        names = remote_folder.listdir(save)
    except OSError:  # no such folder, or the remote cannot be reached: do not restart from it
        return None
    return next((name for name in ('charge-density.dat', 'charge-density.hdf5') if name in names), None)


class MultiscalePwBaseWorkChain(PwBaseWorkChain):
    """``PwBaseWorkChain`` that also resubmits a job the scheduler killed at its time limit (exit 120).

    aiida-quantumespresso 5.1 already sets ``CONTROL.max_seconds`` to 95 % of ``max_wallclock_seconds`` so that pw.x
    stops cleanly (exit 400) and ``handle_out_of_walltime`` restarts it in full; that is kept as it is.  When pw.x does
    not stop in time (an SCF iteration longer than the 5 % margin, slow I/O, a ``max_seconds`` set too high) the
    scheduler kills the job, its stdout and XML are incomplete and the parser keeps the scheduler's 120, for which
    ``PwBaseWorkChain`` has no handler: it reruns the same inputs once (the same time limit, so the same kill) and
    gives up with 401.  :meth:`handle_scheduler_out_of_walltime` answers it with the package's walltime policy
    (:mod:`aiida_multiscale.workflows.base`): more time up to ``max_wallclock_seconds_limit``, then exit 320.

    Exit status 320 is also the status of ``PwBaseWorkChain``'s ``ERROR_INITIALIZATION_CALCULATION_FAILED``, which
    aiida-quantumespresso 5.1 still declares but no longer returns (it belonged to the removed automatic
    parallelisation), so a 320 of this work chain always means ``ERROR_OUT_OF_WALLTIME``.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_walltime_limit(spec)

    @process_handler(priority=575, exit_codes=[PwCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_scheduler_out_of_walltime(self, calculation):
        """Resubmit with more time (:func:`~aiida_multiscale.workflows.base.next_walltime`), from the charge density.

        ``CONTROL.max_seconds``, when set, is scaled by the same factor (``prepare_process`` sets it only when it is
        absent, so after the first run it would otherwise stay at the old limit).  An SCF restarts from the charge
        density in the killed run's ``out/aiida.save`` (its wavefunction and mixing files may have been cut
        mid-write, the density is only written whole) or else from scratch; other calculation types keep their
        ``parent_folder``.  When the walltime is already at ``max_wallclock_seconds_limit`` the chain stops with
        ``ERROR_OUT_OF_WALLTIME``.
        """
        options = self.ctx.inputs.metadata.options
        seconds = options.get('max_wallclock_seconds') or calculation.get_option('max_wallclock_seconds')
        if not seconds:
            # Not a time limit we set: nothing to raise.  Let PwBaseWorkChain's unhandled-failure logic decide.
            return None
        limit = self.inputs.max_wallclock_seconds_limit.value
        raised = next_walltime(seconds, limit)
        if raised is None:
            self.report_error_handled(calculation, f'max_wallclock_seconds {seconds} s is already the limit {limit} s')
            return ProcessHandlerReport(
                True,
                self.exit_codes.ERROR_OUT_OF_WALLTIME.format(
                    calculation=f'PwCalculation<{calculation.pk}>', seconds=seconds, limit=limit
                ),
            )
        options['max_wallclock_seconds'] = raised
        control = self.ctx.inputs.parameters.setdefault('CONTROL', {})
        if 'max_seconds' in control:
            control['max_seconds'] = control['max_seconds'] * raised / seconds
        action = f'max_wallclock_seconds {seconds} -> {raised}'
        if control.get('calculation', 'scf') == 'scf':
            density = remote_charge_density(calculation.outputs.remote_folder)
            if density:
                self.set_restart_type(RestartType.FROM_CHARGE_DENSITY, calculation.outputs.remote_folder)
                action += f', restarting from the charge density ({density}) the killed run left'
            else:
                self.set_restart_type(RestartType.FROM_SCRATCH)
                action += ', restarting from scratch (the killed run left no charge density)'
        self.report_error_handled(calculation, action)
        return ProcessHandlerReport(True)
