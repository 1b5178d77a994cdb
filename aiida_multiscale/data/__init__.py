"""Data types of aiida-multiscale: the handoff between scales and the microstructure."""

from aiida_multiscale.data.handoff import HandoffData, Quantity

__all__ = ('HandoffData', 'Quantity')
