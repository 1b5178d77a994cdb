"""Bridge mesoscale -> FEM: the final grain map plus the DFT Cij, converted to SI, checked, with grain-size std."""

from __future__ import annotations

import math

from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.bridges import bridge_exit_code
from aiida_multiscale.bridges.md_to_mesoscale import relative_potential_error
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.phase_field import interface_width
from aiida_multiscale.physics.elasticity import born_stability_violations

__all__ = ('interface_width_from_parameters', 'mesoscale_to_fem', 'MIN_PIXELS_PER_GRAIN')

#: A grain must span at least this many pixels (equivalent-circle diameter) for the FEM to resolve it at all.
MIN_PIXELS_PER_GRAIN = 3.0
#: Fewer grains than this in a realisation are an anecdote, not a polycrystal: handed on, but flagged in the note and
#: the checks (the fast protocol's target, issue 14; a map coarsened to one grain is a single crystal).
MIN_GRAINS_FOR_STATISTICS = 25


def interface_width_from_parameters(parameters: dict | None) -> float | None:
    """The phase-field interface width in metres from its ``parameters``, if it can be known.

    ``interface_width`` [m] when given (a value with a unit, ``{'value': 20, 'unit': 'nm'}`` or ``'20 nm'``, is
    converted with pint); otherwise the phase-field rung's default
    (:func:`~aiida_multiscale.engines.moose.phase_field.interface_width`).
    """
    from aiida_multiscale.physics.units import ureg

    if not parameters:
        return None
    width = parameters.get('interface_width')
    if width is None:
        if parameters.get('domain_size') and parameters.get('grid'):
            return interface_width(parameters['domain_size'], parameters['grid'])
        return None
    if isinstance(width, dict):
        return float((width['value'] * ureg(width.get('unit', 'm'))).to('m').magnitude)
    if isinstance(width, str):
        return float(ureg(width).to('m').magnitude)
    return float(width)


def grain_size_terms(
    size: float,
    initial: float,
    interface: HandoffData,
    misfit: float = 0.0,
    misfit_uuid: str | None = None,
    statistics: HandoffData | None = None,
) -> list[dict]:
    """The variance-budget terms of ``ln d`` (:mod:`aiida_multiscale.physics.variance`), one per uncertain input.

    Through ``d^2 = d0^2 + k_r M sigma t`` (the reduced rate constant ``k_r`` times ``M sigma t``):
    ``d ln d / d ln(M sigma t) = (d^2 - d0^2) / (2 d^2)`` and ``d ln d / d ln d0 = d0^2 / d^2``; each of
    ``gb_mobility``, ``gb_energy``, ``anneal_time`` and ``initial_grain_size`` enters with its relative std read as the
    std of its logarithm (the mobility is uncertain by orders of magnitude).  The potential's misfit to DFT, when given,
    is a term of its own (it enters through sigma).  ``statistics`` (the phase field's ``grain_statistics``) adds the
    rung's own std of the size: the spread of its realisations, the sampling of its grains and the extrapolation.
    """
    from aiida_multiscale.physics.variance import term

    growth = max(size**2 - initial**2, 0.0) / (2 * size**2) if size > 0 else 0.0
    how = 'd ln d/d ln(M sigma t) = (d^2 - d0^2)/(2 d^2), parabolic growth'
    terms = []
    budget = interface.metadata.get('gb_mobility_budget')
    for name in ('gb_mobility', 'gb_energy', 'anneal_time'):
        if name == 'gb_mobility' and budget:
            # A mobility from MD: the fit, the anneal temperature and the assumed reduction are three inputs, three
            # terms (all of the interface handoff, where the trace finds them).
            terms.append(
                term(interface.uuid, 'gb_mobility', growth, budget['md_fit_ln_std'], log=True,
                     note=f'{how}; the MD Arrhenius fit at the anneal temperature, std from its covariance')
            )  # fmt: skip
            if budget['temperature_ln_std']:
                terms.append(
                    term(interface.uuid, 'temperature', growth, budget['temperature_ln_std'], log=True,
                         note=f'{how}; the anneal temperature through M = M0 exp(-Q/kT): Q std_T / kT^2')
                )  # fmt: skip
            if budget['mobility_reduction_ln_std']:
                terms.append(
                    term(interface.uuid, 'mobility_reduction', growth, budget['mobility_reduction_ln_std'], log=True,
                         note=f'{how}; what MD of one boundary in a pure metal cannot see (assumed)')
                )  # fmt: skip
            continue
        if name in interface and interface[name].relative_std:
            terms.append(term(interface.uuid, name, growth, interface[name].relative_std, log=True, note=how))
    if 'initial_grain_size' in interface and interface['initial_grain_size'].relative_std:
        terms.append(
            term(interface.uuid, 'initial_grain_size', initial**2 / size**2 if size > 0 else 0.0,
                 interface['initial_grain_size'].relative_std, log=True,
                 note='d ln d/d ln d0 = d0^2/d^2, parabolic growth')
        )  # fmt: skip
    if misfit:
        terms.append(
            term(misfit_uuid, 'potential_misfit', growth, misfit, log=True,
                 note=f"{how}; rms relative error of the MD potential against DFT, taken as part of sigma's std")
        )  # fmt: skip
    if statistics is not None and 'mean_grain_size' in statistics and statistics['mean_grain_size'].relative_std:
        terms.append(
            term(statistics.uuid, 'mean_grain_size', 1.0, statistics['mean_grain_size'].relative_std, log=True,
                 note="the phase field's own std: realisations' spread, grain sampling, extrapolation of the law")
        )  # fmt: skip
    return terms


