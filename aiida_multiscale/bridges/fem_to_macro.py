"""Bridge FEM -> macro: moduli, yield strength and grain size, checked against their bounds, with a variance budget."""

from __future__ import annotations

import math

import numpy as np
from aiida.engine import calcfunction

from aiida_multiscale.bridges import bridge_exit_code
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.physics import variance
from aiida_multiscale.physics.elasticity import voigt_reuss_hill
from aiida_multiscale.physics.plasticity import MESH_ERROR_COEFFICIENT, mesh_discretisation_error
from aiida_multiscale.physics.uncertainty import central_derivative

__all__ = ('BOUNDS_TOLERANCE', 'YIELD_BOUNDS_TOLERANCE', 'fem_to_macro', 'MACRO_QUANTITIES')

#: Relative slack on the Voigt-Reuss check.  A displacement FEM is stiff, never soft, and the bounds of a finite
#: orientation set are exact, so only round-off and the slab's free surfaces (a few 1e-4, measured on the slab) need
#: room.
BOUNDS_TOLERANCE = 2e-3
#: Relative slack on the Sachs-Taylor check of the yield strength: the RVE's coarse mesh and the hardening reached by
#: the 0.2 % offset (the estimates use the initial slip resistance) move the yield by a few per cent.
YIELD_BOUNDS_TOLERANCE = 0.05

MACRO_QUANTITIES = (
    'youngs_modulus',
    'poisson_ratio',
    'c11_eff',
    'c12_eff',
    'c44_eff',
    'youngs_modulus_voigt',
    'youngs_modulus_reuss',
    'youngs_modulus_apparent',
    'stress_concentration',
    'yield_strength',
    'yield_strength_sachs',
    'yield_strength_taylor',
    'flow_stress',
    'taylor_factor',
    'mean_grain_size',
    'grain_count',
)
_CONSTANTS = ('c11', 'c12', 'c44')
#: The macro quantities whose inputs' terms come through the Hill estimate of the same orientations.
_HILL_NAMES = ('youngs_modulus', 'poisson_ratio', 'c11_eff', 'c12_eff', 'c44_eff', 'youngs_modulus_voigt',
               'youngs_modulus_reuss')  # fmt: skip
#: The yield strength's inputs that act through the initial slip resistance (Hall-Petch), and through hardening.
_HALL_PETCH = ('friction_stress', 'hall_petch_coefficient', 'taylor_factor_random')
#: The macro quantities whose budget gets the crystal-plasticity RVE's mesh error (the Sachs and Taylor estimates
#: need no mesh; the Taylor factor is a diagnostic, and a budget of one term would always be "the weakest").
_MESH_DEPENDENT = ('yield_strength', 'flow_stress')
_HARDENING = ('hardening_modulus', 'saturation_strength', 'hardening_exponent', 'latent_hardening_ratio')
#: The units of the yield derivatives with respect to the inputs not taken in ln units (stresses in Pa).
_SENSITIVITY_UNITS = {
    'friction_stress': 'Pa',
    'hall_petch_coefficient': 'Pa*m**0.5',
    'taylor_factor_random': 'dimensionless',
    'latent_hardening_ratio': 'dimensionless',
}


def _hill_model(euler, weights):
    """The elastic macro quantities as functions of (c11, c12, c44): the Hill estimate of these orientations.

    The FEM value lies between Voigt and Reuss and moves with them, so the Hill estimate's derivatives stand in for
    the FEM's (the FEM is not re-run per derivative); c_ij_eff are those of the isotropic aggregate of Hill's E, nu.
    """

    def model(key):
        def value(c11, c12, c44):
            hill = voigt_reuss_hill(c11, c12, c44, euler, weights)
            youngs, poisson = hill['youngs_modulus_hill'], hill['poisson_ratio_hill']
            bulk, shear = youngs / (3 * (1 - 2 * poisson)), youngs / (2 * (1 + poisson))
            return {
                'youngs_modulus': youngs,
                'poisson_ratio': poisson,
                'c11_eff': bulk + 4 * shear / 3,
                'c12_eff': bulk - 2 * shear / 3,
                'c44_eff': shear,
                'youngs_modulus_voigt': hill['youngs_modulus_voigt'],
                'youngs_modulus_reuss': hill['youngs_modulus_reuss'],
            }[key]

        return value

    return model


def _elastic_terms(name, fem_value, elastic, euler, weights) -> list[dict]:
    """Terms of an elastic macro quantity from the DFT Cij stds, derivatives of the Hill model scaled to the FEM."""
    constants = [elastic.get_quantity(c, 'Pa') for c in _CONSTANTS]
    values = [q.value for q in constants]
    function = _hill_model(euler, weights)(name)
    model_value = function(*values)
    scale = fem_value / model_value if model_value else 1.0
    terms = []
    for index, (constant, quantity) in enumerate(zip(_CONSTANTS, constants)):
        if not quantity.std:
            continue
        derivative = central_derivative(function, values, index) * scale
        terms.append(
            variance.term(elastic.uuid, constant, derivative, quantity.std, log=False,
                          note='d/dc of the Hill estimate of these orientations, scaled to the FEM value')
        )  # fmt: skip
    return terms


