"""``MooseBaseWorkChain``: a MooseCalculation with the restarts every MOOSE rung needs (walltime, recovery, solver).

The rungs (phase field, FEM) build the input and run this chain, as aiida-quantumespresso's ``PwRelaxWorkChain`` runs
``PwBaseWorkChain``; every failure of the calculation is answered here:

* killed by the scheduler at its walltime (exit 120): continue from the newest checkpoint (``moose --recover``) with
  the same walltime, since such a restart makes progress; without a new checkpoint, run again (recovering from the old
  one, or from the start) with :func:`~aiida_multiscale.workflows.base.next_walltime`, never above
  ``max_wallclock_seconds_limit`` (then exit 320);
* a recovered run that fails (its checkpoint or the outputs it inherited were cut short by the kill): run the input
  again from its start, without ``--recover``, with more time (bounded like the walltime: exit 321);
* not converged (400, 401): run the input again from its start with the time step cut by :data:`TIME_STEP_CUT`,
  through a command-line override, so that any transient MOOSE input can be restarted without knowing its model;
* anything else is final (exit 310), naming the calculation's own exit code.

Every resubmission counts against ``max_iterations``.
"""

from __future__ import annotations

import dataclasses
import re

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ExitCode, ProcessHandlerReport, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_multiscale.workflows.base import (
    EXIT_OUT_OF_WALLTIME,
    define_walltime_limit,
    next_walltime,
    warn_deprecated_input,
)

__all__ = (
    'TIME_STEP_CUT',
    'MooseBaseWorkChain',
    'WalltimeRestart',
    'default_checkpoint_interval',
    'define_walltime_restarts',
    'max_iterations_with_walltime_restarts',
    'rung_exit_code',
    'set_moose_code',
    'walltime_restart',
    'warn_walltime_restarts',
)

MooseCalculation = CalculationFactory('multiscale.moose')

#: Factor on the time step of a run that did not converge.
TIME_STEP_CUT = 0.1
#: Exit codes of a MooseCalculation after which a run that was recovered from a checkpoint is run again from its start.
_RECOVERY_FAILURES = (
    'ERROR_MOOSE_INPUT',
    'ERROR_ABNORMAL_TERMINATION',
    'ERROR_MISSING_CSV',
    'ERROR_EMPTY_CSV',
    'ERROR_MISSING_EXODUS',
)
#: ``name = number`` in a HIT input (the first one wins), for the time step of a run that did not converge.
_HIT_NUMBER = r'^\s*{name}\s*=\s*([-+0-9.eE]+)\s*$'


def default_checkpoint_interval(max_wallclock_seconds: float | None) -> float:
    """A quarter of the walltime, between 10 s and 30 min: a kill loses at most about a quarter of a run."""
    if not max_wallclock_seconds:
        return 1800.0
    return float(min(1800.0, max(10.0, max_wallclock_seconds / 4)))


@dataclasses.dataclass(frozen=True)
class WalltimeRestart:
    """What to do after a walltime kill.

    :param action: ``'recover'`` (continue from ``checkpoint``), ``'rerun'`` (from the start) or ``'give_up'``.
    :param max_wallclock_seconds: the walltime of the next run (``None`` when giving up).
    :param checkpoint: the parser's ``checkpoint`` dict (time_step, time, new) recovered from, or ``None``.
    :param message: one sentence for the report or the exit message: what was done and why.
    """

    action: str
    max_wallclock_seconds: int | None
    checkpoint: dict | None
    message: str


def walltime_restart(node: orm.CalcJobNode, *, limit: int, can_recover: bool = True) -> WalltimeRestart:
    """Decide how to resubmit ``node``, a MooseCalculation killed at its walltime (see the module docstring).

    A plain function of the killed node, so that the decision can be tested without running anything.

    :param limit: the largest walltime (s) a resubmission may ask for (the ``max_wallclock_seconds_limit`` input).
    :param can_recover: False for a run without checkpoints (a steady solve): only a rerun with more time helps.
    """
    walltime = node.get_option('max_wallclock_seconds')
    parameters = node.outputs.output_parameters.get_dict() if 'output_parameters' in node.outputs else {}
    checkpoint = parameters.get('checkpoint') if can_recover and 'remote_folder' in node.outputs else None
    if checkpoint and checkpoint.get('new'):
        where = f'time step {checkpoint["time_step"]} (t = {checkpoint.get("time")})'
        return WalltimeRestart(
            'recover', walltime, checkpoint, f'recovering from its checkpoint at {where} with the same walltime'
        )
    if walltime is None:
        return WalltimeRestart(
            'give_up',
            None,
            None,
            'it had no max_wallclock_seconds (the queue default applies), so there is no walltime to raise: '
            'set metadata.options.max_wallclock_seconds',
        )
    longer = next_walltime(walltime, limit)
    if longer is None:
        return WalltimeRestart(
            'give_up',
            None,
            None,
            f'its walltime {walltime} s is already at max_wallclock_seconds_limit = {limit} s, and it '
            + ('made no new checkpoint' if checkpoint else 'wrote no checkpoint'),
        )
    if checkpoint:
        where = f'time step {checkpoint["time_step"]} (t = {checkpoint.get("time")})'
        return WalltimeRestart(
            'recover',
            longer,
            checkpoint,
            f'it wrote no new checkpoint: recovering again from {where} with max_wallclock_seconds {walltime} -> '
            f'{longer} s',
        )
    return WalltimeRestart(
        'rerun',
        longer,
        None,
        f'no checkpoint to continue from: running again from the start with max_wallclock_seconds {walltime} -> '
        f'{longer} s',
    )


