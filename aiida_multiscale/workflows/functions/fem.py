"""The FEM rung's calcfunctions: the MOOSE input from the grain map and the Cij, the moduli, the stress map."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.exodus import read_element_variables
from aiida_multiscale.engines.moose.solid_mechanics import STRESS_UNIT, build_elasticity_input, element_grain_map
from aiida_multiscale.physics import elasticity as mechanics
from aiida_multiscale.physics.units import factor
from aiida_multiscale.workflows.functions.png import figure_node
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = (
    'cubic_constants',
    'default_parameters',
    'fem_input',
    'fem_mechanics',
    'fem_stress_map',
    'fem_summary',
    'flow_curve_plot',
    'parameters_with_defaults',
    'validate_elastic',
)


def default_parameters() -> dict:
    """Every key of the ``parameters`` input with its default: the protocol file's ``default_inputs.parameters``."""
    return load_protocol_file('fem')['default_inputs']['parameters']


def parameters_with_defaults(node: orm.Dict | dict | None) -> dict:
    """The ``parameters`` (a Dict, a dict or None) with the defaults filled in."""
    values = default_parameters()
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def cubic_constants(elastic: HandoffData, unit: str) -> tuple[float, float, float]:
    """``(c11, c12, c44)`` of ``elastic`` in ``unit``."""
    return tuple(elastic.value(name, unit) for name in ('c11', 'c12', 'c44'))


def validate_elastic(node, _):
    """c11, c12 and c44 present, in a pressure unit, and Born-stable."""
    if node is None:
        return None
    missing = [name for name in ('c11', 'c12', 'c44') if name not in node]
    if missing:
        return f'elastic: quantities {missing} are missing; it needs c11, c12 and c44 (cubic, any pressure unit)'
    try:
        constants = cubic_constants(node, STRESS_UNIT)
    except Exception as exc:  # pint raises several types for incompatible units
        return f'elastic: c11, c12 and c44 must be pressures (e.g. GPa, Pa): {exc}'
    errors = mechanics.born_stability_violations(*constants)
    if errors:
        return f'elastic: the elastic constants ({STRESS_UNIT}) are not Born-stable: ' + '; '.join(errors)


@calcfunction
def fem_input(microstructure: MicrostructureData, elastic: HandoffData, parameters: orm.Dict):
    """Render the MOOSE input and the per-element Euler angles (the graph shows which Cij and map they came from)."""
    values = parameters_with_defaults(parameters)
    model = build_elasticity_input(
        microstructure.grain_ids,
        microstructure.euler_angles,
        *cubic_constants(elastic, STRESS_UNIT),
        applied_strain=values['applied_strain'],
        mesh_scale=values['mesh_scale'],
        thickness=values['thickness'],
    )
    outputs = {'input_file': orm.SinglefileData(io.BytesIO(model.input_text.encode()), filename='elasticity.i')}
    for name, content in model.files.items():
        outputs['euler_angles'] = orm.SinglefileData(io.BytesIO(content), filename=name)
    return outputs