def _plastic_terms(name, mechanics, assumptions, ln_size_terms) -> list[dict]:
    """Terms of the yield strength, its estimates or the flow stress from the assumptions and the grain size."""
    sensitivities = mechanics.metadata.get('yield_sensitivities')
    if not sensitivities:
        return []
    yield_value = mechanics.value('yield_strength', 'Pa')
    value = mechanics.value(name, 'Pa')
    hardening_scale = 1.0
    if name == 'flow_stress':
        # Past yield the stress grows by the hardening alone: its part scales with h0 like the part at the offset.
        increment = sensitivities['hardening_modulus'][0]
        hardening_scale = (increment + value - yield_value) / increment if increment > 0 else 1.0
    terms = []
    for key, (derivative, log, how) in sensitivities.items():
        if key == 'mean_grain_size':
            continue
        if name in ('yield_strength_sachs', 'yield_strength_taylor'):
            if key not in _HALL_PETCH:
                continue  # the estimates use the initial slip resistance: no hardening, no rate
            derivative, how = derivative * value / yield_value, f'{how}, scaled by the estimate over the RVE yield'
        elif key in _HARDENING:
            derivative *= hardening_scale
        if key not in assumptions:
            continue
        quantity = assumptions.get_quantity(key, None if log else _SENSITIVITY_UNITS[key])
        std = quantity.relative_std if log else quantity.std
        if not std:
            continue
        terms.append(variance.term(assumptions.uuid, key, derivative, std, log=log, note=how))
    derivative, _, how = sensitivities['mean_grain_size']
    if name in ('yield_strength_sachs', 'yield_strength_taylor'):
        derivative *= value / yield_value
    terms.extend(variance.chain_terms(ln_size_terms, derivative, f'ln d ({how})'))
    return terms