def _input_text(node: orm.CalcJobNode) -> str:
    source = node.inputs.input_file
    return source.value if isinstance(source, orm.Str) else source.get_content()


def _input_number(node: orm.CalcJobNode, name: str) -> float | None:
    """The first ``name = number`` of the MOOSE input of ``node`` (None if there is none or it is not a number)."""
    match = re.search(_HIT_NUMBER.format(name=re.escape(name)), _input_text(node), re.MULTILINE)
    return float(match.group(1)) if match else None


def _override(cmdline: list[str], key: str, value: float) -> list[str]:
    """``cmdline`` with the HIT override ``key=value`` replacing any earlier one of ``key``."""
    return [argument for argument in cmdline if not argument.startswith(f'{key}=')] + [f'{key}={value!r}']


def rung_exit_code(exit_codes, node: orm.WorkflowNode, **context) -> ExitCode:
    """The exit code with which a rung ends when its MooseBaseWorkChain ``node`` failed.

    The walltime and recovery failures keep their number and label (320, 321) in the rung, so that one kind of failure
    has one exit code across rungs; anything else is the rung's ERROR_MOOSE_FAILED.  ``exit_codes`` are the rung's,
    ``context`` fills in the rest of its message (e.g. the cycle).
    """
    for label in ('ERROR_OUT_OF_WALLTIME', 'ERROR_RECOVERY_FAILED'):
        if node.exit_status == getattr(MooseBaseWorkChain.exit_codes, label).status and label in exit_codes:
            return exit_codes[label].format(message=node.exit_message, **context)
    return exit_codes.ERROR_MOOSE_FAILED.format(
        pk=node.pk, status=node.exit_status, message=node.exit_message or '', **context
    )


def set_moose_code(builder, code, kind: str, inputs: dict, options: dict | None) -> None:
    """The ``moose`` namespace of a rung's builder from its protocol ``inputs``: code, options and threads.

    One place for the rungs that run a single MooseBaseWorkChain with the protocol's ``threads`` (FEM, crystal
    plasticity), so that they resolve their options alike: ``options`` over the protocol's ``options``, checked by
    :func:`aiida_multiscale.resources.resolve_options` for ``kind`` with the threads; ``threads`` set only when the
    protocol gives them (the calculation's default is one).
    """
    from aiida_multiscale.resources import resolve_options

    builder.moose.code = code
    threads = inputs.get('threads') or 1
    builder.moose.metadata.options = resolve_options(kind, code, inputs.get('options'), options, threads)
    if inputs.get('threads'):
        builder.moose.threads = orm.Int(inputs['threads'])


# ------------------------------------------------------------------ the deprecated walltime_restarts of the rungs
def _validate_walltime_restarts(node, _):
    if node is not None and not 0 <= node.value <= 100:
        return f'walltime_restarts = {node.value} must be between 0 and 100'


def max_iterations_with_walltime_restarts(inputs) -> int:
    """``max_iterations``, raised to ``walltime_restarts + 1`` when the deprecated ``walltime_restarts`` is given.

    ``walltime_restarts`` bounded the walltime resubmissions on their own; ``max_iterations`` now counts every run of
    the MooseBaseWorkChain, so that many resubmissions need at least that many runs after the first.
    """
    iterations = inputs.max_iterations.value
    if 'walltime_restarts' in inputs:
        iterations = max(iterations, inputs.walltime_restarts.value + 1)
    return iterations


def warn_walltime_restarts(workchain) -> None:
    """The deprecation warning (and report) for ``walltime_restarts``, naming what replaced it."""
    if 'walltime_restarts' in workchain.inputs:
        warn_deprecated_input(
            workchain,
            'walltime_restarts',
            'max_iterations, which counts every resubmission (the walltime bound is `max_wallclock_seconds_limit`); '
            'it is taken as max_iterations >= walltime_restarts + 1',
        )


