"""Pure physics helpers of the DFT rung: cubic cells, strains, equation-of-state and stress-strain fits, stability."""

from .elastic import born_stability_violations, bulk_modulus_from_cij, elastic_strain, fit_cubic_elastic_constants
from .eos import eos_grid, fit_birch_murnaghan, recentre_grid
from .structures import (
    CubicStructureError,
    build_cubic_atoms,
    check_cubic_structure,
    conventional_lattice_parameter,
    guess_functional,
    reference_lattice,
)

__all__ = (
    'CubicStructureError',
    'born_stability_violations',
    'build_cubic_atoms',
    'bulk_modulus_from_cij',
    'check_cubic_structure',
    'conventional_lattice_parameter',
    'elastic_strain',
    'eos_grid',
    'fit_birch_murnaghan',
    'fit_cubic_elastic_constants',
    'guess_functional',
    'recentre_grid',
    'reference_lattice',
)
