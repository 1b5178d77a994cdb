"""Bridge MD -> mesoscale: sigma_GB and the boundary mobility M(T) from MD, with the assumed anneal, as the phase
field's ``interface``.

The mobility is the MD rung's Arrhenius fit evaluated at the anneal temperature, with the fit's covariance, times the
one thing MD of a pure metal cannot see, ``mobility_reduction`` (solute drag, pinning; an explicit stored assumption).
Without an MD mobility (the rung's stage switched off) M0 and Q are assumed inputs, marked so in their notes.
"""

from __future__ import annotations

import math

from aiida.engine import calcfunction

from aiida_multiscale.bridges import bridge_exit_code
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.physics.grain_growth import arrhenius_mobility_and_std
from aiida_multiscale.physics.units import BOLTZMANN_EV

__all__ = (
    'ASSUMED_MOBILITY',
    'ASSUMPTION_UNITS',
    'REQUIRED_ASSUMPTIONS',
    'MAX_GB_ENERGY',
    'make_assumptions',
    'md_to_mesoscale',
    'relative_potential_error',
)


#: Upper limit of a plausible grain-boundary energy (J/m^2).  The largest measured and computed GB energies of
#: metals (W, Ir, Re) are about 3-4 J/m^2 (Ratanaphan et al., Acta Mater. 88, 346 (2015)); a larger number from MD
#: means a broken bicrystal, not a material.
MAX_GB_ENERGY = 5.0

#: The assumed inputs that no rung computes, and the units the phase field receives them in.
ASSUMPTION_UNITS = {
    'mobility_prefactor': 'm**4/(J*s)',
    'activation_energy': 'eV',
    'mobility_reduction': 'dimensionless',
    'temperature': 'K',
    'anneal_time': 's',
    'initial_grain_size': 'm',
}
#: The assumptions every chain needs: the anneal.
REQUIRED_ASSUMPTIONS = ('temperature', 'anneal_time', 'initial_grain_size')
#: The mobility by hand (both or neither): only when the MD rung does not compute it; they are then "assumed".
ASSUMED_MOBILITY = ('mobility_prefactor', 'activation_energy')


def make_assumptions(values: dict) -> HandoffData:
    """Build the ``assumptions`` HandoffData from ``{name: {value, unit, std, source or note}}`` (not stored).

    Each note starts with "assumed" and names the source, so the provenance graph shows the numbers as assumptions.
    The anneal (:data:`REQUIRED_ASSUMPTIONS`) is required; M0 and Q (:data:`ASSUMED_MOBILITY`) come both or neither,
    and ``mobility_reduction`` is optional.
    """
    quantities = {}
    for name in REQUIRED_ASSUMPTIONS:
        if name not in values:
            raise ValueError(f'assumptions: {name!r} is missing; give value, unit, std and source')
    if len([name for name in ASSUMED_MOBILITY if name in values]) == 1:
        raise ValueError(
            'assumptions: give both mobility_prefactor and activation_energy (the mobility by hand) or neither'
        )
    for name in ASSUMPTION_UNITS:
        if name not in values:
            continue
        spec = values[name]
        note = spec.get('note') or f'assumed; source: {spec.get("source") or "user input"}'
        if not note.startswith('assumed'):
            raise ValueError(f'assumptions: the note of {name!r} must start with "assumed", got {note!r}')
        quantities[name] = {
            'value': spec['value'],
            'unit': spec.get('unit', ASSUMPTION_UNITS[name]),
            'std': spec.get('std'),
            'note': note,
        }
    return HandoffData(quantities, producer='assumption', from_scale='user', to_scale='mesoscale')


def relative_potential_error(potential_check: HandoffData | None) -> tuple[float, list[str]]:
    """RMS of the potential's relative errors against DFT: taken as the potential's uncertainty."""
    if potential_check is None:
        return 0.0, []
    names = [name for name in potential_check.names if name.endswith('_relative_error')]
    if not names:
        return 0.0, []
    errors = [potential_check.value(name, 'dimensionless') for name in names]
    return math.sqrt(sum(e * e for e in errors) / len(errors)), names


