"""AiiDA plugin for a traceable DFT -> MD -> phase-field -> FEM multi-scale chain."""

__version__ = '0.1.0'
