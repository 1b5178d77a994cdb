"""Pure physics helpers of the DFT rung: cubic cells and the strained-cell set."""

from aiida_multiscale.engines.qe.elastic import elastic_strain, fit_cubic_elastic_constants
from aiida_multiscale.engines.qe.structures import (
    CubicStructureError,
    build_cubic_atoms,
    check_cubic_structure,
    conventional_lattice_parameter,
    guess_functional,
    reference_lattice,
)

__all__ = (
    'CubicStructureError',
    'build_cubic_atoms',
    'check_cubic_structure',
    'conventional_lattice_parameter',
    'elastic_strain',
    'fit_cubic_elastic_constants',
    'guess_functional',
    'reference_lattice',
)