def mobility_from_md(gb_mobility: HandoffData, temperature: float) -> tuple[float, float, dict]:
    """M(T) (m^4/(J s)) from the MD rung's Arrhenius fit, the std of ln M from its covariance, and where T lies.

    ``var(ln M) = J C J^T`` with ``J = (1, -1/kT)`` and C the covariance of (ln M0, Q): M0 and Q are strongly
    correlated, so their separate stds would overstate the spread by orders of magnitude.  Outside the simulated range
    the std grows with the distance (quadratically in 1/T), and the returned ``extrapolation`` says by how much.
    """
    from aiida_multiscale.physics.mobility import ArrheniusFit

    temperatures = [row['temperature'] for row in gb_mobility.metadata['temperatures']]
    fit = ArrheniusFit.from_dict(gb_mobility.metadata['arrhenius'], temperatures)
    estimate = fit.mobility_at(temperature)
    extrapolation = {
        'extrapolated': estimate.extrapolated,
        'distance_kelvin': estimate.distance,
        'relative_distance_inverse_temperature': estimate.relative_distance,
        'simulated_range_kelvin': [min(fit.temperatures), max(fit.temperatures)],
    }
    return estimate.value, estimate.ln_std, extrapolation


def _interface_mobility(gb_mobility, assumed, temperature) -> tuple[dict, dict] | str:
    """The interface's mobility quantities and metadata from the MD fit (``gb_mobility``) or the assumed M0 and Q."""
    quantities, metadata = {}, {}
    kt = BOLTZMANN_EV * temperature.value
    if gb_mobility is None:
        m0, q = assumed['mobility_prefactor'], assumed['activation_energy']
        mobility, relative = arrhenius_mobility_and_std(
            m0.value, q.value, temperature.value,
            prefactor_std=m0.std, activation_energy_std=q.std, temperature_std=temperature.std,
        )  # fmt: skip
        quantities['gb_mobility'] = {
            'value': mobility,
            'unit': 'm**4/(J*s)',
            'std': relative * mobility,
            'note': 'assumed: M0 exp(-Q/kT) with the assumed M0, Q at T; first-order std (orders of magnitude: see M0)',
        }
        metadata['mobility_source'] = 'assumed'
        return quantities, metadata
    reduction = assumed.get('mobility_reduction')
    factor, reduction_ln_std = (
        (1.0, 0.0) if reduction is None else (reduction.value, (reduction.std or 0.0) / reduction.value)
    )
    md_value, fit_ln_std, extrapolation = mobility_from_md(gb_mobility, temperature.value)
    q = gb_mobility.get_quantity('gb_activation_energy', 'eV')
    temperature_ln_std = abs(q.value) * (temperature.std or 0.0) / (kt * temperature.value)
    ln_std = math.sqrt(fit_ln_std**2 + temperature_ln_std**2 + reduction_ln_std**2)
    mobility = md_value * factor
    where = (
        f'extrapolated {extrapolation["distance_kelvin"]:.0f} K outside the simulated '
        f'{extrapolation["simulated_range_kelvin"][0]:g}-{extrapolation["simulated_range_kelvin"][1]:g} K '
        f'({extrapolation["relative_distance_inverse_temperature"]:.2g} x the fitted 1/T range), the std grown with '
        'the distance from the fit covariance'
        if extrapolation['extrapolated']
        else 'inside the simulated temperature range'
    )
    quantities['gb_mobility'] = {
        'value': mobility,
        'unit': 'm**4/(J*s)',
        'std': ln_std * mobility,
        'note': f"computed: the MD rung's Arrhenius fit M0 exp(-Q/kT) at T, {where}, times mobility_reduction "
        f'({factor:g}); std in ln units: fit {fit_ln_std:.3g}, T {temperature_ln_std:.2g}, reduction '
        f'{reduction_ln_std:.3g}',
    }
    m0 = gb_mobility.get_quantity('gb_mobility_prefactor', 'm**4/(J*s)')
    quantities['mobility_prefactor'] = {
        'value': m0.value * factor,
        'unit': 'm**4/(J*s)',
        'std': math.hypot((m0.std or 0.0) / m0.value, reduction_ln_std) * m0.value * factor,
        'note': f'computed: M0 of the MD Arrhenius fit times mobility_reduction ({factor:g}); correlated with Q, so '
        'gb_mobility (with the fit covariance) is what the phase field uses',
    }
    quantities['activation_energy'] = {
        'value': q.value,
        'unit': 'eV',
        'std': q.std,
        'note': 'computed: Q of the MD Arrhenius fit (pure metal, one boundary)',
    }
    metadata['mobility_source'] = 'md'
    metadata['gb_mobility_budget'] = {
        'md_fit_ln_std': fit_ln_std,
        'temperature_ln_std': temperature_ln_std,
        'mobility_reduction_ln_std': reduction_ln_std,
        'md_mobility_uuid': gb_mobility.uuid,
    }
    metadata['extrapolation'] = extrapolation
    return quantities, metadata