def _growth_law_std(
    size: float, initial: float | None, interface: HandoffData | None, misfit: float = 0.0
) -> tuple[float | None, str]:
    """First-order std of the mean grain size through the parabolic growth law ``d^2 - d0^2 = k M sigma t``.

    ``d = sqrt(d0^2 + A)`` with ``A`` proportional to ``M sigma t``, so ``std_d = A/(2d) * rel_std(M sigma t)``.
    The phase field itself is deterministic for a fixed seed; what is uncertain is its input.  ``misfit`` is the
    relative misfit of the potential to DFT, added to sigma's relative std when the interface does not carry it yet.
    """
    if interface is None or initial is None:
        return None, 'phase-field result; std unknown (no interface handoff or initial microstructure given)'
    growth = max(size**2 - initial**2, 0.0)
    relative = misfit**2
    for name in ('gb_mobility', 'gb_energy', 'anneal_time'):
        if name in interface:
            relative += (interface[name].relative_std or 0.0) ** 2
    relative = math.sqrt(relative)
    std = growth / (2 * size) * relative if size > 0 else None
    note = (
        'phase-field mean equivalent-circle diameter; first-order std through d^2 - d0^2 ~ M sigma t from the '
        'stds of gb_mobility, gb_energy and anneal_time'
    )
    if misfit:
        note += ", sigma's std including the potential misfit to DFT (potential_check)"
    return std, note