@calcfunction
def fem_mechanics(output_parameters: orm.Dict, microstructure: MicrostructureData, elastic: HandoffData):
    """E_eff, nu_eff and the stress concentration from the MOOSE averages; Voigt/Reuss/Hill of the same grains."""
    pps = output_parameters['postprocessors']
    stress = pps['average_stress_xx']  # in the model's STRESS_UNIT
    strain = pps['average_strain_xx']
    youngs = stress / strain * factor(STRESS_UNIT, 'Pa')
    poisson = -pps['average_strain_yy'] / strain
    concentration = pps['max_vonmises'] / stress
    # The bounds from the Cij as handed over (Pa): the averages are linear in the Cij, so no unit round trip.
    bounds = mechanics.voigt_reuss_hill(
        *cubic_constants(elastic, 'Pa'), microstructure.euler_angles, microstructure.area_fractions
    )
    n = microstructure.grain_count
    setup = f'{n} grains, thin 3-D slab, uniaxial tension along x by grips (MOOSE, ComputeElasticityTensorCP)'
    bound_note = f'{n} grains, area-weighted, loading along x; computed in Python from the rotated Cij (not MOOSE)'
    quantities = {
        'youngs_modulus': {
            'value': youngs,
            'unit': 'Pa',
            'std': None,
            'note': f'FEM <sigma_xx>/<eps_xx>, {setup}; discretisation error not estimated',
        },
        'poisson_ratio': {
            'value': poisson,
            'unit': 'dimensionless',
            'std': None,
            'note': f'FEM -<eps_yy>/<eps_xx> (in-plane), {setup}',
        },
        'youngs_modulus_voigt': {
            'value': bounds['youngs_modulus_voigt'],
            'unit': 'Pa',
            'std': None,
            'note': f'Voigt (uniform strain, upper bound), {bound_note}',
        },
        'youngs_modulus_reuss': {
            'value': bounds['youngs_modulus_reuss'],
            'unit': 'Pa',
            'std': None,
            'note': f'Reuss (uniform stress, lower bound), {bound_note}',
        },
        'youngs_modulus_hill': {
            'value': bounds['youngs_modulus_hill'],
            'unit': 'Pa',
            'std': None,
            'note': f'Hill (mean of Voigt and Reuss), {bound_note}',
        },
        'poisson_ratio_hill': {
            'value': bounds['poisson_ratio_hill'],
            'unit': 'dimensionless',
            'std': None,
            'note': f'Hill estimate of nu_xy, {bound_note}',
        },
        'stress_concentration': {
            'value': concentration,
            'unit': 'dimensionless',
            'std': None,
            'note': 'peak element von Mises stress / applied stress <sigma_xx>; mesh-dependent '
            '(grain-boundary triple points, grips)',
        },
    }
    return HandoffData(
        quantities,
        producer='fem_mechanics',
        from_scale='fem',
        to_scale='fem',
        metadata={'c11_c12_c44_GPa': list(cubic_constants(elastic, 'GPa')), 'grain_count': int(n)},
    )


