"""Bridge MD -> mesoscale: sigma_GB from MD plus the assumed mobility and anneal, as phase-field ``interface`` input."""

from __future__ import annotations

import math

from aiida.engine import calcfunction

from aiida_multiscale.bridges import bridge_exit_code
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.physics.grain_growth import arrhenius_mobility_and_std
from aiida_multiscale.physics.units import BOLTZMANN_EV

__all__ = (
    'ASSUMPTION_UNITS',
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
    'temperature': 'K',
    'anneal_time': 's',
    'initial_grain_size': 'm',
}


def make_assumptions(values: dict) -> HandoffData:
    """Build the ``assumptions`` HandoffData from ``{name: {value, unit, std, source or note}}`` (not stored).

    Each note starts with "assumed" and names the source, so the provenance graph shows the numbers as assumptions.
    """
    quantities = {}
    for name in ASSUMPTION_UNITS:
        if name not in values:
            raise ValueError(f'assumptions: {name!r} is missing; give value, unit, std and source')
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


@calcfunction
def md_to_mesoscale(md_properties: HandoffData, assumptions: HandoffData, potential_check: HandoffData = None):
    """Hand sigma_GB (MD) and the assumed M0, Q, T, anneal time and starting grain size to the phase field, in SI
    units (eV for Q).

    Checks: 0 < sigma_GB <= :data:`MAX_GB_ENERGY`; M0, T, the anneal time and the starting grain size > 0, Q >= 0.

    Uncertainty, first order:

    * sigma_GB: the MD std if given, combined with ``sigma * rms(relative errors of the potential vs DFT)`` when
      ``potential_check`` is given: the potential's misfit to DFT is taken as its uncertainty for the GB energy.
    * ``gb_mobility = M0 exp(-Q / kT)``: ``(std_M/M)^2 = (std_M0/M0)^2 + (std_Q/kT)^2 + (Q std_T / kT^2)^2``.  M0 is
      uncertain by orders of magnitude (MD gives Q near 0.2-0.3 eV, experiment is far slower because of solute
      drag), which makes this the weakest handoff of the chain; first order understates a lognormal spread.
    """
    if 'gb_energy' not in md_properties:
        return bridge_exit_code('ERROR_MD_TO_MESOSCALE_GB_ENERGY', f'no gb_energy in {md_properties.names}')
    sigma = md_properties.get_quantity('gb_energy', 'J/m**2')
    if not 0 < sigma.value <= MAX_GB_ENERGY:
        return bridge_exit_code(
            'ERROR_MD_TO_MESOSCALE_GB_ENERGY',
            f'sigma_GB = {sigma.value:.4g} J/m^2 is outside (0, {MAX_GB_ENERGY}] J/m^2',
        )

    missing = [name for name in ASSUMPTION_UNITS if name not in assumptions]
    if missing:
        return bridge_exit_code('ERROR_MD_TO_MESOSCALE_ASSUMPTIONS', f'missing assumed quantities {missing}')
    assumed = {name: assumptions.get_quantity(name, unit) for name, unit in ASSUMPTION_UNITS.items()}
    m0, q, temperature = (assumed[name] for name in ('mobility_prefactor', 'activation_energy', 'temperature'))
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

    mobility, relative_mobility = arrhenius_mobility_and_std(
        m0.value, q.value, temperature.value,
        prefactor_std=m0.std, activation_energy_std=q.std, temperature_std=temperature.std,
    )  # fmt: skip

    quantities = {
        'gb_energy': {'value': sigma.value, 'unit': 'J/m**2', 'std': sigma_std or None, 'note': sigma_note},
        'gb_mobility': {
            'value': mobility,
            'unit': 'm**4/(J*s)',
            'std': relative_mobility * mobility,
            'note': 'M0 exp(-Q/kT) with the assumed M0, Q at T; first-order std (orders of magnitude: see M0)',
        },
    }
    for name, quantity in assumed.items():
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
    }
    return {
        'interface': HandoffData(
            quantities, bridge='md_to_mesoscale', from_scale='md', to_scale='mesoscale', metadata=metadata
        )
    }