@calcfunction
def mesoscale_to_fem(
    microstructure: MicrostructureData,
    elastic: HandoffData,
    interface: HandoffData = None,
    initial_microstructure: MicrostructureData = None,
    phase_field_parameters: orm.Dict = None,
    potential_check: HandoffData = None,
    grain_statistics: HandoffData = None,
    **realisations,
):
    """Hand the final grain map and the cubic Cij (converted to Pa) to the FEM rung.

    Outputs: ``elastic`` (c11, c12, c44 in Pa, stds converted), ``microstructure`` (a new MicrostructureData, so that
    the FEM rung's input is made by this bridge), ``realisation_<i>`` (the same for every further realisation given
    in ``realisations``) and ``grains`` (mean_grain_size [m] with its std, grain_count, interface_width [m]).

    ``grain_statistics`` (the phase field's): its mean over realisations is the size handed on, and its std (spread,
    sampling, extrapolation) joins the inputs' std (M, sigma, t, d0) propagated through the growth law; every term is
    listed in the metadata (``ln_grain_size_terms``) for the variance budget.

    Checks: Born stability of the Cij; the mean grain size is larger than the phase-field interface width (otherwise
    the "grains" are diffuse interfaces, not grains) and than :data:`MIN_PIXELS_PER_GRAIN` pixels.

    ``potential_check`` (the MD potential's relative errors against DFT): its rms joins sigma_GB's relative std in the
    grain-size std, as :func:`~aiida_multiscale.bridges.md_to_mesoscale.md_to_mesoscale` would have done.  The chain
    gives it here because its phase field starts before the DFT rung is done (the phase field needs sigma_GB's value,
    not its std); an ``interface`` that already carries the misfit (metadata ``potential_relative_error_rms``) does not
    get it twice.
    """
    missing = [name for name in ('c11', 'c12', 'c44') if name not in elastic]
    if missing:
        return bridge_exit_code('ERROR_MESOSCALE_TO_FEM_MISSING_CONSTANTS', f'missing elastic constants {missing}')
    constants = {name: elastic.get_quantity(name, 'Pa') for name in ('c11', 'c12', 'c44')}
    problems = born_stability_violations(*(elastic.value(name, 'GPa') for name in ('c11', 'c12', 'c44')))
    if problems:
        return bridge_exit_code('ERROR_MESOSCALE_TO_FEM_BORN_UNSTABLE', '; '.join(problems) + ' (GPa)')

    size = microstructure.mean_grain_size
    width = interface_width_from_parameters(phase_field_parameters.get_dict() if phase_field_parameters else None)
    if grain_statistics is not None:
        size = grain_statistics.value('mean_grain_size', 'm')
        if 'interface_width' in grain_statistics:
            width = grain_statistics.value('interface_width', 'm')
    pixel = microstructure.pixel_size
    if width is not None and not size > width:
        return bridge_exit_code(
            'ERROR_MESOSCALE_TO_FEM_GRAIN_SIZE',
            f'mean grain size {size:.4g} m <= interface width {width:.4g} m',
        )
    if not microstructure.mean_grain_size > MIN_PIXELS_PER_GRAIN * pixel:
        return bridge_exit_code(
            'ERROR_MESOSCALE_TO_FEM_GRAIN_SIZE',
            f'mean grain size {microstructure.mean_grain_size:.4g} m <= {MIN_PIXELS_PER_GRAIN:g} pixels of '
            f'{pixel:.4g} m',
        )

    initial = initial_microstructure.mean_grain_size if initial_microstructure is not None else None
    maps = [microstructure, *(realisations[key] for key in sorted(realisations))]
    if grain_statistics is not None:
        initial = grain_statistics.value('initial_mean_grain_size', 'm')
    misfit = 0.0
    if potential_check is not None and not (
        interface is not None and interface.metadata.get('potential_relative_error_rms')
    ):
        misfit, _ = relative_potential_error(potential_check)
    terms = []
    if interface is not None and initial is not None:
        terms = grain_size_terms(
            size, initial, interface, misfit, potential_check.uuid if misfit else None, grain_statistics
        )
    if grain_statistics is not None:
        amplitudes = [entry['amplitude'] for entry in terms if entry['amplitude'] is not None]
        size_std = size * math.sqrt(sum(a * a for a in amplitudes)) if amplitudes else None
        size_note = (
            f'{grain_statistics["mean_grain_size"].note}; std here: first order in ln d from the inputs '
            "(M, sigma, t, d0) through the growth law and the phase field's own std, terms in ln_grain_size_terms"
        )
    else:
        size_std, size_note = _growth_law_std(size, initial, interface, misfit)
    counts = [m.grain_count for m in maps]
    grains = {
        'mean_grain_size': {'value': size, 'unit': 'm', 'std': size_std, 'note': size_note},
        'grain_count': {
            'value': float(sum(counts)) / len(counts),
            'unit': 'dimensionless',
            'std': None,
            'note': f'grains in the phase-field map handed on, mean over {len(counts)} realisation(s)'
            + (
                f'; fewer than {MIN_GRAINS_FOR_STATISTICS} in one: too few for polycrystal statistics (more grains '
                'in the phase field, parameters.grains and grid)'
                if min(counts) < MIN_GRAINS_FOR_STATISTICS
                else ''
            ),
        },
    }
    if initial is not None:
        grains['initial_mean_grain_size'] = {
            'value': initial,
            'unit': 'm',
            'std': None,
            'note': 'd0, the starting mean grain size'
            if grain_statistics is not None
            else 'mean equivalent-circle diameter of the Voronoi start',
        }
    if width is not None:
        grains['interface_width'] = {'value': width, 'unit': 'm', 'std': None, 'note': 'phase-field parameter'}

    common = {'bridge': 'mesoscale_to_fem', 'from_scale': 'mesoscale', 'to_scale': 'fem'}
    elastic_quantities = {
        name: {
            'value': quantity.value,
            'unit': 'Pa',
            'std': quantity.std,
            'note': f'DFT value converted to SI for the FEM; {quantity.note}'.rstrip('; '),
        }
        for name, quantity in constants.items()
    }
    copies = [
        MicrostructureData(grain_ids=m.grain_ids, pixel_size=m.pixel_size, euler_angles=m.euler_angles) for m in maps
    ]
    metadata = {'dft': elastic.metadata, 'checks': {'born_stability': 'passed', 'grain_size_resolved': 'passed'}}
    if misfit:
        metadata['potential_relative_error_rms'] = misfit
    checks = dict(metadata['checks'])
    checks['enough_grains'] = (
        'passed'
        if min(counts) >= MIN_GRAINS_FOR_STATISTICS
        else f'warning: {min(counts)} < {MIN_GRAINS_FOR_STATISTICS} grains'
    )
    outputs = {
        'elastic': HandoffData(elastic_quantities, metadata=metadata, **common),
        'microstructure': copies[0],
        'grains': HandoffData(grains, metadata={'checks': checks, 'ln_grain_size_terms': terms}, **common),
    }
    for index, copy in enumerate(copies[1:], start=1):
        outputs[f'realisation_{index:02d}'] = copy
    return outputs
