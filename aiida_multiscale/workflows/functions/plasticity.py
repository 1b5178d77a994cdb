"""Calcfunctions of the crystal-plasticity RVE: per-grain slip resistance, the MOOSE input, and the yield analysis.

Each is a calcfunction so that the graph shows which assumptions (Hall-Petch, Kalidindi hardening, with their
sources), which grain map and which elastic constants every number came from.  Stresses are handed on in Pa (as the
elastic RVE hands on its moduli); inside MOOSE they are MPa (:data:`~aiida_multiscale.engines.moose.plasticity.
STRESS_UNIT`).
"""

from __future__ import annotations

import io
import math

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose import plasticity as cp
from aiida_multiscale.engines.moose.rve import rve_mesh_shape
from aiida_multiscale.engines.moose.solid_mechanics import element_grain_map
from aiida_multiscale.physics.plasticity import (
    crystal_loading_directions,
    hall_petch_slip_resistance,
    mesh_discretisation_error,
    sachs_taylor_yield,
    schmid_factors,
)
from aiida_multiscale.workflows.functions.parameters import check_parameter_ranges, fill_defaults
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = (
    'ASSUMPTION_UNITS',
    'DEFAULT_PARAMETERS',
    'TAYLOR_ACTIVE_SYSTEMS',
    'cp_rve_analysis',
    'cp_rve_input',
    'equivalent_circle_diameters',
    'grain_slip_resistance',
    'make_plasticity_assumptions',
    'plasticity_parameters',
    'rate_factors',
    'reported_flow_strain',
    'resolve_assumptions',
    'validate_plasticity_assumptions',
    'validate_plasticity_parameters',
)

#: The assumed inputs of the model, and the unit each is used in.
ASSUMPTION_UNITS = {
    'friction_stress': 'MPa',
    'hall_petch_coefficient': 'MPa*m**0.5',
    'taylor_factor_random': 'dimensionless',
    'hardening_modulus': 'MPa',
    'saturation_strength': 'MPa',
    'hardening_exponent': 'dimensionless',
    'rate_sensitivity': 'dimensionless',
    'reference_slip_rate': '1/s',
    'latent_hardening_ratio': 'dimensionless',
}
#: Every key of ``parameters`` with its default (the protocol's ``default_inputs.parameters``).
DEFAULT_PARAMETERS = dict(load_protocol_file('plasticity')['default_inputs']['parameters'])
#: Open/closed ranges of the numeric parameters: (low, high), low excluded, high included.
_RANGES = {
    'strain': (0.0, 0.2),
    'strain_rate': (0.0, 1e3),
    'steps': (0, 100_000),
    'mesh_scale': (0.0, 4.0),
    'layers': (0, 8),
    'tau_c_resolution': (0.0, 100.0),
    'flow_strain': (0.0, 0.2),
}
#: What an out-of-range value of these keys means, appended to the message.
_RANGE_HINTS = {
    'strain': ': a tensile test needs a positive final strain F11 - 1',
    'strain_rate': ': the loading rate d(F11)/dt in 1/s must be positive',
}
#: Slip systems that share the strain rate of a grain in Taylor's estimate: five, the fewest that give an arbitrary
#: isochoric strain rate (von Mises), and the number Taylor's linear programme activates for a general orientation.
TAYLOR_ACTIVE_SYSTEMS = 5


# ------------------------------------------------------------------------------------------------ assumptions
def resolve_assumptions(entries: dict) -> dict:
    """Quantities ``{name: {value, unit, std, note}}`` from the protocol's assumptions of one element.

    ``ln_std`` (the uncertainty of ``ln(value)``) becomes ``std = ln_std x value`` (first order); every note is
    ``assumed; source: ...``.
    """
    quantities = {}
    for name, entry in entries.items():
        entry = dict(entry)
        source = entry.pop('source', None) or 'user input'
        std = entry.get('std')
        if entry.get('ln_std') is not None:
            std = entry['ln_std'] * entry['value']
            source = f'{source}; std = {entry["ln_std"]} x value (ln std {entry["ln_std"]})'
        note = f'assumed; source: {source}'
        quantities[name] = {'value': entry['value'], 'unit': entry['unit'], 'std': std, 'note': note}
    return quantities


