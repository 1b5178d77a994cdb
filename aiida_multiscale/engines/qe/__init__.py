"""Pure helpers of the DFT rung (no database): cubic cells, the strained-cell set, pw.x parameters, setting checks."""

from aiida_multiscale.engines.qe.elastic import cij_converged, elastic_strain, fit_cubic_elastic_constants
from aiida_multiscale.engines.qe.parameters import pw_parameters
from aiida_multiscale.engines.qe.settings import check_parameters, check_pw_parameters
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
    'check_parameters',
    'check_pw_parameters',
    'cij_converged',
    'conventional_lattice_parameter',
    'elastic_strain',
    'fit_cubic_elastic_constants',
    'guess_functional',
    'pw_parameters',
    'reference_lattice',
)
