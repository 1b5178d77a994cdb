"""``FemWorkChain``: a polycrystal's effective elastic constants and yield strength from periodic RVEs in MOOSE."""

from __future__ import annotations

import math

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_multiscale.bridges.fem_to_macro import BOUNDS_TOLERANCE
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.solid_mechanics import FILE_BASE
from aiida_multiscale.workflows.base.moose import (
    MooseBaseWorkChain,
    define_walltime_restarts,
    max_iterations_with_walltime_restarts,
    rung_exit_code,
    set_moose_code,
    warn_walltime_restarts,
)
from aiida_multiscale.workflows.functions.fem import (
    default_parameters,
    fem_input,
    fem_mechanics,
    fem_stress_map,
    fem_summary,
    flow_curve_plot,
    parameters_with_defaults,
    validate_elastic,
)
from aiida_multiscale.workflows.functions.parameters import check_parameter_ranges
from aiida_multiscale.workflows.plasticity import BOUNDS_TOLERANCE as YIELD_BOUNDS_TOLERANCE
from aiida_multiscale.workflows.plasticity import RvePlasticityWorkChain, yield_outside_bounds
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin
from aiida_multiscale.workflows.rve import RveElasticityWorkChain

__all__ = ('FemWorkChain',)

#: Valid range of every key of ``parameters`` (the defaults are in the protocol file).
_RANGES = {'applied_strain': (0.0, 0.05), 'mesh_scale': (0.0, 4.0), 'thickness': (0.0, 10.0)}
#: Largest mesh the serial LU solve takes in reasonable time and memory here.
MAX_ELEMENTS = 250_000
#: Inputs of the MooseBaseWorkChain that the FEM rung sets itself: the model and a run without checkpoints (a
#: steady solve cannot be continued; a run killed at its walltime is run again with more time).
_EXCLUDED_INPUTS = (
    'metadata',
    'checkpoint_interval',
    'moose.input_file',
    'moose.input_folder',
    'moose.files',
    'moose.cmdline',
    'moose.parent_folder',
    'moose.recover',
)


# ---------------------------------------------------------------------------------------------------- validators
def validate_parameters(node, _):
    """Only known keys, each a number in its range."""
    if node is None:
        return None
    return check_parameter_ranges(node.get_dict(), default_parameters(), _RANGES)


def validate_inputs(inputs, _):
    """The mesh the parameters ask for must stay solvable; crystal plasticity needs its element and its inputs."""
    has_plasticity = bool(inputs.get('plasticity'))
    if has_plasticity and inputs.get('element') is None:
        return 'plasticity: the crystal-plasticity RVE needs `element` (its stored assumptions are per element)'
    if inputs.get('element') is not None and not has_plasticity:
        return (
            'element is given but the `plasticity` inputs are not: build them with '
            'FemWorkChain.get_builder_from_protocol(code, element=...) or leave out element (elasticity only)'
        )
    micro = inputs.get('microstructure')
    if micro is None:
        return None
    scale = parameters_with_defaults(inputs.get('parameters'))['mesh_scale']
    ny, nx = micro.grid_shape
    elements = max(1, round(nx * scale)) * max(1, round(ny * scale))
    if elements > MAX_ELEMENTS:
        return (
            f'parameters: mesh_scale = {scale} gives {elements} elements for the {nx} x {ny} grain map; at most '
            f'{MAX_ELEMENTS}: lower mesh_scale'
        )


