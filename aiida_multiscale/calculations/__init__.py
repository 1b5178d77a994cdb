"""Calculation plugins of aiida-multiscale: ``MooseCalculation`` (pw.x and lmp use their own plugins)."""
