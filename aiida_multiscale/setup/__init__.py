"""Set up a computer, the three codes (pw.x, lmp, MOOSE) and the pseudopotential families, after checking them.

The set-up is done in two phases (:mod:`~aiida_multiscale.setup.plan`) so that a failure leaves nothing half-created:

1. :func:`preflight` checks everything that can be checked without writing to the database: the storage and the
   broker answer (:mod:`~aiida_multiscale.setup.services`), each executable exists *and really runs*
   (:mod:`~aiida_multiscale.setup.codes`: pw.x on a tiny SCF, lmp with the MANYBODY package, ``moose --version``),
   and the pseudopotential folder has the UPF files whose cutoffs were converged
   (:mod:`~aiida_multiscale.setup.pseudos`).  Each problem becomes a
   :class:`SetupError` with one line that says what is wrong and how to fix it.
2. :func:`apply_setup` creates what is missing (idempotently: what exists and matches is reused) and deletes what it
   created if anything fails half-way.

:func:`configure_caching` (:mod:`~aiida_multiscale.setup.caching`) switches AiiDA's caching on for the rung
calculations in a profile.
"""

from aiida_multiscale.setup.caching import CACHED_CALCULATIONS, configure_caching
from aiida_multiscale.setup.codes import CODE_PLUGINS, default_executables
from aiida_multiscale.setup.errors import SetupError
from aiida_multiscale.setup.plan import SetupPlan, apply_setup, preflight, run_setup
from aiida_multiscale.setup.pseudos import load_cutoffs_table

__all__ = (
    'CACHED_CALCULATIONS',
    'CODE_PLUGINS',
    'SetupError',
    'SetupPlan',
    'apply_setup',
    'configure_caching',
    'default_executables',
    'load_cutoffs_table',
    'preflight',
    'run_setup',
)