@calcfunction
def fem_stress_map(exodus: orm.SinglefileData, microstructure: MicrostructureData, parameters: orm.Dict):
    """PNG of the von Mises stress over the applied stress, grain boundaries drawn on top."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    with exodus.open(mode='rb') as handle:
        values = read_element_variables(handle.read(), ('vonmises', 'stress_xx'))
    vonmises, stress_xx = values['vonmises'], values['stress_xx']
    ny, nx = microstructure.grid_shape
    scale = parameters_with_defaults(parameters)['mesh_scale']
    nx_el, ny_el = max(1, round(nx * scale)), max(1, round(ny * scale))
    grains = element_grain_map(microstructure.grain_ids, nx_el, ny_el)
    ratio = (vonmises / stress_xx.mean()).reshape(ny_el, nx_el)
    lx, ly = (length * factor('m', 'um') for length in microstructure.domain_size)
    figure, axes = plt.subplots(figsize=(6, 5 * ly / lx + 0.5))
    image = axes.imshow(ratio, origin='lower', extent=(0, lx, 0, ly), cmap='inferno', interpolation='nearest')
    boundary = (grains != np.roll(grains, 1, axis=0)) | (grains != np.roll(grains, 1, axis=1))
    overlay = np.ma.masked_where(~boundary, np.ones_like(ratio))
    axes.imshow(
        overlay,
        origin='lower',
        extent=(0, lx, 0, ly),
        cmap='Greys',
        vmin=0,
        vmax=1,
        alpha=0.35,
        interpolation='nearest',
    )
    figure.colorbar(image, ax=axes, label='von Mises / applied stress')
    axes.set_xlabel('x (um), tension along x')
    axes.set_ylabel('y (um)')
    axes.set_title(f'{microstructure.grain_count} grains: peak {ratio.max():.3f} x applied stress')
    return figure_node(figure, 'stress_map.png')


# ------------------------------------------------------------------------------------------- the rung's result
#: The RVE's elastic quantities and the crystal-plasticity quantities that the rung averages over realisations.
RVE_ELASTIC_QUANTITIES = ('youngs_modulus', 'poisson_ratio', 'c11_eff', 'c12_eff', 'c44_eff')
PLASTIC_QUANTITIES = ('yield_strength', 'yield_strength_sachs', 'yield_strength_taylor', 'flow_stress', 'taylor_factor')
_BOUND_QUANTITIES = ('youngs_modulus_voigt', 'youngs_modulus_reuss', 'youngs_modulus_hill', 'poisson_ratio_hill')


def _realisation_keys(kwargs: dict) -> list[str]:
    return sorted((key.split('_', 1)[1] for key in kwargs if key.startswith('elasticity_')), key=int)


def _mean_and_sem(values: list[float]) -> tuple[float, float | None]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    return mean, float(np.std(values, ddof=1) / np.sqrt(len(values)))


def yield_sensitivity_inputs(plasticity: HandoffData, flow_curve: orm.ArrayData, slip_resistance: orm.ArrayData,
                             assumptions: HandoffData) -> dict:  # fmt: skip
    """The derivatives of one RVE's yield strength with respect to its inputs, as ``{name: [derivative, log, how]}``.

    From :func:`~aiida_multiscale.physics.plasticity.yield_strength_sensitivities` with this RVE's Taylor factor,
    its element-weighted ``<d^-1/2>`` and the hardening its flow curve shows just past yield.
    """
    from aiida_multiscale.physics.plasticity import hardening_increment, yield_strength_sensitivities

    meta = plasticity.metadata
    sizes = slip_resistance.get_array('grain_size')
    weights = np.asarray(meta['grain_fractions'], dtype=float)
    present = (sizes > 0) & (weights > 0)
    mean_inverse_sqrt = float(np.sum(weights[present] / np.sqrt(sizes[present])) / np.sum(weights[present]))
    rve_taylor = plasticity.value('taylor_factor', 'dimensionless')
    increment = hardening_increment(
        flow_curve.get_array('strain'), flow_curve.get_array('stress'), meta['yield_strain']
    )
    a0 = assumptions.value('reference_slip_rate', '1/s')
    derivatives = yield_strength_sensitivities(
        yield_strength=plasticity.value('yield_strength', 'Pa'),
        rve_taylor_factor=rve_taylor,
        taylor_factor_random=assumptions.value('taylor_factor_random', 'dimensionless'),
        hall_petch_coefficient=assumptions.value('hall_petch_coefficient', 'Pa*m**0.5'),
        mean_inverse_sqrt_size=mean_inverse_sqrt,
        hardening_increment=increment,
        tau_c_mean=meta['tau_c_mean_pa'],
        saturation_strength=assumptions.value('saturation_strength', 'Pa'),
        hardening_exponent=assumptions.value('hardening_exponent', 'dimensionless'),
        rate_sensitivity=assumptions.value('rate_sensitivity', 'dimensionless'),
        rate_argument=meta['strain_rate_per_s'] * rve_taylor / (5 * a0),
    )
    return {name: list(entry) for name, entry in derivatives.items()}


@calcfunction
def fem_summary(slab: HandoffData, elastic: HandoffData, assumptions: HandoffData = None, **realisations):
    """The FEM rung's ``mechanics``: the periodic RVEs' moduli and yield strengths, averaged over the realisations.

    ``realisations`` holds, per realisation ``i`` (0, 1, ...): ``microstructure_i`` and ``elasticity_i`` (the
    periodic RVE's effective constants), and with crystal plasticity ``plasticity_i``, ``flow_curve_i`` and
    ``slip_resistance_i``.  Each quantity is the mean over the realisations, its std the standard error of that
    mean (None for one realisation: the note says the spread is not estimated).  The Voigt, Reuss and Hill bounds are
    those of each realisation's orientations with its mesh's grain fractions (Python, not MOOSE), averaged the same
    way; ``youngs_modulus_apparent`` and ``stress_concentration`` come from the slab with grips (``slab``), which
    also draws the stress map.  The derivatives of the yield strength that the variance budget needs
    (:func:`yield_sensitivity_inputs`) go into the metadata, averaged over the realisations.
    """
    keys = _realisation_keys(realisations)
    n = len(keys)
    constants = cubic_constants(elastic, 'Pa')
    per = {name: [] for name in (*RVE_ELASTIC_QUANTITIES, *_BOUND_QUANTITIES, *PLASTIC_QUANTITIES)}
    rows, sensitivities = [], []
    plastic = all(f'plasticity_{key}' in realisations for key in keys) and n > 0
    for key in keys:
        micro = realisations[f'microstructure_{key}']
        rve = realisations[f'elasticity_{key}']
        bounds = mechanics.voigt_reuss_hill(*constants, micro.euler_angles, rve.metadata['grain_fractions'])
        row = {'grain_count': int(micro.grain_count), 'mean_grain_size': float(micro.mean_grain_size)}
        for name in RVE_ELASTIC_QUANTITIES:
            per[name].append(rve.value(name))
            row[name] = rve.value(name)
        for name in _BOUND_QUANTITIES:
            per[name].append(float(bounds[name]))
            row[name] = float(bounds[name])
        if plastic:
            cp = realisations[f'plasticity_{key}']
            for name in PLASTIC_QUANTITIES:
                per[name].append(cp.value(name))
                row[name] = cp.value(name)
            if 'elements_per_grain' in cp.metadata:  # not recorded by RVEs analysed before the mesh-error term
                row['elements_per_grain'] = cp.metadata['elements_per_grain']
            sensitivities.append(
                yield_sensitivity_inputs(
                    cp, realisations[f'flow_curve_{key}'], realisations[f'slip_resistance_{key}'], assumptions
                )
            )
        rows.append(row)
    spread = (
        f'mean over {n} realisations, std the standard error of the mean'
        if n > 1
        else "one realisation: std over realisations not estimated (the inputs' std is added by fem_to_macro)"
    )
    quantities = {}
    for name in (*RVE_ELASTIC_QUANTITIES, *_BOUND_QUANTITIES, *(PLASTIC_QUANTITIES if plastic else ())):
        source = 'elasticity' if name in RVE_ELASTIC_QUANTITIES else 'plasticity' if name in PLASTIC_QUANTITIES else ''
        value, std = _mean_and_sem(per[name])
        unit = 'dimensionless' if name in ('poisson_ratio', 'poisson_ratio_hill', 'taylor_factor') else 'Pa'
        how = realisations[f'{source}_{keys[0]}'][name].note if source else (
            'Voigt/Reuss/Hill of the same orientations with the mesh grain fractions, loading along x; Python, not '
            'MOOSE'
        )  # fmt: skip
        quantities[name] = {'value': value, 'unit': unit, 'std': std, 'note': f'{how}; {spread}'}
    quantities['youngs_modulus_apparent'] = {
        'value': slab.value('youngs_modulus', 'Pa'),
        'unit': 'Pa',
        'std': None,
        'note': 'apparent modulus of realisation 0 as a slab stretched by grips (not periodic): '
        + slab['youngs_modulus'].note,
    }
    quantities['stress_concentration'] = dict(slab['stress_concentration'].as_dict())
    quantities['grain_count'] = {
        'value': sum(row['grain_count'] for row in rows),
        'unit': 'dimensionless',
        'std': None,
        'note': f'grains in the FEM over {n} realisation(s): ' + ', '.join(str(r['grain_count']) for r in rows),
    }
    metadata = {'realisations': rows, 'realisation_count': n, 'slab': slab.metadata}
    if sensitivities:
        averaged = {}
        for name, (_, log, how) in sensitivities[0].items():
            averaged[name] = [float(np.mean([entry[name][0] for entry in sensitivities])), log, how]
        metadata['yield_sensitivities'] = averaged
    return HandoffData(quantities, producer='fem_summary', from_scale='fem', to_scale='fem', metadata=metadata)


@calcfunction
def flow_curve_plot(mechanics: HandoffData, **curves):
    """PNG of each realisation's flow curve (``curves``: ``realisation_i`` ArrayData) with its Sachs-Taylor band.

    The band is the yield strength's independent check: the full-field RVE's 0.2 % offset yield (a dot) must fall
    between the Sachs and Taylor estimates of the same grains.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    rows = mechanics.metadata['realisations']
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for index, key in enumerate(sorted(curves, key=lambda name: int(name.rsplit('_', 1)[1]))):
        colour = colours[index % len(colours)]
        strain = curves[key].get_array('strain') * 100
        stress = curves[key].get_array('stress') / 1e6
        row = rows[index]
        axes.plot(strain, stress, color=colour, label=f'{key.replace("_", " ")} ({row["grain_count"]} grains)')
        axes.axhspan(row['yield_strength_sachs'] / 1e6, row['yield_strength_taylor'] / 1e6, color=colour, alpha=0.12)
        yield_stress = row['yield_strength'] / 1e6
        axes.plot(np.interp(yield_stress, stress, strain), yield_stress, 'o', color=colour)
    axes.set_xlabel('strain (%), uniaxial tension along x')
    axes.set_ylabel('true stress (MPa)')
    axes.set_title('crystal-plasticity RVE: flow curves, Sachs-Taylor band, 0.2 % offset yield (dots)')
    axes.title.set_fontsize(9)
    axes.legend(fontsize=8, loc='lower right')
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    return figure_node(figure, 'flow_curves.png')