def make_plasticity_assumptions(element: str, entries: dict | None = None) -> HandoffData:
    """The ``assumptions`` HandoffData of ``element`` (not stored): the protocol's, or ``entries`` in its format."""
    if entries is None:
        stored = load_protocol_file('plasticity')['default_inputs']['assumptions']
        if element not in stored:
            raise ValueError(
                f'no stored crystal-plasticity assumptions for {element!r} (plasticity.yaml has {sorted(stored)}): '
                'give them as `assumptions` (a HandoffData with ' + ', '.join(ASSUMPTION_UNITS) + ')'
            )
        entries = stored[element]
    return HandoffData(
        resolve_assumptions(entries),
        producer='assumption',
        from_scale='user',
        to_scale='fem',
        metadata={'element': element, 'protocol_file': 'plasticity.yaml'},
    )


def validate_plasticity_assumptions(node, _=None) -> str | None:
    """Every assumption present, in a unit convertible to the one it is used in, and in its physical range."""
    if node is None:
        return None
    missing = [name for name in ASSUMPTION_UNITS if name not in node]
    if missing:
        return f'assumptions: missing {missing}; give each with value, unit, std and source note'
    values = {}
    for name, unit in ASSUMPTION_UNITS.items():
        try:
            values[name] = node.value(name, unit)
        except Exception as exc:  # pint raises several types for incompatible units
            return f'assumptions: {name} must be convertible to {unit}: {exc}'
    for name in ('friction_stress', 'hall_petch_coefficient', 'hardening_modulus', 'latent_hardening_ratio'):
        if values[name] < 0:
            return f'assumptions: {name} = {values[name]} {ASSUMPTION_UNITS[name]} must be >= 0'
    for name in ('taylor_factor_random', 'saturation_strength', 'hardening_exponent', 'reference_slip_rate'):
        if not values[name] > 0:
            return f'assumptions: {name} = {values[name]} {ASSUMPTION_UNITS[name]} must be > 0'
    if not 0 < values['rate_sensitivity'] <= 1:
        return f'assumptions: rate_sensitivity = {values["rate_sensitivity"]} must be in (0, 1]'
    return None


# ------------------------------------------------------------------------------------------------- parameters
def plasticity_parameters(node: orm.Dict | dict | None) -> dict:
    """The ``parameters`` (a Dict, a dict or None) with the defaults filled in."""
    return fill_defaults(node, DEFAULT_PARAMETERS)


def validate_plasticity_parameters(node, _=None) -> str | None:
    """Only known keys, each in its range (a port validator: returns the message, or None)."""
    if node is None:
        return None
    values = node.get_dict() if isinstance(node, orm.Dict) else dict(node)
    error = check_parameter_ranges(values, DEFAULT_PARAMETERS, _RANGES, _RANGE_HINTS)
    if error:
        return error
    for key in ('steps', 'layers'):
        if key in values and values[key] != int(values[key]):
            return f'parameters: {key} = {values[key]!r} must be a whole number'
    return None


def limited_mesh_scale(grid_shape, mesh_scale: float, max_elements: int) -> float:
    """``mesh_scale`` lowered (never raised) so that a map of ``grid_shape`` gives at most ``max_elements`` per layer.

    Rounded down to 1e-3, so that rounding the mesh up cannot cross the limit by more than one row.
    """
    ny, nx = grid_shape
    limit = math.sqrt(max_elements / (nx * ny))
    return min(float(mesh_scale), math.floor(limit * 1000) / 1000) if mesh_scale > limit else float(mesh_scale)


@calcfunction
def limit_mesh_scale(parameters: orm.Dict, microstructure: MicrostructureData, max_elements: orm.Int):
    """The ``parameters`` with ``mesh_scale`` lowered to the element budget for this map (a node of the graph)."""
    values = plasticity_parameters(parameters)
    values['mesh_scale'] = limited_mesh_scale(microstructure.grid_shape, values['mesh_scale'], max_elements.value)
    return orm.Dict(values)


# --------------------------------------------------------------------------------------------- slip resistance
def equivalent_circle_diameters(microstructure: MicrostructureData) -> np.ndarray:
    """Each grain's equivalent-circle diameter ``sqrt(4 A_i / pi)`` in m, from its area (pixels x pixel area)."""
    return np.sqrt(4.0 * microstructure.grain_areas / math.pi)