class FemWorkChain(ProtocolMixin, WorkChain):
    """The polycrystal's effective elastic constants and yield strength from periodic RVEs in MOOSE.

    Per realisation of the grain map (``microstructure`` plus any in ``realisations``), two MOOSE models run side by
    side: the periodic RVE of :class:`~aiida_multiscale.workflows.rve.RveElasticityWorkChain` (six strain cases
    through the homogenisation constraint: the aggregate's C_eff, E and nu along x) and, when ``element`` and the
    ``plasticity`` inputs are given, the crystal-plasticity RVE of
    :class:`~aiida_multiscale.workflows.plasticity.RvePlasticityWorkChain` (uniaxial tension, Hall-Petch slip
    resistance per grain: yield strength, flow stress, Taylor factor, with the Sachs and Taylor estimates).  A slab
    of the first map stretched by grips gives the stress map and the stress concentration (and its apparent modulus,
    reported beside the aggregate's).  Every RVE's E_eff is checked against the Voigt-Reuss bounds of its own
    orientations (exit code 330) and every yield strength against Sachs-Taylor (exit code 340) before anything is
    handed on; :func:`~aiida_multiscale.workflows.functions.fem.fem_summary` averages over the realisations.

    The slab runs in a :class:`~aiida_multiscale.workflows.base.moose.MooseBaseWorkChain` whose inputs this rung
    exposes (``moose.code``, ``moose.metadata.options``, ``max_iterations``, ``max_wallclock_seconds_limit``); the
    elastic RVEs use the same code and options.
    """

    _protocol_file = 'fem'
    _open_paths = ('plasticity.overrides',)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MooseBaseWorkChain, exclude=_EXCLUDED_INPUTS)
        spec.inputs['moose'].help = 'Inputs of the MooseCalculation: code, threads, metadata.options.'
        define_walltime_restarts(spec)
        spec.input(
            'microstructure',
            valid_type=MicrostructureData,
            help='Periodic grain map with Bunge Euler angles per grain (e.g. the output of PhaseFieldWorkChain): '
            'realisation 0, also the one of the slab and its stress map.',
        )
        spec.input_namespace(
            'realisations',
            valid_type=MicrostructureData,
            dynamic=True,
            required=False,
            help='Further realisations of the grain map (other seeds of the same anneal), each run through the same '
            'RVEs; the results are averaged with `microstructure` and their spread enters the std.',
        )
        spec.input(
            'elastic',
            valid_type=HandoffData,
            validator=validate_elastic,
            help='Cubic elastic constants c11, c12, c44 (any pressure unit, converted with pint), '
            'e.g. the `elastic` output of DftWorkChain.',
        )
        spec.input(
            'element',
            valid_type=orm.Str,
            required=False,
            help='Chemical symbol of the fcc metal: with it (and the `plasticity` inputs) the crystal-plasticity RVE '
            'runs; without it the rung gives the elastic constants only.',
        )
        spec.expose_inputs(
            RvePlasticityWorkChain,
            namespace='plasticity',
            exclude=('microstructure', 'elastic', 'element'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': 'Inputs of the crystal-plasticity RVE (RvePlasticityWorkChain): code, assumptions, '
                'parameters, max_elements; the rung sets microstructure, elastic and element.',
            },
        )
        defaults = ', '.join(f'{key} = {value}' for key, value in default_parameters().items())
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help='applied_strain (tension along x), mesh_scale (elements per pixel, slab and elastic RVE), thickness '
            f'(pixels, slab); defaults: {defaults}.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_models, cls.inspect_models, cls.results)
        spec.output(
            'mechanics',
            valid_type=HandoffData,
            help='Means over the realisations: youngs_modulus [Pa], poisson_ratio, c11_eff, c12_eff, c44_eff [Pa] '
            '(periodic RVE); youngs_modulus_voigt/reuss/hill [Pa], poisson_ratio_hill; with crystal plasticity '
            'yield_strength, yield_strength_sachs, yield_strength_taylor, flow_stress [Pa], taylor_factor; '
            'youngs_modulus_apparent [Pa] and stress_concentration (slab with grips); grain_count.',
        )
        spec.output(
            'stress_map',
            valid_type=orm.SinglefileData,
            help='PNG of the von Mises stress over the applied stress in the slab, grain boundaries overlaid.',
        )
        spec.output_namespace(
            'flow_curves',
            valid_type=orm.ArrayData,
            dynamic=True,
            required=False,
            help='Per realisation (realisation_0, ...): strain, true stress [Pa] and PK1 stress of the tensile test.',
        )
        spec.output(
            'flow_curve_plot',
            valid_type=orm.SinglefileData,
            required=False,
            help="PNG of every realisation's flow curve with its Sachs-Taylor band and 0.2 % offset yield.",
        )
        spec.exit_code(310, 'ERROR_MOOSE_FAILED', message='MooseBaseWorkChain<{pk}> failed: [{status}] {message}')
        spec.exit_code(311, 'ERROR_MISSING_OUTPUT', message='MooseBaseWorkChain<{pk}> did not produce {output}.')
        spec.exit_code(
            312, 'ERROR_RVE_FAILED', message='{label}: {process}<{pk}> failed: [{status}] {message}'
        )  # fmt: skip
        spec.exit_code(320, 'ERROR_OUT_OF_WALLTIME', message='FEM rung: {message}')
        spec.exit_code(
            330,
            'ERROR_OUTSIDE_BOUNDS',
            message='{label}: E_eff = {youngs:.4g} GPa lies outside the Voigt-Reuss bounds [{reuss:.4g}, {voigt:.4g}] '
            'GPa of the same orientations: the mesh or the boundary conditions are wrong.',
        )
        spec.exit_code(
            340,
            'ERROR_YIELD_OUTSIDE_SACHS_TAYLOR',
            message='{label}: the crystal-plasticity yield strength lies outside its Sachs-Taylor interval: {message}',
        )

    @classmethod
    def get_builder_from_protocol(
        cls, code, microstructure=None, elastic=None, protocol=None, overrides=None, options=None, element=None
    ):
        """Builder for ``code`` (a ``multiscale.moose`` code) from the protocol, with validated ``overrides``.

        :param microstructure: MicrostructureData (may be set later, e.g. by MultiscaleWorkChain).
        :param elastic: HandoffData with c11, c12, c44 (may be set later).
        :param overrides: nested dict over the protocol (``parameters``, ``options``, ``max_iterations``,
            ``plasticity``: ``{'enabled': bool, 'overrides': {...}}`` for the crystal-plasticity RVE's own protocol);
            ``None`` removes a key.
        :param options: ``metadata.options`` of the MooseCalculations, on top of the protocol's; checked by
            :func:`aiida_multiscale.resources.resolve_options`.
        :param element: chemical symbol: with it, and ``plasticity.enabled`` in the protocol, the rung runs the
            crystal-plasticity RVE on the protocol of the same name (its assumptions become inputs).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        set_moose_code(builder, code, 'fem', inputs, options)
        if microstructure is not None:
            builder.microstructure = microstructure
        if elastic is not None:
            builder.elastic = elastic
        builder.parameters = orm.Dict(dict(inputs['parameters']))
        builder.max_iterations = orm.Int(inputs['max_iterations'])
        plasticity = inputs.get('plasticity') or {}
        if element is not None and plasticity.get('enabled', True):
            sub = RvePlasticityWorkChain.get_builder_from_protocol(
                code, element, protocol=protocol, overrides=plasticity.get('overrides') or None, options=options
            )
            builder.element = orm.Str(element)
            pruned = sub._inputs(prune=True)
            for key in ('microstructure', 'elastic', 'element', 'metadata'):
                pruned.pop(key, None)
            builder.plasticity = pruned
        return builder

    def _realisations(self) -> list[tuple[str, MicrostructureData]]:
        maps = [('0', self.inputs.microstructure)]
        for index, key in enumerate(sorted(self.inputs.get('realisations', {})), start=1):
            maps.append((str(index), self.inputs.realisations[key]))
        return maps

    def setup(self):
        """Render the slab's MOOSE input (a calcfunction, so the graph shows which Cij and grain map it came from)."""
        warn_walltime_restarts(self)
        parameters = parameters_with_defaults(self.inputs.get('parameters'))
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(parameters).store()
        self.ctx.files = fem_input(
            self.inputs.microstructure, self.inputs.elastic, self.ctx.parameters,
            metadata={'call_link_label': 'fem_input'},
        )  # fmt: skip
        self.ctx.plastic = bool(self.inputs.get('plasticity'))
        counts = ', '.join(str(micro.grain_count) for _, micro in self._realisations())
        what = 'elasticity and crystal plasticity' if self.ctx.plastic else 'elasticity'
        self.report(f'{what} of {len(self._realisations())} realisation(s) with {counts} grains')

    def run_models(self):
        """The slab, and per realisation the elastic RVE and (with plasticity) the crystal-plasticity RVE, together."""
        inputs = AttributeDict(self.exposed_inputs(MooseBaseWorkChain))
        inputs.moose.input_file = self.ctx.files['input_file']
        inputs.moose.files = {'euler_angles': self.ctx.files['euler_angles']}
        inputs.checkpoint_interval = orm.Float(0)
        inputs.max_iterations = orm.Int(max_iterations_with_walltime_restarts(self.inputs))
        inputs.metadata = {'call_link_label': 'moose'}
        slab = self.submit(MooseBaseWorkChain, **inputs)
        launched = {'moose': slab}
        moose = {key: self.inputs.moose[key] for key in ('code', 'metadata', 'threads') if key in self.inputs.moose}
        values = parameters_with_defaults(self.ctx.parameters)
        rve_parameters = orm.Dict({'mesh_scale': values['mesh_scale'], 'layers': 1, 'loading_axis': 'x'})
        for key, micro in self._realisations():
            launched[f'rve_elasticity_{key}'] = self.submit(
                RveElasticityWorkChain,
                moose=moose,
                microstructure=micro,
                elastic=self.inputs.elastic,
                parameters=rve_parameters,
                metadata={'call_link_label': f'rve_elasticity_{key}'},
            )
            if self.ctx.plastic:
                plasticity = AttributeDict(self.exposed_inputs(RvePlasticityWorkChain, namespace='plasticity'))
                plasticity.microstructure = micro
                plasticity.elastic = self.inputs.elastic
                plasticity.element = self.inputs.element
                plasticity.metadata = {'call_link_label': f'rve_plasticity_{key}'}
                launched[f'rve_plasticity_{key}'] = self.submit(RvePlasticityWorkChain, **plasticity)
        self.report('launched ' + ', '.join(f'{node.process_label}<{node.pk}>' for node in launched.values()))
        return ToContext(**launched)

    def inspect_models(self):
        node = self.ctx.moose
        if not node.is_finished_ok:
            return rung_exit_code(self.exit_codes, node)
        for output in ('output_parameters', 'exodus'):
            if output not in node.outputs:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output=output)
        if node.outputs.output_parameters['csv_file'] != f'{FILE_BASE}.csv':
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output=f'{FILE_BASE}.csv')
        for key, _ in self._realisations():
            for label in (f'rve_elasticity_{key}', f'rve_plasticity_{key}'):
                child = self.ctx.get(label)
                if child is None or child.is_finished_ok:
                    continue
                if child.exit_status == RvePlasticityWorkChain.exit_codes.ERROR_YIELD_OUTSIDE_SACHS_TAYLOR.status:
                    return self.exit_codes.ERROR_YIELD_OUTSIDE_SACHS_TAYLOR.format(
                        label=label, message=child.exit_message
                    )
                return self.exit_codes.ERROR_RVE_FAILED.format(
                    label=label, process=child.process_label, pk=child.pk, status=child.exit_status,
                    message=child.exit_message or '',
                )  # fmt: skip
        return None

    def results(self):
        """Each RVE checked against its bounds, then the mean over realisations (a calcfunction); map and curves."""
        slab = fem_mechanics(
            self.ctx.moose.outputs.output_parameters, self.inputs.microstructure, self.inputs.elastic,
            metadata={'call_link_label': 'fem_mechanics'},
        )  # fmt: skip
        kwargs = {}
        for key, micro in self._realisations():
            kwargs[f'microstructure_{key}'] = micro
            kwargs[f'elasticity_{key}'] = self.ctx[f'rve_elasticity_{key}'].outputs.elasticity
            if self.ctx.plastic:
                node = self.ctx[f'rve_plasticity_{key}']
                kwargs[f'plasticity_{key}'] = node.outputs.plasticity
                kwargs[f'flow_curve_{key}'] = node.outputs.flow_curve
                kwargs[f'slip_resistance_{key}'] = node.outputs.slip_resistance
        if self.ctx.plastic:
            kwargs['assumptions'] = self.ctx['rve_plasticity_0'].inputs.assumptions
        result = fem_summary(slab, self.inputs.elastic, **kwargs, metadata={'call_link_label': 'fem_summary'})
        # The checks come before the outputs, so that a number outside its bounds is never handed on: it stays in
        # the provenance as the output of fem_summary, for inspection.  The tolerance is the fem_to_macro bridge's.
        for index, row in enumerate(result.metadata['realisations']):
            youngs, voigt, reuss = (
                row[name] / 1e9 for name in ('youngs_modulus', 'youngs_modulus_voigt', 'youngs_modulus_reuss')
            )
            self.report(f'realisation {index}: E_eff = {youngs:.4g} GPa in [Reuss {reuss:.4g}, Voigt {voigt:.4g}] GPa')
            if math.isnan(youngs) or not reuss * (1 - BOUNDS_TOLERANCE) <= youngs <= voigt * (1 + BOUNDS_TOLERANCE):
                return self.exit_codes.ERROR_OUTSIDE_BOUNDS.format(
                    label=f'realisation {index}', youngs=youngs, reuss=reuss, voigt=voigt
                )
            if self.ctx.plastic:
                value, sachs, taylor = (
                    row[name] for name in ('yield_strength', 'yield_strength_sachs', 'yield_strength_taylor')
                )
                if yield_outside_bounds(value, sachs, taylor, YIELD_BOUNDS_TOLERANCE):  # checked by the RVE too
                    return self.exit_codes.ERROR_YIELD_OUTSIDE_SACHS_TAYLOR.format(
                        label=f'realisation {index}',
                        message=f'{value / 1e6:.4g} MPa, Sachs {sachs / 1e6:.4g}, Taylor {taylor / 1e6:.4g} MPa',
                    )
        summary = f'E = {result.value("youngs_modulus", "GPa"):.4g} GPa, nu = {result.value("poisson_ratio"):.4g}'
        if self.ctx.plastic:
            summary += f', yield strength {result.value("yield_strength", "MPa"):.4g} MPa'
        self.report(summary)
        self.out('mechanics', result)
        self.out('stress_map', fem_stress_map(
            self.ctx.moose.outputs.exodus, self.inputs.microstructure, self.ctx.parameters,
            metadata={'call_link_label': 'fem_stress_map'},
        ))  # fmt: skip
        if self.ctx.plastic:
            curves = {f'realisation_{key}': kwargs[f'flow_curve_{key}'] for key, _ in self._realisations()}
            self.out('flow_curves', curves)
            self.out(
                'flow_curve_plot', flow_curve_plot(result, **curves, metadata={'call_link_label': 'flow_curve_plot'})
            )
