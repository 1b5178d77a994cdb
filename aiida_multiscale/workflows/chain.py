"""``MultiscaleWorkChain``: DFT and MD -> phase field -> FEM, every handoff through a bridge calcfunction."""

from __future__ import annotations

import math
import typing as t

from aiida import orm
from aiida.engine import ExitCode, ToContext, WorkChain
from aiida.plugins import WorkflowFactory

from aiida_multiscale.bridges import BRIDGE_EXIT_CODES
from aiida_multiscale.bridges.dft_to_md import dft_to_md
from aiida_multiscale.bridges.fem_to_macro import fem_to_macro
from aiida_multiscale.bridges.md_to_mesoscale import ASSUMED_MOBILITY, make_assumptions, md_to_mesoscale
from aiida_multiscale.bridges.mesoscale_to_fem import mesoscale_to_fem
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.physics.elements import MELTING_POINTS
from aiida_multiscale.workflows.functions.budget import variance_budget_plot
from aiida_multiscale.workflows.functions.md import compare_potential_with_dft
from aiida_multiscale.workflows.protocols.anneal import resolve_anneal
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin, load_protocol_file, merge_overrides
from aiida_multiscale.workflows.validation import (
    check_anneal,
    check_element,
    check_potential_species,
    check_pseudo_family,
    validate_assumptions,
    validate_chain_inputs,
)

DftWorkChain = WorkflowFactory('multiscale.dft')
MdWorkChain = WorkflowFactory('multiscale.md')
PhaseFieldWorkChain = WorkflowFactory('multiscale.phase_field')
FemWorkChain = WorkflowFactory('multiscale.fem')

__all__ = ('MultiscaleWorkChain',)