def define_walltime_restarts(spec) -> None:
    """The deprecated ``walltime_restarts`` input of the MOOSE rungs (accepted, mapped onto ``max_iterations``)."""
    spec.input(
        'walltime_restarts',
        valid_type=orm.Int,
        required=False,
        validator=_validate_walltime_restarts,
        help='Deprecated: use max_iterations, which counts every run (walltime resubmissions included). If given, '
        'max_iterations is raised to at least walltime_restarts + 1.',
    )


class MooseBaseWorkChain(BaseRestartWorkChain):
    """Run a MooseCalculation; restart it after a walltime kill, a failed recovery or a solve that did not converge."""

    _process_class = MooseCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            MooseCalculation,
            namespace='moose',
            # The checkpoints follow the walltime (checkpoint_interval below); recovering from them is this chain's job.
            exclude=('checkpoint_interval', 'parent_folder', 'recover'),
            namespace_options={'help': 'Inputs of the MooseCalculation: code, input_file, files, threads, options.'},
        )
        spec.input(
            'checkpoint_interval',
            valid_type=orm.Float,
            required=False,
            validator=_validate_checkpoint_interval,
            help='Wall-clock seconds between the MOOSE checkpoints from which a run killed at its walltime is '
            'continued; 0 turns them off (a steady solve: a killed run is run again with more time). Default: a '
            'quarter of max_wallclock_seconds, in [10 s, 30 min], following the walltime of every resubmission.',
        )
        define_walltime_limit(spec)
        spec.inputs['max_iterations'].help = (
            'Most MooseCalculations this chain may launch: the first run plus every resubmission (walltime, failed '
            'recovery, not converged).'
        )
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
        spec.expose_outputs(MooseCalculation)
        spec.exit_code(
            310,
            'ERROR_MOOSE_FAILED',
            message='{calculation} failed and no handler can fix it: [{status}] {message}',
        )
        spec.exit_code(
            321,
            'ERROR_RECOVERY_FAILED',
            message='{calculation} could not continue from its checkpoint (exit {status}: {error}) and is not run '
            'again: {reason}.',
        )

    def setup(self):
        """The MooseCalculation's inputs, with the checkpoints the ``checkpoint_interval`` input asks for."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(MooseCalculation, 'moose'))
        self.ctx.inputs.metadata = dict(self.ctx.inputs.get('metadata', {}))
        self._set_checkpoint_interval()

    def _set_checkpoint_interval(self):
        """The given interval, or the default that follows the walltime of the next run; none for 0."""
        options = self.ctx.inputs.metadata.get('options', {})
        if 'checkpoint_interval' in self.inputs:
            interval = self.inputs.checkpoint_interval.value
        else:
            interval = default_checkpoint_interval(options.get('max_wallclock_seconds'))
        if interval > 0:
            self.ctx.inputs.checkpoint_interval = orm.Float(interval)
        else:
            self.ctx.inputs.pop('checkpoint_interval', None)

    def _resubmit(self, decision: WalltimeRestart, parent: orm.RemoteData | None = None) -> None:
        """Set the next run's inputs from a resubmitting ``decision``.

        The walltime becomes ``decision.max_wallclock_seconds`` (the default checkpoint interval follows it); a
        ``'recover'`` continues from ``parent`` (the killed run's ``remote_folder``), anything else runs from the start.
        """
        inputs = self.ctx.inputs
        options = dict(inputs.metadata.get('options', {}))
        options['max_wallclock_seconds'] = decision.max_wallclock_seconds
        inputs.metadata = {**inputs.metadata, 'options': options}
        self._set_checkpoint_interval()
        self._from_start(decision.action != 'recover', parent)

    def _from_start(self, from_start: bool = True, parent: orm.RemoteData | None = None) -> None:
        if from_start:
            self.ctx.inputs.pop('parent_folder', None)
            self.ctx.inputs.pop('recover', None)
        else:
            self.ctx.inputs.parent_folder = parent
            self.ctx.inputs.recover = orm.Bool(True)

    @process_handler(priority=600, exit_codes=[MooseCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """Killed at the walltime: continue from the last checkpoint, else run again with more time (bounded)."""
        limit = self.inputs.max_wallclock_seconds_limit.value
        decision = walltime_restart(node, limit=limit, can_recover='checkpoint_interval' in self.ctx.inputs)
        what = f'{node.process_label}<{node.pk}> was killed at its walltime'
        if decision.action == 'give_up':
            self.report(f'{what}; giving up: {decision.message}')
            seconds = node.get_option('max_wallclock_seconds')
            exit_code = getattr(self.exit_codes, EXIT_OUT_OF_WALLTIME[1]).format(
                calculation=f'{node.process_label}<{node.pk}>',
                seconds=seconds if seconds is not None else '(unset)',
                limit=limit,
            )
            return ProcessHandlerReport(True, exit_code)
        self._resubmit(decision, node.outputs.remote_folder)
        self.report(f'{what}: {decision.message}')
        return ProcessHandlerReport(True)

    @process_handler(
        priority=590, exit_codes=[getattr(MooseCalculation.exit_codes, label) for label in _RECOVERY_FAILURES]
    )
    def handle_failed_recovery(self, node):
        """A run continued from a checkpoint failed: run the input again from its start, with more time (bounded).

        Slurm can kill a job while MOOSE is writing a checkpoint; ``checkpoint_cp/LATEST`` may then name files that
        are cut short, and ``moose --recover`` stops with an error reading them (or crashes); or the outputs the
        killed run left (CSV, Exodus, which the recovered run appends to) were cut short, and the recovered run's
        outputs cannot be used (the parser already copes with a CSV that only lost its header).  The input is the one
        the killed run had already started with, so the checkpoint is to blame, not the input.  The input's start is
        intact (it is an input of every run), so the run is made again from there, without ``--recover``.  A run that
        was not recovered and fails like this is left to :meth:`handle_unrecoverable` (a real input error).
        """
        if 'recover' not in node.inputs or not node.inputs.recover.value:
            return None
        error = node.exit_message or f'exit status {node.exit_status}'
        limit = self.inputs.max_wallclock_seconds_limit.value
        decision = walltime_restart(node, limit=limit, can_recover=False)
        what = f'{node.process_label}<{node.pk}> could not continue from its checkpoint'
        if decision.action == 'give_up':
            self.report(f'{what}; giving up: {decision.message}')
            exit_code = self.exit_codes.ERROR_RECOVERY_FAILED.format(
                calculation=f'{node.process_label}<{node.pk}>',
                status=node.exit_status,
                error=error,
                reason=decision.message,
            )
            return ProcessHandlerReport(True, exit_code)
        self._resubmit(decision)
        self.report(f'{what} [{node.exit_status}] ({error}): {decision.message}')
        return ProcessHandlerReport(True)

    @process_handler(
        priority=500,
        exit_codes=[
            MooseCalculation.exit_codes.ERROR_NOT_CONVERGED,
            MooseCalculation.exit_codes.ERROR_TIMESTEP_BELOW_DTMIN,
        ],
    )
    def handle_not_converged(self, node):
        """MOOSE gave up: run the input again from its start with the time step cut by :data:`TIME_STEP_CUT`.

        The time step is the run's last one (its ``dt`` postprocessor), else the one of the input, and goes to MOOSE as
        a command-line override of ``Executioner/TimeStepper/dt`` (or ``Executioner/dt`` without a time stepper), in
        the input's own time unit; ``Executioner/dtmin`` is cut with it when the input sets one.  A steady solve has no
        time step to cut: it is left to :meth:`handle_unrecoverable`.
        """
        parameters = node.outputs.output_parameters.get_dict() if 'output_parameters' in node.outputs else {}
        last = parameters.get('postprocessors', {}).get('dt') or self.ctx.get('time_step') or _input_number(node, 'dt')
        if not last:
            return None
        stepper = re.search(r'^\s*\[TimeStepper\]', _input_text(node), re.MULTILINE)
        key = 'Executioner/TimeStepper/dt' if stepper else 'Executioner/dt'
        self.ctx.time_step = TIME_STEP_CUT * last
        cmdline = self.ctx.inputs.cmdline.get_list() if 'cmdline' in self.ctx.inputs else []
        cmdline = _override(cmdline, key, self.ctx.time_step)
        dtmin = self.ctx.get('dtmin') or _input_number(node, 'dtmin')
        if dtmin:
            self.ctx.dtmin = TIME_STEP_CUT * dtmin
            cmdline = _override(cmdline, 'Executioner/dtmin', self.ctx.dtmin)
        self.ctx.inputs.cmdline = orm.List(cmdline)
        self._from_start()
        self.report(
            f'{node.process_label}<{node.pk}> did not converge [{node.exit_status}]: running it again from its start '
            f'with {key} = {self.ctx.time_step:.4g} (was {last:.4g})'
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=0)
    def handle_unrecoverable(self, node):
        """Any other failure is final: say which one (the calculation's own exit code and message)."""
        if not node.is_failed:
            return None
        exit_code = self.exit_codes.ERROR_MOOSE_FAILED.format(
            calculation=f'{node.process_label}<{node.pk}>', status=node.exit_status, message=node.exit_message or ''
        )
        return ProcessHandlerReport(True, exit_code)


def _validate_checkpoint_interval(node, _):
    if node is not None and not node.value >= 0:
        return f'checkpoint_interval = {node.value} s must be >= 0 (0: no checkpoints)'
