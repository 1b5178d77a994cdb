"""The calcfunctions of the MD rung: the potential's bulk properties, misfit to DFT, the bicrystal, the GB energy."""

from __future__ import annotations

import io
import math

from aiida import orm
from aiida.engine import calcfunction
from aiida_lammps.calculations.raw import LammpsRawCalculation

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.lammps import bicrystal as bicrystal_builder
from aiida_multiscale.engines.lammps import inputs as scripts
from aiida_multiscale.engines.lammps import parsing
from aiida_multiscale.engines.lammps.potentials import potential_attributes
from aiida_multiscale.engines.lammps.settings import merge_parameters
from aiida_multiscale.physics.elasticity import bulk_modulus_from_cij
from aiida_multiscale.physics.uncertainty import first_order_std
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = (
    'CHECKED_QUANTITIES',
    'analyse_bulk',
    'analyse_gb_run',
    'analyse_grain_boundary',
    'build_bicrystal',
    'compare_potential_with_dft',
    'default_inputs',
    'merged_parameters',
)

#: Quantity of the DFT check -> (name in the MD bulk properties, name in the DFT handoff, unit of the comparison).
CHECKED_QUANTITIES = {
    'a0': ('a0_md', 'a0', 'angstrom'),
    'c11': ('c11_md', 'c11', 'GPa'),
    'c12': ('c12_md', 'c12', 'GPa'),
    'c44': ('c44_md', 'c44', 'GPa'),
    'bulk_modulus': ('bulk_modulus_md', 'bulk_modulus', 'GPa'),
}


def default_inputs() -> dict:
    """``default_inputs`` of ``protocols/md.yaml``: the one home of the rung's defaults (a new dict every call)."""
    return load_protocol_file('md')['default_inputs']


def merged_parameters(node: orm.Dict | None) -> dict:
    """The ``parameters`` input completed section by section with the defaults (the ``moderate`` protocol)."""
    return merge_parameters(node.get_dict() if node is not None else {}, default_inputs()['parameters'])


def _read(retrieved: orm.FolderData, name: str) -> str:
    return retrieved.base.repository.get_object_content(name)


@calcfunction
def analyse_bulk(retrieved: orm.FolderData, potential: orm.Data) -> HandoffData:
    """Lattice constant, cohesive energy and C11, C12, C44 of the potential from the bulk LAMMPS run."""
    result = parsing.parse_bulk_results(_read(retrieved, scripts.RESULTS_FILENAME))
    constants = parsing.elastic_constants(result['strains'])
    info = potential_attributes(potential)
    quantities = {
        'a0_md': {
            'value': result['a0'],
            'unit': 'angstrom',
            'std': None,
            'note': 'fcc cell relaxed to zero pressure (box/relax iso, CG to 1e-10 eV/A)',
        },
        'cohesive_energy': {
            'value': result['cohesive_energy'],
            'unit': 'eV',
            'std': None,
            'note': '-E/N of the relaxed fcc crystal (positive for a bound crystal)',
        },
    }
    for name, (value, std) in constants.items():
        quantities[f'{name}_md'] = {
            'value': value,
            'unit': 'GPa',
            'std': std,
            'note': 'relaxed-ion slope at zero strain of stress vs strain (cubic fit of +/- strains)',
        }
    quantities['bulk_modulus_md'] = {
        'value': bulk_modulus_from_cij(constants['c11'][0], constants['c12'][0]),
        'unit': 'GPa',
        'std': None,
        'note': '(C11 + 2 C12) / 3',
    }
    metadata = {
        'potential': {k: info[k] for k in ('filename', 'pair_style', 'species', 'md5', 'title')},
        'natoms': result['natoms'],
        'residual_pressure_bar': result.get('pressure'),
    }
    return HandoffData(quantities, producer='analyse_bulk', from_scale='md', to_scale='md', metadata=metadata)


@calcfunction
def compare_potential_with_dft(
    bulk: HandoffData, eos: HandoffData, elastic: HandoffData, thresholds: orm.Dict, accept_potential: orm.Bool
) -> HandoffData:
    """Relative errors of the potential's a0 and Cij against DFT, and the verdict.

    ``error = value_md / value_dft - 1``; its std propagates both stds to first order.  The verdict is ``pass``,
    ``fail`` or ``accepted_by_user`` (failed, but ``accept_potential`` was True): the decision is an input of this
    calcfunction, so the graph shows who let a failing potential through.  A quantity without a threshold (in
    ``thresholds`` or the defaults) is reported but not checked.
    """
    limits = {**default_inputs()['thresholds'], **thresholds.get_dict()}
    quantities, failed = {}, []
    for key, (md_name, dft_name, unit) in CHECKED_QUANTITIES.items():
        source = eos if dft_name in ('a0', 'bulk_modulus') else elastic
        if dft_name not in source or md_name not in bulk:
            continue
        md, dft = bulk.get_quantity(md_name, unit), source.get_quantity(dft_name, unit)
        error = md.value / dft.value - 1
        limit = limits.get(key)
        quantities[f'{key}_relative_error'] = {
            'value': error,
            'unit': 'dimensionless',
            'std': first_order_std(lambda m, d: m / d - 1, (md.value, dft.value), (md.std, dft.std)),
            'note': f'{md_name} / DFT {dft_name} - 1: {md.value:.5g} vs {dft.value:.5g} {unit}'
            + (f'; threshold {limit:g}' if limit else '; not checked'),
        }
        if limit and abs(error) > limit:
            failed.append(
                f'{key} off by {error:+.1%} (MD {md.value:.4g} vs DFT {dft.value:.4g} {unit}, threshold {limit:.0%})'
            )
    verdict = 'pass' if not failed else ('accepted_by_user' if accept_potential.value else 'fail')
    metadata = {
        'verdict': verdict,
        'failed': failed,
        'thresholds': limits,
        'accept_potential': accept_potential.value,
        'potential': bulk.metadata.get('potential', {}),
        'dft': {**eos.metadata, **elastic.metadata},
    }
    return HandoffData(
        quantities, producer='compare_potential_with_dft', from_scale='dft', to_scale='md', metadata=metadata
    )


