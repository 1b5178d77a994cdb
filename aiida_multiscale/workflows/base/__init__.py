"""One restart layer per engine: a ``BaseRestartWorkChain`` each for pw.x, LAMMPS and MOOSE, with one walltime policy.

A scheduler walltime kill (aiida-core's exit 120) means the same thing for every code, so every engine's restart chain
answers it the same way, with the names defined here:

* the inputs are ``max_iterations`` (aiida-core's, every resubmission counts) and ``max_wallclock_seconds_limit``
  (the largest walltime a resubmission may ask for, e.g. the queue's limit), defined by
  :func:`define_walltime_limit`;
* a run resubmitted without progress gets :data:`WALLTIME_FACTOR` times its walltime (:func:`next_walltime`), never
  more than the limit;
* when the limit is reached the chain ends with exit code :data:`EXIT_OUT_OF_WALLTIME`.

The rungs (``workflows/dft.py`` ...) only orchestrate: they run these chains and never handle a scheduler failure
themselves.
"""

from __future__ import annotations

import warnings

from aiida import orm
from aiida.common.warnings import AiidaDeprecationWarning

__all__ = (
    'DEFAULT_MAX_WALLCLOCK_SECONDS_LIMIT',
    'EXIT_OUT_OF_WALLTIME',
    'WALLTIME_FACTOR',
    'define_walltime_limit',
    'next_walltime',
    'warn_deprecated_input',
)

#: Factor on ``max_wallclock_seconds`` when a run killed at its walltime is resubmitted without progress.
WALLTIME_FACTOR = 2
#: Default of ``max_wallclock_seconds_limit`` (s): one day.
DEFAULT_MAX_WALLCLOCK_SECONDS_LIMIT = 24 * 3600
#: Exit code (status, label) of every engine's restart chain when the walltime cannot be raised any further.
EXIT_OUT_OF_WALLTIME = (320, 'ERROR_OUT_OF_WALLTIME')


def _validate_limit(value, _):
    if value is not None and value.value < 60:
        return f'max_wallclock_seconds_limit = {value.value} s must be at least 60 s'


def define_walltime_limit(spec) -> None:
    """Add the walltime bound and :data:`EXIT_OUT_OF_WALLTIME` to the spec of an engine's restart chain."""
    spec.input(
        'max_wallclock_seconds_limit',
        valid_type=orm.Int,
        default=lambda: orm.Int(DEFAULT_MAX_WALLCLOCK_SECONDS_LIMIT),
        validator=_validate_limit,
        help='Largest max_wallclock_seconds (s) that a resubmission after a walltime kill may ask for, e.g. the '
        f'queue limit; default {DEFAULT_MAX_WALLCLOCK_SECONDS_LIMIT} s (one day).',
    )
    status, label = EXIT_OUT_OF_WALLTIME
    spec.exit_code(
        status,
        label,
        message='{calculation} was killed at its walltime of {seconds} s and max_wallclock_seconds_limit = {limit} s '
        'allows no more: raise the limit or the starting max_wallclock_seconds.',
    )


def next_walltime(seconds: int | float | None, limit: int) -> int | None:
    """The walltime (s) for a resubmission without progress: :data:`WALLTIME_FACTOR` x ``seconds``, capped at ``limit``.

    ``None`` when ``seconds`` already is the limit (or above it): another run with the same time would be killed again.
    """
    if seconds is None:
        return None
    if seconds >= limit:
        return None
    return int(min(WALLTIME_FACTOR * seconds, limit))


def warn_deprecated_input(workchain, old: str, new: str) -> None:
    """Say that the input ``old`` is deprecated and what replaced it: a warning for scripts, a report for the graph.

    The one deprecation path of the rungs' renamed inputs (``max_walltime_restarts``, ``walltime_restarts``, ...).
    """
    message = f'the input `{old}` is deprecated: use {new}'
    warnings.warn(message, AiidaDeprecationWarning, stacklevel=2)
    workchain.report(f'warning: {message}')