@calcfunction
def grain_slip_resistance(microstructure: MicrostructureData, assumptions: HandoffData, parameters: orm.Dict):
    """Per-grain initial slip resistance ``tau_c,i = sigma_0 / M + (k / M) / sqrt(d_i)`` (Hall-Petch, slip level).

    ``d_i`` is the grain's own equivalent-circle diameter, so small grains start harder; ``M`` the random-texture
    Taylor factor that turns the polycrystal's Hall-Petch law into the slip system's.  The values MOOSE uses are
    rounded to ``tau_c_resolution`` (MPa), which groups grains into few material blocks; both arrays are kept, and
    the bounds of the analysis use the rounded ones, the model's own.
    """
    values = plasticity_parameters(parameters)
    taylor = assumptions.value('taylor_factor_random', 'dimensionless')
    tau0 = assumptions.value('friction_stress', 'Pa') / taylor
    k_tau = assumptions.value('hall_petch_coefficient', 'Pa*m**0.5') / taylor
    sizes = equivalent_circle_diameters(microstructure)
    # A grain id without pixels (absent from the map) has no size: give it the friction stress alone; it has no
    # element, so it changes nothing.
    present = sizes > 0
    tau_c = np.full(sizes.shape, tau0)
    tau_c[present] = hall_petch_slip_resistance(tau0, k_tau, sizes[present])
    resolution = values['tau_c_resolution'] * 1e6  # Pa
    rounded = np.maximum(np.round(tau_c / resolution), 1) * resolution
    array = orm.ArrayData()
    array.set_array('tau_c', rounded)
    array.set_array('tau_c_exact', tau_c)
    array.set_array('grain_size', sizes)
    array.base.attributes.set('units', {'tau_c': 'Pa', 'tau_c_exact': 'Pa', 'grain_size': 'm'})
    array.base.attributes.set('tau0_pa', tau0)
    array.base.attributes.set('k_tau_pa_sqrt_m', k_tau)
    return array


# ------------------------------------------------------------------------------------------------- MOOSE input
def _hardening(assumptions: HandoffData) -> dict:
    return {
        'h': assumptions.value('hardening_modulus', cp.STRESS_UNIT),
        't_sat': assumptions.value('saturation_strength', cp.STRESS_UNIT),
        'gss_a': assumptions.value('hardening_exponent', 'dimensionless'),
        'r': assumptions.value('latent_hardening_ratio', 'dimensionless'),
    }


def build_model(microstructure, elastic, slip_resistance, assumptions, parameters) -> cp.CpRveModel:
    """The :class:`~aiida_multiscale.engines.moose.plasticity.CpRveModel` of the inputs (not a calcfunction)."""
    values = plasticity_parameters(parameters)
    return cp.build_cp_rve_input(
        microstructure.grain_ids,
        microstructure.euler_angles,
        *(elastic.value(name, cp.STRESS_UNIT) for name in ('c11', 'c12', 'c44')),
        slip_resistance.get_array('tau_c') / 1e6,  # MPa
        hardening=_hardening(assumptions),
        strain=values['strain'],
        strain_rate=values['strain_rate'],
        steps=int(values['steps']),
        mesh_scale=values['mesh_scale'],
        layers=int(values['layers']),
        a0=assumptions.value('reference_slip_rate', '1/s'),
        xm=assumptions.value('rate_sensitivity', 'dimensionless'),
    )


@calcfunction
def cp_rve_input(
    microstructure: MicrostructureData,
    elastic: HandoffData,
    slip_resistance: orm.ArrayData,
    assumptions: HandoffData,
    parameters: orm.Dict,
):
    """The MOOSE input, the per-element Euler angles and the slip-system file of the crystal-plasticity RVE."""
    model = build_model(microstructure, elastic, slip_resistance, assumptions, parameters)
    outputs = {'input_file': orm.SinglefileData(io.BytesIO(model.input_text.encode()), filename='cp_rve.i')}
    outputs['euler_angles'] = orm.SinglefileData(io.BytesIO(model.files[cp.EULER_FILE]), filename=cp.EULER_FILE)
    outputs['slip_systems'] = orm.SinglefileData(
        io.BytesIO(model.files[cp.SLIP_SYSTEMS_FILE]), filename=cp.SLIP_SYSTEMS_FILE
    )
    return outputs


# ----------------------------------------------------------------------------------------------------- analysis
def element_fractions(microstructure: MicrostructureData, values: dict) -> np.ndarray:
    """Each grain's fraction of the RVE's elements (its area fraction in the mesh, 0 for a grain the mesh misses)."""
    nx, ny, _ = rve_mesh_shape(microstructure.grid_shape, values['mesh_scale'], int(values['layers']))
    elements = element_grain_map(microstructure.grain_ids, nx, ny)
    return np.bincount(elements.ravel(), minlength=microstructure.grain_count) / elements.size