class MultiscaleWorkChain(ProtocolMixin, WorkChain):
    """DFT and MD -> phase field -> FEM, every handoff through a bridge calcfunction producing ``HandoffData``.

    A rung starts as soon as what it needs exists, so the chain is a graph, not a line.  MD (the potential's own
    properties and the grain-boundary energy) needs nothing from DFT, and the phase field needs only sigma_GB from MD,
    so DFT runs side by side with MD and then the phase field: on the fast protocol the DFT rung is hidden behind them
    (``benchmarks/chain.py``).  DFT is needed only where its results are used: the potential check (``dft_to_md``
    handoff into the MD rung's ``compare_potential_with_dft``), and the elastic constants of the FEM.  The chain waits
    for DFT first, so that its handoff and the check run while the phase field still runs, then for the phase field; the
    FEM starts when both are there.  A potential that fails the check stops the chain (exit 305) before anything reaches
    the FEM, and its misfit to DFT joins sigma_GB's std in ``mesoscale_to_fem``, the first bridge after the join.  A
    rung or bridge that fails kills the rungs still running: nothing would use their results.

    Every value handed from one rung to the next passes through a calcfunction of :mod:`aiida_multiscale.bridges` that
    converts units once, checks the physics and propagates the std, so the final ``macro`` node can be traced back to
    every DFT calculation behind it (``aiida-multiscale trace``).  Each rung's inputs are exposed in a namespace
    (``dft``, ``md``, ``phase_field``, ``fem``) and can be overridden; the values the chain supplies itself (element,
    handoffs) are excluded there.
    """

    _protocol_file = 'chain'
    _open_paths = ('dft.overrides', 'md.overrides', 'phase_field.overrides', 'fem.overrides')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'element',
            valid_type=orm.Str,
            help='Chemical symbol of the (cubic, monatomic) metal, e.g. Al; used by the DFT and MD rungs.',
        )
        spec.input(
            'assumptions',
            valid_type=HandoffData,
            validator=validate_assumptions,
            help='Assumed inputs no rung computes, each with unit, std and an "assumed; source: ..." note: '
            'mobility_prefactor [m^4/(J s)], activation_energy [eV], temperature [K], anneal_time [s].',
        )
        spec.expose_inputs(
            DftWorkChain,
            namespace='dft',
            exclude=('element', 'structure'),
            # The rung's cross-validator needs `element`; the chain's validator runs it with the chain's element.
            namespace_options={
                'help': 'Inputs of the DFT rung (DftWorkChain); the chain sets element.',
                'validator': None,
            },
        )
        spec.expose_inputs(
            MdWorkChain,
            namespace='md',
            exclude=('element', 'dft'),
            namespace_options={
                'help': 'Inputs of the MD rung (MdWorkChain); the chain sets element. The rung runs beside the DFT '
                'rung; the chain checks the potential against DFT (dft_to_md handoff) with md.thresholds and '
                'md.accept_potential when both are done.'
            },
        )
        spec.expose_inputs(
            PhaseFieldWorkChain,
            namespace='phase_field',
            exclude=('interface',),
            namespace_options={
                'help': 'Inputs of the phase-field rung (PhaseFieldWorkChain); the chain '
                'sets interface (md_to_mesoscale handoff).'
            },
        )
        spec.expose_inputs(
            FemWorkChain,
            namespace='fem',
            exclude=('microstructure', 'elastic', 'element'),
            # The rung's cross-validator needs `element` with `plasticity`; the chain's validator runs it with it.
            namespace_options={
                'help': 'Inputs of the FEM rung (FemWorkChain); the chain sets the microstructure, the elastic '
                'constants (mesoscale_to_fem handoff) and, when fem.plasticity is given, the element.',
                'validator': None,
            },
        )
        spec.inputs.validator = validate_chain_inputs

        # Two branches, DFT and MD -> phase field, joined before the FEM (see the class docstring).
        spec.outline(
            cls.run_md_and_dft,
            cls.inspect_md,
            cls.bridge_md_to_mesoscale,
            cls.run_phase_field,
            cls.inspect_dft,
            cls.bridge_dft_to_md,
            cls.check_potential_against_dft,
            cls.await_phase_field,
            cls.inspect_phase_field,
            cls.bridge_mesoscale_to_fem,
            cls.run_fem,
            cls.inspect_fem,
            cls.bridge_fem_to_macro,
        )

        spec.output(
            'macro',
            valid_type=HandoffData,
            help='The macro prediction, each quantity with its std: youngs_modulus [Pa], poisson_ratio, c11_eff, '
            'c12_eff, c44_eff, youngs_modulus_voigt, youngs_modulus_reuss, youngs_modulus_apparent [Pa], '
            'stress_concentration; with crystal plasticity yield_strength, yield_strength_sachs, '
            'yield_strength_taylor, flow_stress [Pa], taylor_factor; mean_grain_size [m], grain_count. The variance '
            'budget of each quantity and the weakest input are in its metadata.',
        )
        spec.output_namespace(
            'handoffs',
            valid_type=HandoffData,
            dynamic=True,
            help='Every HandoffData a bridge handed from one rung to the next, by label.',
        )
        spec.output(
            'potential_check',
            valid_type=HandoffData,
            required=False,
            help='The MD potential against DFT: <quantity>_relative_error (dimensionless), verdict in metadata.',
        )
        spec.output(
            'initial_microstructure',
            valid_type=MicrostructureData,
            required=False,
            help='The phase-field start (Voronoi), for comparison with `microstructure`.',
        )
        spec.output(
            'microstructure',
            valid_type=MicrostructureData,
            required=False,
            help='The annealed microstructure the FEM rung was run on.',
        )
        spec.output(
            'grain_growth_plot',
            valid_type=orm.SinglefileData,
            required=False,
            help='PNG of the phase field: the grain map handed on, d^2 against t with the fitted growth law, the size '
            'distribution against the stationary one.',
        )
        spec.output(
            'stress_map',
            valid_type=orm.SinglefileData,
            required=False,
            help='PNG of the von Mises stress of the FEM rung.',
        )
        spec.output(
            'flow_curve_plot',
            valid_type=orm.SinglefileData,
            required=False,
            help='PNG of the flow curve of every realisation with its Sachs-Taylor band (crystal plasticity).',
        )
        spec.output(
            'variance_budget_plot',
            valid_type=orm.SinglefileData,
            required=False,
            help='PNG of the variance budget: the share of each uncertain input in each macro quantity.',
        )

        # 30x: a rung failed (its own exit code and message are in the report).  Unrecoverable for the chain.
        spec.exit_code(301, 'ERROR_DFT_FAILED', message='The DFT rung DftWorkChain<{pk}> failed: [{status}] {message}')
        spec.exit_code(302, 'ERROR_MD_FAILED', message='The MD rung MdWorkChain<{pk}> failed: [{status}] {message}')
        spec.exit_code(
            303,
            'ERROR_PHASE_FIELD_FAILED',
            message='The phase-field rung PhaseFieldWorkChain<{pk}> failed: [{status}] {message}',
        )
        spec.exit_code(304, 'ERROR_FEM_FAILED', message='The FEM rung FemWorkChain<{pk}> failed: [{status}] {message}')
        spec.exit_code(
            305,
            'ERROR_POTENTIAL_REJECTED',
            message='The MD potential disagrees with DFT beyond md.thresholds: {detail}. Rerun with '
            'md.accept_potential=True to use it anyway (the decision is recorded), or choose another potential.',
        )
        # 31x-34x: a bridge's physics check failed; the number and message are the bridge's own.
        for label, (status, message) in BRIDGE_EXIT_CODES.items():
            spec.exit_code(status, label, message=message)

    # -- protocol ----------------------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
        cls,
        element: str,
        protocol: str | None = None,
        overrides: t.Mapping | None = None,
        codes: t.Mapping | None = None,
        potential=None,
        temperature: float | None = None,
        anneal_time: float | None = None,
        pseudo_family: str | None = None,
        options: t.Mapping | None = None,
        initial_grain_size: float | None = None,
        mobility_prefactor: float | None = None,
        activation_energy: float | None = None,
    ):
        """Return a builder for ``element`` on ``protocol``, every rung from its own protocol.

        :param element: chemical symbol of a cubic monatomic metal with a pseudopotential and a LAMMPS potential.
        :param protocol: ``fast``, ``moderate`` (default) or ``precise``: the protocol of every rung.
        :param overrides: ``{'assumptions': {...}, 'dft': {'protocol': ..., 'overrides': {...}}, 'md': ..., ...}``;
            unknown keys raise, ``None`` removes a key; a rung's ``overrides`` go to its own protocol.
        :param codes: ``{'pw': ..., 'lmp': ..., 'moose': ...}`` codes or labels (default ``<name>@localhost``).
        :param potential: a ``LammpsPotentialData`` or a potential file path for the MD rung (default: the MD rung's
            default potential for the element).
        :param temperature: anneal temperature in K (default: the protocol's fraction of the melting point).
        :param anneal_time: anneal time in s (default: the protocol's).
        :param initial_grain_size: the starting mean grain size d0 in m, e.g. a recrystallised grain size (default:
            the protocol's, assumed).
        :param mobility_prefactor: M0 in m^4/(J s), with ``activation_energy`` Q in eV: the boundary mobility by hand.
            Both or neither; given, they switch the MD rung's mobility stage off and enter as assumptions.  Not given,
            the MD rung computes M0 and Q (unless ``overrides`` switch its stage off and give them as assumptions).
        :param pseudo_family: aiida-pseudo family label for the DFT rung (default: the DFT rung's, multiscale/pbe
            where it has the element, else multiscale/lda).
        :param options: ``metadata.options`` of the rungs' calculations: keys ``dft``, ``md``, ``phase_field``,
            ``fem`` hold one rung's, any other key applies to every rung (see
            :func:`aiida_multiscale.resources.split_chain_options`).
        :raises ValueError: with a message naming the parameter, for bad input.
        """
        if message := check_element(element):
            raise ValueError(message)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        codes = dict(codes or {})
        for name in ('pw', 'lmp', 'moose'):
            code = codes.get(name, f'{name}@localhost')
            codes[name] = orm.load_code(code) if isinstance(code, str) else code

        from aiida_multiscale.resources import split_chain_options

        rung_options = split_chain_options(options)
        builder = cls.get_builder()
        builder.element = orm.Str(element)
        # Pseudopotential and potential first: an element the chain cannot run at all is the more basic error.
        kwargs = {} if pseudo_family is None else {'pseudo_family': pseudo_family}
        dft = DftWorkChain.get_builder_from_protocol(
            codes['pw'], element=element, protocol=inputs['dft']['protocol'], overrides=inputs['dft']['overrides'],
            options=rung_options['dft'], **kwargs,
        )  # fmt: skip
        if message := check_pseudo_family([element], dft.pseudo_family.value):
            raise ValueError(message)
        builder.dft = cls._prune(dft, ('element', 'structure'))

        md = MdWorkChain.get_builder_from_protocol(
            codes['lmp'], element, potential=potential, protocol=inputs['md']['protocol'],
            overrides=inputs['md']['overrides'], options=rung_options['md'],
        )  # fmt: skip
        if 'potential' in md and (message := check_potential_species(element, md.potential)):
            raise ValueError(message)
        anneal = cls._mobility_assumptions(inputs['assumptions'], overrides, mobility_prefactor, activation_energy)
        parameters = md.parameters.get_dict()
        if ASSUMED_MOBILITY[0] in anneal:
            parameters['mobility']['compute'] = False
            md.parameters = orm.Dict(parameters)
        elif not parameters['mobility']['compute']:
            raise ValueError(
                "the MD rung's mobility stage is off (md parameters.mobility.compute = false) and no mobility was "
                'given: give mobility_prefactor and activation_energy (--mobility-prefactor, --activation-energy), '
                'or let the MD rung compute them'
            )
        builder.md = cls._prune(md, ('element', 'dft'))
        builder.md.accept_potential = orm.Bool(bool(inputs['md'].get('accept_potential', False)))

        assumptions = cls._build_assumptions(element, anneal, temperature, anneal_time, initial_grain_size)
        message = check_anneal(
            element,
            assumptions['temperature']['value'],
            assumptions['anneal_time']['value'],
            assumptions['initial_grain_size']['value'],
        )
        if message:
            raise ValueError(message)

        builder.assumptions = make_assumptions(assumptions)

        phase_field = PhaseFieldWorkChain.get_builder_from_protocol(
            codes['moose'], protocol=inputs['phase_field']['protocol'], overrides=inputs['phase_field']['overrides'],
            options=rung_options['phase_field'],
        )  # fmt: skip
        builder.phase_field = cls._prune(phase_field, ('interface',))

        fem = FemWorkChain.get_builder_from_protocol(
            codes['moose'], None, None, protocol=inputs['fem']['protocol'], overrides=inputs['fem']['overrides'],
            options=rung_options['fem'], element=element,
        )  # fmt: skip
        builder.fem = cls._prune(fem, ('microstructure', 'elastic', 'element'))
        builder.metadata.label = f'{element} multiscale chain ({protocol or cls.get_default_protocol()})'
        return builder

    @staticmethod
    def _prune(sub_builder, exclude: tuple[str, ...]) -> dict:
        inputs = sub_builder._inputs(prune=True)
        for key in (*exclude, 'metadata'):
            inputs.pop(key, None)
        return inputs

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: t.Mapping | None = None) -> dict:
        """The chain's protocol, plus ``assumptions``: the phase-field protocol's ``anneal``, their one home."""
        inputs = super().get_protocol_inputs(protocol)
        inputs['assumptions'] = load_protocol_file('phase_field')['default_inputs']['anneal']
        return merge_overrides(inputs, overrides, cls._open_paths)

    @staticmethod
    def _mobility_assumptions(protocol: dict, overrides, prefactor, energy) -> dict:
        """The assumed anneal without the protocol's M0 and Q (those belong to the stand-alone phase field): the MD
        rung computes them, unless the user gives them (as arguments, or in ``overrides['assumptions']``); then they
        are assumptions and ``mobility_reduction`` (which applies to an MD mobility only) is left out.

        A mobility by hand is the user's number: its entry is built from what the user gave, never completed with the
        protocol's source or std (those describe the stand-alone default, not the user's value).  Without a std, M0
        gets one decade (std of ln M0 = ln 10), and the note says so.
        """
        overrides = overrides or {}
        user = {name: entry for name, entry in (overrides.get('assumptions') or {}).items() if entry is not None}
        anneal = {name: dict(entry) for name, entry in protocol.items() if name not in ASSUMED_MOBILITY}
        units = {'mobility_prefactor': 'm**4/(J*s)', 'activation_energy': 'eV'}
        by_hand = {}
        for name, value in (('mobility_prefactor', prefactor), ('activation_energy', energy)):
            if value is not None:
                by_hand[name] = {'value': float(value), 'source': 'user input (launch argument)'}
            elif name in user:
                by_hand[name] = {'source': 'user input (overrides)', **user[name]}
        if len(by_hand) == 1:
            raise ValueError(
                'give both mobility_prefactor and activation_energy (--mobility-prefactor, --activation-energy) for a '
                'mobility by hand, or neither (the MD rung computes them)'
            )
        if not by_hand:
            return anneal
        if 'mobility_reduction' in user:
            raise ValueError(
                'mobility_reduction applies to a mobility computed by the MD rung; with mobility_prefactor and '
                'activation_energy given by hand, put the reduction into M0 instead'
            )
        md_parameters = ((overrides.get('md') or {}).get('overrides') or {}).get('parameters') or {}
        if (md_parameters.get('mobility') or {}).get('compute') is True:
            raise ValueError(
                'the mobility is given twice: md parameters.mobility.compute = true and mobility_prefactor and '
                'activation_energy by hand; drop one'
            )
        for name, entry in by_hand.items():
            entry.setdefault('unit', units[name])
            if 'std' not in entry and 'relative_std' not in entry:
                if name == 'mobility_prefactor':
                    entry['relative_std'] = math.log(10.0)
                    entry['source'] += '; std not given: one decade assumed (std of ln M0 = ln 10)'
                else:
                    entry['std'] = None
            if 'value' not in entry:
                raise ValueError(f'assumptions.{name}: give a value ({entry["unit"]})')
        anneal.update(by_hand)
        anneal.pop('mobility_reduction', None)
        return anneal

    @staticmethod
    def _build_assumptions(element: str, anneal: dict, temperature, anneal_time, initial_grain_size=None) -> dict:
        """The assumed anneal as ``{name: {value, unit, std, note}}``: user values first, then the protocol's."""
        anneal = {name: dict(entry) for name, entry in anneal.items()}
        user = 'user input (launch argument)'
        if temperature is not None:
            std = anneal['temperature'].get('std')
            anneal['temperature'] = {'value': float(temperature), 'unit': 'K', 'std': std, 'source': user}
        if anneal_time is not None:
            anneal['anneal_time'].update(value=float(anneal_time), unit='s', source=user)
        if initial_grain_size is not None:
            anneal['initial_grain_size'] = {
                'value': float(initial_grain_size),
                'unit': 'm',
                'std': None,
                'source': user,
            }
        if 'value' not in anneal['temperature'] and element not in MELTING_POINTS:
            raise ValueError(
                f'temperature: the melting point of {element} is not in the table (CRC Handbook); give the '
                'anneal temperature in K explicitly (temperature=...)'
            )
        return resolve_anneal(anneal, MELTING_POINTS.get(element))

    # -- steps -------------------------------------------------------------------------------------------------------
    def _check_rung(self, name: str, label: str):
        node = self.ctx[name]
        if node.is_finished_ok:
            self.report(f'{node.process_label}<{node.pk}> finished OK')
            return None
        self.report(f'{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: {node.exit_message}')
        return self.exit_codes[label].format(pk=node.pk, status=node.exit_status, message=node.exit_message or '')

    def _run_bridge(self, function, **kwargs):
        """Run a bridge calcfunction; a failed check becomes the chain's exit code of the same number."""
        results, node = function.run_get_node(**kwargs, metadata={'call_link_label': function.__name__})
        if not node.is_finished_ok:
            self.report(f'bridge {function.__name__}<{node.pk}> refused the handoff: {node.exit_message}')
            return None, ExitCode(node.exit_status, node.exit_message)
        for label, value in results.items():
            if isinstance(value, HandoffData):
                self.out(f'handoffs.{function.__name__}_{label}', value)
        return results, None

    def run_md_and_dft(self):
        """Submit the MD and the DFT rung together; go on when MD is done (the phase field needs only MD)."""
        # MD first: it is on the longer branch (MD -> phase field), DFT waits for nothing before the join.
        inputs = self.exposed_inputs(MdWorkChain, namespace='md')
        inputs['element'] = self.inputs.element
        inputs.setdefault('metadata', {})['call_link_label'] = 'md'
        md = self.submit(MdWorkChain, **inputs)
        inputs = self.exposed_inputs(DftWorkChain, namespace='dft')
        inputs['element'] = self.inputs.element
        inputs.setdefault('metadata', {})['call_link_label'] = 'dft'
        dft = self.submit(DftWorkChain, **inputs)
        self.ctx.dft = dft
        self.report(f'launched MdWorkChain<{md.pk}> and DftWorkChain<{dft.pk}> for {self.inputs.element.value}')
        return ToContext(md=md)

    def _stop_running_rungs(self, reason: str):
        """Kill the rungs that still run when the chain fails: nothing would use their results."""
        for name in ('dft', 'phase_field'):
            node = self.ctx.get(name)
            if node is not None and not node.is_terminated:
                self.report(f'killing {node.process_label}<{node.pk}>: {reason}')
                self.runner.controller.kill_process(
                    node.pk, msg_text=f'Killed by MultiscaleWorkChain<{self.node.pk}>: {reason}'
                )

    def _fail(self, error, reason: str):
        if error:
            self._stop_running_rungs(reason)
        return error

    def inspect_md(self):
        return self._fail(self._check_rung('md', 'ERROR_MD_FAILED'), 'the MD rung failed')

    def bridge_md_to_mesoscale(self):
        """sigma_GB and the assumptions to the phase field; the potential's misfit to DFT is added after the join."""
        md = self.ctx.md
        kwargs = {'md_properties': md.outputs.md_properties, 'assumptions': self.inputs.assumptions}
        if 'gb_mobility' in md.outputs:
            kwargs['gb_mobility'] = md.outputs.gb_mobility
        results, error = self._run_bridge(md_to_mesoscale, **kwargs)
        if error:
            return self._fail(error, 'the md_to_mesoscale handoff was refused')
        self.ctx.md_to_mesoscale = results

    def run_phase_field(self):
        """Submit the phase field, then wait for the DFT rung: its handoff and check run while the phase field runs."""
        inputs = self.exposed_inputs(PhaseFieldWorkChain, namespace='phase_field')
        inputs['interface'] = self.ctx.md_to_mesoscale['interface']
        inputs.setdefault('metadata', {})['call_link_label'] = 'phase_field'
        node = self.submit(PhaseFieldWorkChain, **inputs)
        self.ctx.phase_field = node
        self.report(f'launched PhaseFieldWorkChain<{node.pk}>')
        return ToContext(dft=self.ctx.dft)

    def inspect_dft(self):
        return self._fail(self._check_rung('dft', 'ERROR_DFT_FAILED'), 'the DFT rung failed')

    def bridge_dft_to_md(self):
        dft = self.ctx.dft
        results, error = self._run_bridge(dft_to_md, eos=dft.outputs.eos, elastic=dft.outputs.elastic)
        if error:
            return self._fail(error, 'the dft_to_md handoff was refused')
        self.ctx.dft_to_md = results

    def check_potential_against_dft(self):
        """The MD rung's check of its potential against the DFT handoff (its own calcfunction, with its inputs)."""
        md = self.inputs.md
        check = compare_potential_with_dft(
            self.ctx.md.outputs.bulk_properties,
            self.ctx.dft_to_md['eos'],
            self.ctx.dft_to_md['elastic'],
            md.thresholds,
            md.accept_potential,
            metadata={'call_link_label': 'compare_potential_with_dft'},
        )
        self.ctx.potential_check = check
        self.out('potential_check', check)
        verdict, failed = check.metadata['verdict'], check.metadata['failed']
        if verdict == 'fail':
            self.report(f'the potential fails the DFT check: {"; ".join(failed)}')
            error = self.exit_codes.ERROR_POTENTIAL_REJECTED.format(detail='; '.join(failed))
            return self._fail(error, 'the potential failed the DFT check')
        if verdict == 'accepted_by_user':
            self.report(f'potential fails the DFT check ({"; ".join(failed)}) but md.accept_potential=True: continuing')
        return None

    def await_phase_field(self):
        """The join: the phase field (usually still running on the fast protocol) and the checked DFT handoff."""
        return ToContext(phase_field=self.ctx.phase_field)

    def inspect_phase_field(self):
        return self._check_rung('phase_field', 'ERROR_PHASE_FIELD_FAILED')

    def bridge_mesoscale_to_fem(self):
        pf = self.ctx.phase_field
        kwargs = {
            'microstructure': pf.outputs.microstructure,
            'elastic': self.ctx.dft_to_md['elastic'],
            'interface': self.ctx.md_to_mesoscale['interface'],
            'potential_check': self.ctx.potential_check,
        }
        if 'initial_microstructure' in pf.outputs:
            kwargs['initial_microstructure'] = pf.outputs.initial_microstructure
        if 'parameters' in self.inputs.phase_field:
            kwargs['phase_field_parameters'] = self.inputs.phase_field.parameters
        if 'grain_statistics' in pf.outputs:
            kwargs['grain_statistics'] = pf.outputs.grain_statistics
        if 'realisations' in pf.outputs:
            for key, node in pf.outputs.realisations.items():
                kwargs[key] = node
        results, error = self._run_bridge(mesoscale_to_fem, **kwargs)
        if error:
            return error
        self.ctx.mesoscale_to_fem = results
        if 'initial_microstructure' in pf.outputs:
            self.out('initial_microstructure', pf.outputs.initial_microstructure)
        if 'grain_growth_plot' in pf.outputs:
            self.out('grain_growth_plot', pf.outputs.grain_growth_plot)
        self.out('microstructure', results['microstructure'])

    def run_fem(self):
        inputs = self.exposed_inputs(FemWorkChain, namespace='fem')
        inputs['microstructure'] = self.ctx.mesoscale_to_fem['microstructure']
        inputs['elastic'] = self.ctx.mesoscale_to_fem['elastic']
        further = {k: v for k, v in self.ctx.mesoscale_to_fem.items() if k.startswith('realisation_')}
        if further:
            inputs['realisations'] = further
        if inputs.get('plasticity'):
            inputs['element'] = self.inputs.element
        inputs.setdefault('metadata', {})['call_link_label'] = 'fem'
        node = self.submit(FemWorkChain, **inputs)
        self.report(f'launched FemWorkChain<{node.pk}>')
        return ToContext(fem=node)

    def inspect_fem(self):
        return self._check_rung('fem', 'ERROR_FEM_FAILED')

    def bridge_fem_to_macro(self):
        fem = self.ctx.fem
        kwargs = {
            'mechanics': fem.outputs.mechanics,
            'elastic': self.ctx.mesoscale_to_fem['elastic'],
            'microstructure': self.ctx.mesoscale_to_fem['microstructure'],
            'grains': self.ctx.mesoscale_to_fem['grains'],
        }
        plasticity = self.inputs.fem.get('plasticity') or {}
        if 'assumptions' in plasticity:
            kwargs['assumptions'] = plasticity['assumptions']
        results, error = self._run_bridge(fem_to_macro, **kwargs)
        if error:
            return error
        macro = results['macro']
        self.out('macro', macro)
        for name in ('stress_map', 'flow_curve_plot'):
            if name in fem.outputs:
                self.out(name, fem.outputs[name])
        if macro.metadata.get('variance_budget'):
            self.out(
                'variance_budget_plot',
                variance_budget_plot(macro, metadata={'call_link_label': 'variance_budget_plot'}),
            )
        summary = 'macro: E = {:.2f} +/- {:.2f} GPa, nu = {:.3f}'.format(
            macro['youngs_modulus'].value / 1e9, (macro['youngs_modulus'].std or 0) / 1e9, macro['poisson_ratio'].value
        )
        if 'yield_strength' in macro:
            summary += ', yield strength {:.1f} +/- {:.1f} MPa'.format(
                macro['yield_strength'].value / 1e6, (macro['yield_strength'].std or 0) / 1e6
            )
        weakest = macro.metadata.get('weakest')
        if weakest:
            summary += (
                f'; weakest input: {weakest["quantity"]} ({weakest["share"]:.0%} of the variance of '
                f'{weakest["macro_quantity"]})'
            )
        self.report(summary)