@calcfunction
def md_to_mesoscale(
    md_properties: HandoffData,
    assumptions: HandoffData,
    potential_check: HandoffData = None,
    gb_mobility: HandoffData = None,
):
    """Hand sigma_GB and M(T) (MD) with the assumed T, anneal time and starting grain size to the phase field, in SI
    units (eV for Q).

    Checks: 0 < sigma_GB <= :data:`MAX_GB_ENERGY`; T, the anneal time, the starting grain size and M0 > 0, Q >= 0
    (assumed); the mobility either from MD (``gb_mobility``, the MD rung's output) or by hand, never both.

    Uncertainty, first order:

    * sigma_GB: the MD std if given, combined with ``sigma * rms(relative errors of the potential vs DFT)`` when
      ``potential_check`` is given: the potential's misfit to DFT is taken as its uncertainty for the GB energy.
    * ``gb_mobility`` from MD: ``ln M`` is the uncertain quantity (no negative mobility inside one sigma); its std
      combines the fit covariance at T (:func:`mobility_from_md`), T's own std through Q/kT^2, and the std of
      ``mobility_reduction`` (in ln units).  By hand: ``(std_M/M)^2 = (std_M0/M0)^2 + (std_Q/kT)^2 + (Q std_T/kT^2)^2``.
    """
    if 'gb_energy' not in md_properties:
        return bridge_exit_code('ERROR_MD_TO_MESOSCALE_GB_ENERGY', f'no gb_energy in {md_properties.names}')
    sigma = md_properties.get_quantity('gb_energy', 'J/m**2')
    if not 0 < sigma.value <= MAX_GB_ENERGY:
        return bridge_exit_code(
            'ERROR_MD_TO_MESOSCALE_GB_ENERGY',
            f'sigma_GB = {sigma.value:.4g} J/m^2 is outside (0, {MAX_GB_ENERGY}] J/m^2',
        )

    by_hand = [name for name in ASSUMED_MOBILITY if name in assumptions]
    needed = list(REQUIRED_ASSUMPTIONS) + (list(ASSUMED_MOBILITY) if gb_mobility is None else [])
    missing = [name for name in needed if name not in assumptions]
    if missing:
        hint = ' (no MD mobility was given, so M0 and Q must be assumed)' if gb_mobility is None else ''
        return bridge_exit_code('ERROR_MD_TO_MESOSCALE_ASSUMPTIONS', f'missing assumed quantities {missing}{hint}')
    if gb_mobility is not None and by_hand:
        return bridge_exit_code(
            'ERROR_MD_TO_MESOSCALE_ASSUMPTIONS',
            f'the mobility is given twice: computed by MD (gb_mobility) and by hand ({", ".join(by_hand)}); drop the '
            'assumed M0 and Q, or switch the MD mobility stage off (parameters.mobility.compute = false)',
        )
    assumed = {
        name: assumptions.get_quantity(name, unit) for name, unit in ASSUMPTION_UNITS.items() if name in assumptions
    }
    temperature = assumed['temperature']
    bad = [
        f'{name} = {quantity.value:.4g} {ASSUMPTION_UNITS[name]}'
        for name, quantity in assumed.items()
        if not (quantity.value >= 0 if name == 'activation_energy' else quantity.value > 0)
    ]
    if bad:
        return bridge_exit_code(
            'ERROR_MD_TO_MESOSCALE_ASSUMPTIONS', ', '.join(bad) + ' (must be > 0; the activation energy >= 0)'
        )

    relative_potential, error_names = relative_potential_error(potential_check)
    sigma_std = math.sqrt((sigma.std or 0.0) ** 2 + (relative_potential * sigma.value) ** 2)
    sigma_note = 'MD Sigma5(310)[001] bicrystal'
    if error_names:
        sigma_note += f'; std includes the potential misfit to DFT, rms of {", ".join(error_names)}'

    quantities = {'gb_energy': {'value': sigma.value, 'unit': 'J/m**2', 'std': sigma_std or None, 'note': sigma_note}}
    mobility_quantities, mobility_metadata = _interface_mobility(gb_mobility, assumed, temperature)
    quantities.update(mobility_quantities)
    for name, quantity in assumed.items():
        if name == 'mobility_reduction' and gb_mobility is None:
            continue  # M0 and Q by hand already stand for the material: the reduction applies to the MD mobility only
        quantities[name] = {
            'value': quantity.value,
            'unit': ASSUMPTION_UNITS[name],
            'std': quantity.std,
            'note': quantity.note,
        }
    metadata = {
        'md': md_properties.metadata,
        'potential_relative_error_rms': relative_potential,
        'boltzmann_constant_ev_per_k': BOLTZMANN_EV,
        'checks': {'gb_energy_positive': 'passed', 'assumptions_positive': 'passed'},
        **mobility_metadata,
    }
    return {
        'interface': HandoffData(
            quantities, bridge='md_to_mesoscale', from_scale='md', to_scale='mesoscale', metadata=metadata
        )
    }
