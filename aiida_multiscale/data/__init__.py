"""Data types of aiida-multiscale: the handoff between scales and the microstructure."""

from .handoff import HandoffData, Quantity

__all__ = ('HandoffData', 'Quantity')
