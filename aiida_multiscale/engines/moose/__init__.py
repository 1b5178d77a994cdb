"""Builders of MOOSE input files: the HIT writer and the physics models (pure functions, no database)."""

from aiida_multiscale.engines.moose.hit import Expression, HitError, Variable, render_hit, validate_cli_argument

__all__ = ('Expression', 'HitError', 'Variable', 'render_hit', 'validate_cli_argument')