def reported_flow_strain(flow_strain: float, strain) -> float:
    """The strain of the reported flow stress: ``flow_strain`` if the run reached it (up to round-off), else its last.

    MOOSE's last ``F11 - 1`` of a ramp to 0.005 is 0.004999999999999893: that is the asked-for strain, not a run that
    ended early.  The tolerance is :func:`~aiida_multiscale.engines.moose.plasticity.flow_curve_analysis`'s.
    """
    last = float(np.asarray(strain)[-1])
    return float(flow_strain) if last >= flow_strain * (1 - 1e-9) else last


def rate_factors(euler, taylor_factors, strain_rate: float, a0: float, xm: float) -> tuple[np.ndarray, np.ndarray]:
    """Per grain, the Kalidindi flow rule's steady stress over its rate-independent one: Sachs and Taylor grains.

    The Sachs and Taylor estimates are rate-independent (a grain slips at ``tau = tau_c``); the flow rule
    ``gamma_dot = a0 |tau / g|^(1/xm)`` makes a system carry its slip rate at ``tau = g (gamma_dot / a0)^xm``, which
    is ``tau_c`` only when ``gamma_dot = a0``.  So each estimate is multiplied, grain by grain, by the factor of its
    own slip rate (:func:`~aiida_multiscale.engines.moose.plasticity.rate_sensitivity_factor`,
    ``(eps_dot / (N m a0))^xm``):

    * a Sachs grain slips on its ``N`` systems of highest Schmid factor ``m`` (ties within 1e-6), each at
      ``eps_dot / (N m)``;
    * a Taylor grain shears ``sum |gamma_dot| = M eps_dot`` in all, shared by :data:`TAYLOR_ACTIVE_SYSTEMS` systems:
      the same formula with ``m = 1 / M`` and ``N = 5``.

    For a small ``xm`` (0.012 for Cu) the factors are within a few per cent of 1, but without them the comparison
    of the rate-dependent model with the rate-independent bounds would be off by as much at the bounds themselves.
    """
    directions = crystal_loading_directions(euler)
    factors = schmid_factors(directions)
    highest = factors.max(axis=1)
    ties = np.sum(np.isclose(factors, highest[:, None], rtol=1e-6), axis=1)
    sachs = np.array([cp.rate_sensitivity_factor(strain_rate, a0, xm, m, int(n)) for m, n in zip(highest, ties)])
    n_taylor = TAYLOR_ACTIVE_SYSTEMS
    taylor = np.array([cp.rate_sensitivity_factor(strain_rate, a0, xm, 1.0 / big, n_taylor) for big in taylor_factors])
    return sachs, taylor