@calcfunction
def fem_to_macro(
    mechanics: HandoffData,
    elastic: HandoffData = None,
    microstructure: MicrostructureData = None,
    grains: HandoffData = None,
    assumptions: HandoffData = None,
):
    """Build the ``macro`` HandoffData from the FEM result after checking it, with each quantity's variance budget.

    Checks: ``E_Reuss (1 - tol) <= E_eff <= E_Voigt (1 + tol)`` (tol = :data:`BOUNDS_TOLERANCE`); ``-1 < nu < 1/2``;
    with crystal plasticity, ``Sachs (1 - tol) <= yield <= Taylor (1 + tol)`` (tol = :data:`YIELD_BOUNDS_TOLERANCE`).

    Uncertainty, first order (:mod:`aiida_multiscale.physics.variance`): every uncertain input is a term
    ``(d y/d x std_x)^2`` of a macro quantity's variance, and the sampling spread over realisations (the FEM's std)
    is a term of its own.

    * Elastic quantities: the DFT Cij stds (``elastic``) through the Hill estimate of the same orientations
      (``microstructure``), whose derivatives the FEM value tracks between the bounds.
    * Yield strength, its Sachs and Taylor estimates and the flow stress: the stored crystal-plasticity assumptions
      (``assumptions``) through the derivatives the FEM rung computed (``mechanics`` metadata
      ``yield_sensitivities``: Hall-Petch at the slip level, the hardening reached at the offset, the flow rule), and
      the grain size through Hall-Petch, whose own terms (``grains`` metadata ``ln_grain_size_terms``: mobility,
      boundary energy, anneal time, potential misfit, through the growth law) are carried by the chain rule.
    * ``mean_grain_size``: the grain-size terms.

    The budgets go into the metadata (``variance_budget``, each term with its share, largest first) with the
    largest share of any quantity (``weakest``): the input the answer depends on most, not the one with the largest
    relative std.
    """
    youngs = mechanics.get_quantity('youngs_modulus', 'Pa')
    voigt = mechanics.get_quantity('youngs_modulus_voigt', 'Pa')
    reuss = mechanics.get_quantity('youngs_modulus_reuss', 'Pa')
    poisson = mechanics.get_quantity('poisson_ratio', 'dimensionless')
    if not reuss.value * (1 - BOUNDS_TOLERANCE) <= youngs.value <= voigt.value * (1 + BOUNDS_TOLERANCE):
        return bridge_exit_code(
            'ERROR_FEM_TO_MACRO_OUTSIDE_BOUNDS',
            f'E_eff = {youngs.to("GPa").value:.5g} GPa, Reuss {reuss.to("GPa").value:.5g} GPa, '
            f'Voigt {voigt.to("GPa").value:.5g} GPa (tolerance {BOUNDS_TOLERANCE:.1%})',
        )
    if not -1 < poisson.value < 0.5:
        return bridge_exit_code('ERROR_FEM_TO_MACRO_POISSON', f'nu_eff = {poisson.value:.4g} is outside (-1, 1/2)')
    plastic = 'yield_strength' in mechanics
    if plastic:
        value, sachs, taylor = (
            mechanics.value(name, 'MPa') for name in ('yield_strength', 'yield_strength_sachs', 'yield_strength_taylor')
        )
        tol = YIELD_BOUNDS_TOLERANCE
        if math.isnan(value) or not sachs * (1 - tol) <= value <= taylor * (1 + tol):
            return bridge_exit_code(
                'ERROR_FEM_TO_MACRO_YIELD_OUTSIDE_BOUNDS',
                f'yield strength {value:.4g} MPa, Sachs {sachs:.4g} MPa, Taylor {taylor:.4g} MPa (tolerance {tol:.0%})',
            )

    rows = mechanics.metadata.get('realisations', [])
    ln_size_terms = grains.metadata.get('ln_grain_size_terms', []) if grains is not None else []
    budgets, quantities = [], {}

    def spread(name):
        """The sampling term: the FEM's std of the mean over realisations (None for one realisation)."""
        values = [row[name] for row in rows if name in row]
        return variance.spread_term(values)

    def discretisation(name, value):
        """The crystal-plasticity RVE's mesh error (one mesh per realisation, not converged), in ln units."""
        per_grain = [row['elements_per_grain'] for row in rows if 'elements_per_grain' in row]
        if not per_grain:
            return []
        errors = [mesh_discretisation_error(n) for n in per_grain]
        how = (
            f'mesh of the crystal-plasticity RVE, {min(per_grain):.3g}-{max(per_grain):.3g} elements per grain: '
            f'relative error {MESH_ERROR_COEFFICIENT} / (elements per grain) from the mesh series of benchmarks/fem.py '
            '(a coarse mesh yields high); the mean over realisations, not reduced by averaging'
        )
        return [variance.term(None, 'discretisation', value, float(np.mean(errors)), log=True, note=how)]

    for name in MACRO_QUANTITIES:
        if name in ('mean_grain_size', 'grain_count') or name not in mechanics:
            continue
        quantity = mechanics[name]
        terms = []
        if elastic is not None and microstructure is not None and name in _HILL_NAMES:
            terms = _elastic_terms(name, quantity.value, elastic, microstructure.euler_angles,
                                   microstructure.area_fractions)  # fmt: skip
        elif plastic and assumptions is not None and name in (
            'yield_strength', 'yield_strength_sachs', 'yield_strength_taylor', 'flow_stress'
        ):  # fmt: skip
            terms = _plastic_terms(name, mechanics, assumptions, ln_size_terms)
        if name in _HILL_NAMES or name in ('yield_strength', 'flow_stress', 'taylor_factor') or (
            name.startswith('yield_strength_')
        ):  # fmt: skip
            terms.append(spread(name))
        if name in _MESH_DEPENDENT:
            terms.extend(discretisation(name, quantity.value))
        std, note = quantity.std, quantity.note
        if any(entry['amplitude'] is not None for entry in terms):
            entry_budget = variance.budget(name, quantity.value, terms)
            budgets.append(entry_budget)
            std = entry_budget['std']
            named = ', '.join(e['quantity'] for e in entry_budget['entries'] if e['share'] is not None)
            note = f'{note}; std: first order from {named} (variance budget in the metadata)'
        quantities[name] = {'value': quantity.value, 'unit': quantity.unit, 'std': std, 'note': note}
    if grains is not None and 'mean_grain_size' in grains:
        size = grains.get_quantity('mean_grain_size', 'm')
        quantities['mean_grain_size'] = {'value': size.value, 'unit': 'm', 'std': size.std, 'note': size.note}
        if ln_size_terms:
            budgets.append(
                variance.budget('mean_grain_size', size.value, variance.chain_terms(ln_size_terms, size.value, 'd'))
            )
    if 'grain_count' in mechanics:
        quantities['grain_count'] = mechanics['grain_count'].as_dict()
    checks = {'voigt_reuss_bounds': 'passed', 'poisson_ratio': 'passed', 'bounds_tolerance': BOUNDS_TOLERANCE}
    if plastic:
        checks.update(sachs_taylor_bounds='passed', yield_bounds_tolerance=YIELD_BOUNDS_TOLERANCE)
    metadata = {
        'checks': checks,
        'fem': {key: value for key, value in mechanics.metadata.items() if key != 'slab'},
        'variance_budget': budgets,
        'weakest': variance.weakest(budgets),
    }
    return {
        'macro': HandoffData(quantities, bridge='fem_to_macro', from_scale='fem', to_scale='macro', metadata=metadata)
    }
