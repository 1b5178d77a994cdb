"""Bridge FEM -> macro: the effective elastic moduli, their bounds, stress concentration and grain size, with std."""

from __future__ import annotations

from aiida.engine import calcfunction

from aiida_multiscale.bridges import bridge_exit_code
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.physics.elasticity import voigt_reuss_hill
from aiida_multiscale.physics.uncertainty import first_order_std

__all__ = ('BOUNDS_TOLERANCE', 'fem_to_macro', 'MACRO_QUANTITIES')

#: Relative slack on the Voigt-Reuss check.  A displacement FEM is stiff, never soft, and the bounds of a finite
#: orientation set are exact, so only round-off and the slab's free surfaces (a few 1e-4, measured on the slab) need
#: room.
BOUNDS_TOLERANCE = 2e-3

MACRO_QUANTITIES = (
    'youngs_modulus',
    'poisson_ratio',
    'youngs_modulus_voigt',
    'youngs_modulus_reuss',
    'stress_concentration',
    'mean_grain_size',
)


@calcfunction
def fem_to_macro(
    mechanics: HandoffData,
    elastic: HandoffData = None,
    microstructure: MicrostructureData = None,
    grains: HandoffData = None,
):
    """Build the ``macro`` HandoffData from the FEM result, after checking it against the Voigt-Reuss bounds.

    Checks: ``E_Reuss (1 - tol) <= E_eff <= E_Voigt (1 + tol)`` with tol = :data:`BOUNDS_TOLERANCE`;
    ``-1 < nu_eff < 1/2``.

    Uncertainty, first order: the Cij stds (``elastic``) are propagated through the Voigt, Reuss and Hill averages of
    the same orientations (``microstructure``, area-weighted) by central differences.  E_eff and nu_eff take the
    relative std of the Hill estimate, which the FEM value tracks within the bounds; the FEM itself is not re-run.
    The mean grain size and its std come from ``grains``.
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

    stds = {name: None for name in ('youngs_modulus', 'poisson_ratio', 'youngs_modulus_voigt', 'youngs_modulus_reuss')}
    how = 'std not propagated (no elastic handoff or microstructure given)'
    if elastic is not None and microstructure is not None:
        constants = [elastic.get_quantity(name, 'Pa') for name in ('c11', 'c12', 'c44')]
        values = [q.value for q in constants]
        errors = [q.std for q in constants]
        euler = microstructure.euler_angles
        weights = microstructure.area_fractions

        def model(key):
            return lambda c11, c12, c44: voigt_reuss_hill(c11, c12, c44, euler, weights)[key]

        hill = voigt_reuss_hill(*values, euler, weights)
        relative_e = first_order_std(model('youngs_modulus_hill'), values, errors) / hill['youngs_modulus_hill']
        relative_nu = first_order_std(model('poisson_ratio_hill'), values, errors) / hill['poisson_ratio_hill']
        stds['youngs_modulus'] = relative_e * youngs.value
        stds['poisson_ratio'] = relative_nu * poisson.value
        stds['youngs_modulus_voigt'] = first_order_std(model('youngs_modulus_voigt'), values, errors)
        stds['youngs_modulus_reuss'] = first_order_std(model('youngs_modulus_reuss'), values, errors)
        how = 'first-order std from the DFT Cij stds through the Hill/Voigt/Reuss averages of these orientations'

    quantities = {}
    for name, quantity in (
        ('youngs_modulus', youngs),
        ('poisson_ratio', poisson),
        ('youngs_modulus_voigt', voigt),
        ('youngs_modulus_reuss', reuss),
    ):
        std = stds[name] if stds[name] is not None else quantity.std
        quantities[name] = {'value': quantity.value, 'unit': quantity.unit, 'std': std, 'note': f'FEM; {how}'}
    concentration = mechanics.get_quantity('stress_concentration', 'dimensionless')
    quantities['stress_concentration'] = {
        'value': concentration.value,
        'unit': 'dimensionless',
        'std': concentration.std,
        'note': 'FEM peak von Mises / applied stress; mesh-dependent; std not propagated (one FEM run per sample)',
    }
    if grains is not None and 'mean_grain_size' in grains:
        size = grains.get_quantity('mean_grain_size', 'm')
        quantities['mean_grain_size'] = {'value': size.value, 'unit': 'm', 'std': size.std, 'note': size.note}
    metadata = {
        'checks': {'voigt_reuss_bounds': 'passed', 'poisson_ratio': 'passed', 'bounds_tolerance': BOUNDS_TOLERANCE},
        'fem': mechanics.metadata,
    }
    return {
        'macro': HandoffData(quantities, bridge='fem_to_macro', from_scale='fem', to_scale='macro', metadata=metadata)
    }