@calcfunction
def build_bicrystal(element: orm.Str, bulk: HandoffData, repeats: orm.List) -> orm.SinglefileData:
    """The unshifted Sigma5(310)[001] bicrystal at the potential's a0, as a LAMMPS data file."""
    atoms = bicrystal_builder.build_sigma5_bicrystal(
        element.value, bulk.value('a0_md', 'angstrom'), tuple(repeats.get_list())
    )
    text = bicrystal_builder.lammps_data(atoms)
    node = orm.SinglefileData(io.BytesIO(text.encode()), filename='bicrystal.data')
    node.base.attributes.set('natoms', len(atoms))
    node.base.attributes.set('cell', [float(x) for x in atoms.cell.lengths()])
    return node


def analyse_gb_run(retrieved: orm.FolderData, cohesive_energy: float, min_distance: float) -> dict:
    """Energies of one grain-boundary run (:func:`~aiida_multiscale.engines.lammps.parsing.analyse_gb_scan`).

    aiida-lammps 1.0.2 reports exit 0 for an unconverged minimisation, so the stopping criteria are read from the
    log and a configuration with an unconverged minimisation counts as rejected.
    """
    records = parsing.parse_gb_results(_read(retrieved, scripts.RESULTS_FILENAME))
    log = _read(retrieved, LammpsRawCalculation.FILENAME_OUTPUT)
    unconverged = parsing.gb_unconverged_labels(
        log, [r['label'] for r in records], scripts.GB_MINIMISATIONS_PER_CONFIGURATION
    )
    return parsing.analyse_gb_scan(records, cohesive_energy, min_distance, unconverged)


@calcfunction
def analyse_grain_boundary(
    bulk: HandoffData, parameters: orm.Dict, scan: orm.FolderData, size_check: orm.FolderData
) -> dict:
    """Grain-boundary energy: minimum over the scan, rejected collapsed configurations, size check -> md_properties.

    gb_energy = (E - N (-E_coh)) / (2 A) (two boundaries in the periodic cell), the minimum over the valid scan
    configurations of the *larger* cell (the size check reruns the best ones there).  Its std combines the scan
    uncertainty (gap to the next distinct minimum when only one start reached the lowest one) and the difference
    between the two sizes.
    """
    gb = merged_parameters(parameters)['gb']
    ecoh = bulk.value('cohesive_energy', 'eV')
    a0 = bulk.value('a0_md', 'angstrom')
    min_distance = gb['min_distance_factor'] * a0 / math.sqrt(2)
    small = analyse_gb_run(scan, ecoh, min_distance)
    large = analyse_gb_run(size_check, ecoh, min_distance)
    table = {
        'energies_small': small['energies'],
        'energies_large': large['energies'],
        'rejected_small': small['rejected'],
        'rejected_large': large['rejected'],
        'min_distance': min_distance,
        'units': 'J/m^2',
    }
    outputs = {'gb_scan': orm.Dict(table)}
    if small['minimum'] is None or large['minimum'] is None:
        return outputs
    size_difference = abs(large['minimum'] - small['minimum'])
    std = math.hypot(small['scan_std'], size_difference)
    quantities = {
        name: dict(bulk.quantities[name]) for name in ('a0_md', 'cohesive_energy', 'c11_md', 'c12_md', 'c44_md')
    }
    quantities['gb_energy'] = {
        'value': large['minimum'],
        'unit': 'J/m^2',
        'std': std,
        'note': f'Sigma5(310)[001] symmetric tilt, minimum over {len(small["energies"])} rigid-shift/overlap '
        f'configurations ({len(small["rejected"])} rejected for atoms closer than {min_distance:.2f} A), '
        f'relaxed with the cell free normal to the boundary; size check {size_difference:.2g} J/m^2',
    }
    metadata = dict(bulk.metadata)
    metadata['gb'] = {
        'minimum_small': small['minimum'],
        'minimum_large': large['minimum'],
        'minimum_label': small['minimum_label'],
        'minimum_label_large': large['minimum_label'],
        'reached_by': small['reached_by'],
        'spread': small['spread'],
        'scan_std': small['scan_std'],
        'size_difference': size_difference,
        'relative_size_difference': size_difference / large['minimum'],
        'repeats': gb['repeats'],
        'size_check_repeats': gb['size_check_repeats'],
        'n_configurations': len(small['energies']),
        'n_rejected': len(small['rejected']),
    }
    outputs['md_properties'] = HandoffData(
        quantities, producer='analyse_grain_boundary', from_scale='md', to_scale='mesoscale', metadata=metadata
    )
    return outputs
