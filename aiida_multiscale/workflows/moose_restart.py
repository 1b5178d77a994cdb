"""What a MOOSE rung does when the scheduler kills its MooseCalculation at the walltime (exit code 120).

Shared by :class:`~aiida_multiscale.workflows.phase_field.PhaseFieldWorkChain` and
:class:`~aiida_multiscale.workflows.fem.FemWorkChain`, whose ``process_handler`` for
``ERROR_SCHEDULER_OUT_OF_WALLTIME`` calls :func:`walltime_restart` and acts on its answer.  The decision is a plain
function of the killed node so that it can be tested without running anything:

* the run wrote a checkpoint (``output_parameters.checkpoint``, see
  :class:`~aiida_multiscale.parsers.moose.MooseParser`) and the rung can recover: continue from it
  (``moose --recover``) with the same walltime, since every such restart makes progress;
* the newest checkpoint is one this run was itself recovered from (it wrote none of its own): recover again, but with
  twice the walltime, or the same kill would repeat;
* no checkpoint: run again from the start with twice the walltime (the honest answer for a steady solve);
* in every case at most ``walltime_restarts`` times, and never above ``max_wallclock_seconds_limit``.
"""

from __future__ import annotations

import dataclasses

from aiida import orm

__all__ = (
    'DEFAULT_MAX_WALLCLOCK_SECONDS',
    'DEFAULT_WALLTIME_RESTARTS',
    'WalltimeRestart',
    'apply_restart',
    'decide_restart',
    'define_walltime_inputs',
    'walltime_restart',
)

#: Resubmissions after a walltime kill, per rung, unless the ``walltime_restarts`` input says otherwise.
DEFAULT_WALLTIME_RESTARTS = 2
#: The walltime is never raised above this (s), unless ``max_wallclock_seconds_limit`` says otherwise: one day.
DEFAULT_MAX_WALLCLOCK_SECONDS = 24 * 3600
#: Factor on ``max_wallclock_seconds`` when a run is resubmitted without progress.
WALLTIME_FACTOR = 2


def _validate_restarts(value, _):
    if value is not None and not 0 <= value.value <= 100:
        return f'walltime_restarts = {value.value} must be between 0 and 100'


def _validate_limit(value, _):
    if value is not None and value.value < 60:
        return f'max_wallclock_seconds_limit = {value.value} s must be at least 60 s'


def define_walltime_inputs(spec) -> None:
    """The two inputs that bound the walltime handler of a MOOSE rung."""
    spec.input(
        'walltime_restarts',
        valid_type=orm.Int,
        default=lambda: orm.Int(DEFAULT_WALLTIME_RESTARTS),
        validator=_validate_restarts,
        help='How many times a MooseCalculation killed at its walltime (exit code 120) is resubmitted, from its '
        'last checkpoint or with twice the time, before the rung gives up with ERROR_OUT_OF_WALLTIME.',
    )
    spec.input(
        'max_wallclock_seconds_limit',
        valid_type=orm.Int,
        default=lambda: orm.Int(DEFAULT_MAX_WALLCLOCK_SECONDS),
        validator=_validate_limit,
        help='Largest max_wallclock_seconds (s) a walltime resubmission may ask for, e.g. the queue limit; '
        f'default {DEFAULT_MAX_WALLCLOCK_SECONDS} s.',
    )


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


def walltime_restart(
    node: orm.CalcJobNode, *, restarts_done: int, max_restarts: int, limit: int, can_recover: bool = True
) -> WalltimeRestart:
    """Decide how to resubmit ``node``, a MooseCalculation killed at its walltime (see the module docstring).

    :param restarts_done: walltime resubmissions this rung already made.
    :param max_restarts: how many it may make (the ``walltime_restarts`` input).
    :param limit: the largest walltime (s) it may ask for (the ``max_wallclock_seconds_limit`` input).
    :param can_recover: False for a rung that does not continue from checkpoints (a steady solve).
    """
    walltime = node.get_option('max_wallclock_seconds')
    parameters = node.outputs.output_parameters.get_dict() if 'output_parameters' in node.outputs else {}
    checkpoint = parameters.get('checkpoint') if can_recover and 'remote_folder' in node.outputs else None
    if restarts_done >= max_restarts:
        return WalltimeRestart(
            'give_up',
            None,
            None,
            f'{restarts_done} walltime resubmission(s) made, the most allowed (walltime_restarts = {max_restarts})',
        )
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
    if walltime >= limit:
        return WalltimeRestart(
            'give_up',
            None,
            None,
            f'its walltime {walltime} s is already at max_wallclock_seconds_limit = {limit} s, and it '
            + ('made no new checkpoint' if checkpoint else 'wrote no checkpoint'),
        )
    longer = int(min(WALLTIME_FACTOR * walltime, limit))
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


def decide_restart(workchain, node: orm.CalcJobNode, can_recover: bool) -> WalltimeRestart:
    """:func:`walltime_restart` with the bounds of ``workchain``: its ``walltime_restarts`` and
    ``max_wallclock_seconds_limit`` inputs, and the resubmissions counted in ``ctx.walltime_restarts``."""
    return walltime_restart(
        node,
        restarts_done=workchain.ctx.walltime_restarts,
        max_restarts=workchain.inputs.walltime_restarts.value,
        limit=workchain.inputs.max_wallclock_seconds_limit.value,
        can_recover=can_recover,
    )


def apply_restart(inputs, decision: WalltimeRestart, parent: orm.RemoteData | None = None, checkpoint_interval=None):
    """Set the next MooseCalculation's ``inputs`` (an AttributeDict, changed in place) from a resubmitting ``decision``.

    The walltime becomes ``decision.max_wallclock_seconds``; a ``'recover'`` continues from ``parent`` (the killed
    run's ``remote_folder``), anything else runs from the start, so ``recover`` and ``parent_folder`` go.
    ``checkpoint_interval`` (seconds), when given, replaces the interval of a run that writes checkpoints: the rungs'
    default follows the walltime.  Shared by the rungs' handlers so that a resubmission is built the same way, whatever
    caused it.
    """
    options = dict(inputs.metadata.get('options', {}))
    options['max_wallclock_seconds'] = decision.max_wallclock_seconds
    inputs.metadata = {**inputs.metadata, 'options': options}
    if decision.action == 'recover':
        inputs.parent_folder = parent
        inputs.recover = orm.Bool(True)
    else:
        inputs.pop('parent_folder', None)
        inputs.pop('recover', None)
    if checkpoint_interval is not None and 'checkpoint_interval' in inputs:
        inputs.checkpoint_interval = orm.Float(checkpoint_interval)