@calcfunction
def cp_rve_analysis(
    postprocessors: orm.ArrayData,
    microstructure: MicrostructureData,
    slip_resistance: orm.ArrayData,
    assumptions: HandoffData,
    parameters: orm.Dict,
):
    """Yield strength, flow stress and Taylor factor of the RVE, with the Sachs and Taylor estimates of its grains.

    * ``yield_strength``: 0.2 % offset of the Cauchy flow curve, with E the secant of the first (elastic) step.
    * ``flow_stress``: the stress at ``flow_strain`` (or at the last strain of the run, if it ends before; the note
      says which).
    * ``taylor_factor``: the RVE's yield over its element-weighted mean ``tau_c``: what a Taylor factor of a
      full-field model means, to compare with 3.06 for random fcc (a few grains are far from random).
    * ``yield_strength_sachs``, ``yield_strength_taylor``: the weighted means of ``tau_c,i / m_i`` and
      ``M_i tau_c,i`` (:func:`~aiida_multiscale.physics.plasticity.sachs_taylor_yield`, separate code, no MOOSE), for
      the same orientations, the same (rounded) ``tau_c`` and the grains' element fractions as weights, each grain
      times its flow rule's rate factor (:func:`rate_factors`), so that the rate-dependent model and the
      rate-independent bounds compare like with like.

    Every stress in Pa.  The flow curve (engineering strain, true stress in Pa, and the PK1 stress) is an ArrayData.
    """
    values = plasticity_parameters(parameters)
    series = {name: postprocessors.get_array(name) for name in postprocessors.get_arraynames()}
    strain, stress = cp.flow_curve(series)
    _, nominal = cp.flow_curve(series, 'pk1')
    flow_strain = reported_flow_strain(values['flow_strain'], strain)
    analysis = cp.flow_curve_analysis(strain, stress, flow_strain=flow_strain)
    to_pa = 1e6  # MPa -> Pa
    tau_c = slip_resistance.get_array('tau_c')
    weights = element_fractions(microstructure, values)
    euler = microstructure.euler_angles
    bounds = sachs_taylor_yield(euler, tau_c, weights=weights)
    strain_rate = values['strain_rate']
    a0 = assumptions.value('reference_slip_rate', '1/s')
    xm = assumptions.value('rate_sensitivity', 'dimensionless')
    sachs_rate, taylor_rate = rate_factors(euler, bounds['taylor_factors'], strain_rate, a0, xm)
    w = weights / weights.sum()
    sachs = float(w @ (tau_c * bounds['sachs_factors'] * sachs_rate))
    taylor = float(w @ (tau_c * bounds['taylor_factors'] * taylor_rate))
    tau_mean = float(w @ tau_c)
    yield_strength = analysis['yield_strength'] * to_pa
    nx, ny, nz = rve_mesh_shape(microstructure.grid_shape, values['mesh_scale'], int(values['layers']))
    elements_per_grain = nx * ny / microstructure.grain_count
    mesh_error = mesh_discretisation_error(elements_per_grain)
    setup = (
        f'periodic crystal-plasticity RVE of {microstructure.grain_count} grains (columnar, {nx} x {ny} x {nz} HEX8), '
        f'uniaxial stress along x at {strain_rate:g} 1/s to {values["strain"]:g} in {int(values["steps"])} steps, '
        'Kalidindi flow rule and hardening (MOOSE); one mesh, not converged: '
        f'{elements_per_grain:.3g} elements per grain, discretisation error about {mesh_error:.1%} '
        '(physics.plasticity.mesh_discretisation_error); std not given here: fem_to_macro adds that and the stored '
        "assumptions' terms"
    )
    flow_note = (
        f'true stress at strain {flow_strain:g}'
        + ('' if flow_strain == values['flow_strain'] else f' (the run ends before {values["flow_strain"]:g})')
        + f', {setup}'
    )
    quantities = {
        'yield_strength': {
            'value': yield_strength,
            'unit': 'Pa',
            'std': None,
            'note': f'0.2 % offset yield of the true stress-strain curve, E from the first step, {setup}',
        },
        'flow_stress': {'value': analysis['flow_stress'] * to_pa, 'unit': 'Pa', 'std': None, 'note': flow_note},
        'youngs_modulus': {
            'value': analysis['youngs_modulus'] * to_pa,
            'unit': 'Pa',
            'std': None,
            'note': f'secant of the first (elastic) step, {setup}',
        },
        'taylor_factor': {
            'value': yield_strength / tau_mean,
            'unit': 'dimensionless',
            'std': None,
            'note': 'yield strength over the element-weighted mean initial slip resistance tau_c of the RVE',
        },
        'yield_strength_sachs': {
            'value': sachs,
            'unit': 'Pa',
            'std': None,
            'note': 'Sachs estimate (weighted mean of tau_c / m, single slip) of the same orientations and tau_c, '
            "times each grain's Kalidindi rate factor (eps_dot / (N m a0))^xm; physics.plasticity, no MOOSE",
        },
        'yield_strength_taylor': {
            'value': taylor,
            'unit': 'Pa',
            'std': None,
            'note': 'Taylor estimate (weighted mean of M tau_c, full constraints) of the same orientations and tau_c, '
            f"times each grain's Kalidindi rate factor (M eps_dot / ({TAYLOR_ACTIVE_SYSTEMS} a0))^xm; "
            'physics.plasticity, no MOOSE',
        },
    }
    result = HandoffData(
        quantities,
        producer='cp_rve_analysis',
        from_scale='fem',
        to_scale='fem',
        metadata={
            'yield_strain': analysis['yield_strain'],
            'flow_strain': flow_strain,
            'tau_c_mean_pa': tau_mean,
            'sachs_factor': bounds['sachs_factor'],
            'taylor_factor_taylor': bounds['taylor_factor'],
            'yield_strength_sachs_rate_independent_pa': bounds['yield_strength_sachs'],
            'yield_strength_taylor_rate_independent_pa': bounds['yield_strength_taylor'],
            'grain_fractions': weights.tolist(),
            'mesh': [nx, ny, nz],
            'elements_per_grain': elements_per_grain,
            'discretisation_relative_error': mesh_error,
            'strain_rate_per_s': strain_rate,
        },
    )
    curve = orm.ArrayData()
    curve.set_array('strain', strain)
    curve.set_array('stress', stress * to_pa)
    curve.set_array('stress_pk1', nominal * to_pa)
    curve.base.attributes.set('units', {'strain': 'dimensionless (F11 - 1)', 'stress': 'Pa', 'stress_pk1': 'Pa'})
    return {'plasticity': result, 'flow_curve': curve}
