"""``RvePlasticityWorkChain``: tensile yield strength of a grain map's periodic RVE by crystal plasticity in MOOSE."""

from __future__ import annotations

import math

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose import plasticity as cp
from aiida_multiscale.engines.moose.rve import MAX_ELEMENTS, rve_mesh_shape
from aiida_multiscale.workflows.base.moose import MooseBaseWorkChain, rung_exit_code, set_moose_code
from aiida_multiscale.workflows.functions.fem import validate_elastic
from aiida_multiscale.workflows.functions.plasticity import (
    ASSUMPTION_UNITS,
    DEFAULT_PARAMETERS,
    cp_rve_analysis,
    cp_rve_input,
    equivalent_circle_diameters,
    grain_slip_resistance,
    limit_mesh_scale,
    limited_mesh_scale,
    make_plasticity_assumptions,
    plasticity_parameters,
    reported_flow_strain,
    validate_plasticity_assumptions,
    validate_plasticity_parameters,
)
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin, load_protocol_file

__all__ = ('BOUNDS_TOLERANCE', 'RvePlasticityWorkChain', 'yield_outside_bounds')

#: Relative tolerance of the check Sachs <= yield <= Taylor: the RVE's discretisation (a few elements per grain,
#: stress concentrations at triple points not resolved) and the hardening reached by the 0.2 % offset (the bounds use
#: the initial slip resistance) move the yield by a few per cent.
BOUNDS_TOLERANCE = 0.05

#: Inputs of the MooseBaseWorkChain that this chain sets itself.
_EXCLUDED_INPUTS = (
    'metadata',
    'moose.input_file',
    'moose.input_folder',
    'moose.files',
    'moose.cmdline',
    'moose.parent_folder',
    'moose.recover',
)


def yield_outside_bounds(value: float, sachs: float, taylor: float, tolerance: float = BOUNDS_TOLERANCE) -> bool:
    """Whether a yield strength lies outside ``[Sachs (1 - tolerance), Taylor (1 + tolerance)]`` (or is NaN)."""
    return math.isnan(value) or not sachs * (1 - tolerance) <= value <= taylor * (1 + tolerance)


def _stored_elements() -> list[str]:
    return sorted(load_protocol_file('plasticity')['default_inputs']['assumptions'])


def validate_element(node, _=None) -> str | None:
    if node is None:
        return None
    if not node.value or not node.value[0].isupper():
        return f'element = {node.value!r} must be a chemical symbol, e.g. Al or Cu'
    return None


def validate_inputs(inputs, _):
    """Assumptions for the element (given, or stored in plasticity.yaml); the mesh within the serial solver's reach."""
    element = inputs.get('element')
    if 'assumptions' not in inputs and element is not None and element.value not in _stored_elements():
        return (
            f'element {element.value!r} has no stored crystal-plasticity assumptions (plasticity.yaml has '
            f'{", ".join(_stored_elements())}): give the `assumptions` input, a HandoffData with '
            + ', '.join(ASSUMPTION_UNITS)
            + ' (each with value, unit, std and source note)'
        )
    micro = inputs.get('microstructure')
    if micro is None:
        return None
    values = plasticity_parameters(inputs.get('parameters'))
    if inputs.get('max_elements') is not None:
        if inputs['max_elements'].value < 1:
            return f'max_elements = {inputs["max_elements"].value} must be at least 1'
        values['mesh_scale'] = limited_mesh_scale(micro.grid_shape, values['mesh_scale'], inputs['max_elements'].value)
    nx, ny, nz = rve_mesh_shape(micro.grid_shape, values['mesh_scale'], int(values['layers']))
    if nx * ny * nz > MAX_ELEMENTS:
        return (
            f'parameters: the RVE of the {micro.grid_shape[1]} x {micro.grid_shape[0]} map would have {nx * ny * nz} '
            f'elements, more than {MAX_ELEMENTS}: lower mesh_scale (elements per pixel) or layers'
        )
    assumptions = inputs.get('assumptions')
    if assumptions is None and element is not None:
        assumptions = make_plasticity_assumptions(element.value)  # the stored ones, as setup will use them
    if assumptions is not None and validate_plasticity_assumptions(assumptions) is None:
        # The hardening law needs t_sat above every grain's slip resistance (the smallest grain is the hardest).
        sizes = equivalent_circle_diameters(micro)
        sizes = sizes[sizes > 0]
        taylor = assumptions.value('taylor_factor_random', 'dimensionless')
        hardest = (
            assumptions.value('friction_stress', 'MPa') + assumptions.value('hall_petch_coefficient', 'MPa*m**0.5')
            / math.sqrt(sizes.min())
        ) / taylor  # fmt: skip
        t_sat = assumptions.value('saturation_strength', 'MPa')
        if hardest >= t_sat:
            return (
                f'assumptions: the smallest grain ({sizes.min():.3g} m) starts at tau_c = {hardest:.4g} MPa, above the '
                f'saturation strength {t_sat:.4g} MPa: check the pixel size of the microstructure (m) or raise '
                'saturation_strength'
            )
    return None


class RvePlasticityWorkChain(ProtocolMixin, WorkChain):
    """Tensile yield strength of a grain map's periodic RVE by fcc crystal plasticity, checked against Sachs/Taylor.

    The map is extruded into a periodic box (the elastic RVE's mesh), each grain with its Bunge angles and its own
    initial slip resistance from Hall-Petch at its equivalent-circle diameter; MOOSE stretches it along x under
    uniaxial stress with the Kalidindi flow rule and hardening on the 12 {111}<110> systems
    (:mod:`aiida_multiscale.engines.moose.plasticity`).  The 0.2 % offset yield, the flow stress and the RVE's Taylor
    factor are handed on together with the Sachs and Taylor estimates of the same grains (computed without MOOSE);
    a yield outside [Sachs, Taylor] by more than :data:`BOUNDS_TOLERANCE` ends in exit code 340 before anything is
    handed on.  The run is one :class:`~aiida_multiscale.workflows.base.moose.MooseBaseWorkChain` (restarts after a
    walltime kill or a failed solve).  Issue 15 items 2 and 3; not yet wired into the FEM rung.
    """

    _protocol_file = 'plasticity'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MooseBaseWorkChain, exclude=_EXCLUDED_INPUTS)
        spec.inputs['moose'].help = 'Inputs of the MooseCalculation: code, threads, metadata.options.'
        spec.input(
            'microstructure',
            valid_type=MicrostructureData,
            help='Periodic grain map with Bunge Euler angles per grain and a pixel size in m (the grain sizes of '
            'Hall-Petch), e.g. the output of PhaseFieldWorkChain.',
        )
        spec.input(
            'elastic',
            valid_type=HandoffData,
            validator=validate_elastic,
            help='Cubic elastic constants c11, c12, c44 of the crystal (any pressure unit, converted with pint).',
        )
        spec.input(
            'element',
            valid_type=orm.Str,
            validator=validate_element,
            help='Chemical symbol of the fcc metal; selects the stored assumptions of plasticity.yaml when '
            '`assumptions` is not given (stored: Al, Cu).',
        )
        spec.input(
            'assumptions',
            valid_type=HandoffData,
            required=False,
            validator=validate_plasticity_assumptions,
            help='Assumed model inputs with their sources: ' + ', '.join(ASSUMPTION_UNITS) + '. Default: the '
            "element's entry of plasticity.yaml (get_builder_from_protocol sets it, so it is an input in the graph).",
        )
        defaults = ', '.join(f'{key} = {value}' for key, value in DEFAULT_PARAMETERS.items())
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_plasticity_parameters,
            help='strain (final F11 - 1), strain_rate (1/s), steps, mesh_scale (elements per pixel), layers, '
            f'tau_c_resolution (MPa), flow_strain; defaults: {defaults}.',
        )
        spec.input(
            'max_elements',
            valid_type=orm.Int,
            required=False,
            help='Most elements per layer: mesh_scale is lowered (never raised) to stay within it for the given map, '
            'by the calcfunction limit_mesh_scale (crystal plasticity costs about 25 ms of CPU per element and step).',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_moose, cls.inspect_moose, cls.results)
        spec.output(
            'plasticity',
            valid_type=HandoffData,
            help='yield_strength (0.2 % offset), flow_stress, youngs_modulus, yield_strength_sachs, '
            'yield_strength_taylor [Pa] and taylor_factor (yield over mean tau_c).',
        )
        spec.output(
            'flow_curve',
            valid_type=orm.ArrayData,
            help='Arrays strain (F11 - 1), stress (true, Pa) and stress_pk1 (nominal, Pa) of the tensile test.',
        )
        spec.output(
            'slip_resistance',
            valid_type=orm.ArrayData,
            help='Per grain: tau_c (Pa, as used by MOOSE), tau_c_exact (Pa, before rounding) and grain_size (m).',
        )
        spec.exit_code(310, 'ERROR_MOOSE_FAILED', message='MooseBaseWorkChain<{pk}> failed: [{status}] {message}')
        spec.exit_code(311, 'ERROR_MISSING_OUTPUT', message='MooseBaseWorkChain<{pk}> did not produce {output}.')
        spec.exit_code(320, 'ERROR_OUT_OF_WALLTIME', message='crystal-plasticity RVE: {message}')
        spec.exit_code(321, 'ERROR_RECOVERY_FAILED', message='crystal-plasticity RVE: {message}')
        spec.exit_code(
            312, 'ERROR_FLOW_CURVE', message='MooseBaseWorkChain<{pk}>: the flow curve is not usable: {message}'
        )  # fmt: skip
        spec.exit_code(
            340,
            'ERROR_YIELD_OUTSIDE_SACHS_TAYLOR',
            message='plasticity handoff<{pk}>: yield_strength = {value:.4g} MPa lies outside [Sachs {sachs:.4g}, '
            'Taylor {taylor:.4g}] MPa by more than {tolerance:.0%}; not handed on (it stays the output of '
            'cp_rve_analysis for inspection).',
        )

    @classmethod
    def get_builder_from_protocol(
        cls, code, element, microstructure=None, elastic=None, protocol=None, overrides=None, options=None
    ):
        """Builder for ``code`` (a ``multiscale.moose`` code) and ``element`` from the protocol.

        The element's stored assumptions become the ``assumptions`` input (so they are in the graph with their
        sources); ``overrides`` is a nested dict over the protocol (``parameters``, ``assumptions``, ``options``,
        ``max_elements``, ``max_iterations``), ``None`` removes a key.  With a ``microstructure``, ``mesh_scale`` is
        lowered (never raised) so that the RVE has at most ``max_elements`` elements per layer.

        :param options: ``metadata.options`` of the MooseCalculation, on top of the protocol's.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        if element not in inputs['assumptions']:
            raise ValueError(
                f'no stored crystal-plasticity assumptions for {element!r} (plasticity.yaml has '
                f'{sorted(inputs["assumptions"])}): add them through overrides or give `assumptions` to the builder'
            )
        builder = cls.get_builder()
        set_moose_code(builder, code, 'fem', inputs, options)
        builder.element = orm.Str(element)
        builder.assumptions = make_plasticity_assumptions(element, inputs['assumptions'][element])
        parameters = dict(inputs['parameters'])
        builder.max_elements = orm.Int(inputs['max_elements'])
        if microstructure is not None:
            builder.microstructure = microstructure
            parameters['mesh_scale'] = limited_mesh_scale(
                microstructure.grid_shape, parameters['mesh_scale'], inputs['max_elements']
            )
        if elastic is not None:
            builder.elastic = elastic
        builder.parameters = orm.Dict(parameters)
        builder.max_iterations = orm.Int(inputs['max_iterations'])
        return builder

    def setup(self):
        """Slip resistances and the MOOSE input (calcfunctions: the graph shows the assumptions they came from)."""
        values = plasticity_parameters(self.inputs.get('parameters'))
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(values).store()
        micro = self.inputs.microstructure
        if 'max_elements' in self.inputs and values['mesh_scale'] > limited_mesh_scale(
            micro.grid_shape, values['mesh_scale'], self.inputs.max_elements.value
        ):
            self.ctx.parameters = limit_mesh_scale(
                self.ctx.parameters, micro, self.inputs.max_elements, metadata={'call_link_label': 'limit_mesh_scale'}
            )
            self.report(
                f'mesh_scale lowered to {self.ctx.parameters["mesh_scale"]} for at most '
                f'{self.inputs.max_elements.value} elements per layer'
            )
        if 'assumptions' in self.inputs:
            self.ctx.assumptions = self.inputs.assumptions
        else:
            self.ctx.assumptions = make_plasticity_assumptions(self.inputs.element.value).store()
        self.ctx.slip_resistance = grain_slip_resistance(
            self.inputs.microstructure, self.ctx.assumptions, self.ctx.parameters,
            metadata={'call_link_label': 'grain_slip_resistance'},
        )  # fmt: skip
        self.ctx.files = cp_rve_input(
            self.inputs.microstructure, self.inputs.elastic, self.ctx.slip_resistance, self.ctx.assumptions,
            self.ctx.parameters, metadata={'call_link_label': 'cp_rve_input'},
        )  # fmt: skip
        tau_c = self.ctx.slip_resistance.get_array('tau_c') / 1e6
        self.report(
            f'{self.inputs.element.value}: {self.inputs.microstructure.grain_count} grains, tau_c '
            f'{tau_c.min():.4g}..{tau_c.max():.4g} MPa (Hall-Petch at each grain size)'
        )

    def run_moose(self):
        inputs = AttributeDict(self.exposed_inputs(MooseBaseWorkChain))
        inputs.moose.input_file = self.ctx.files['input_file']
        inputs.moose.files = {
            'euler_angles': self.ctx.files['euler_angles'],
            'slip_systems': self.ctx.files['slip_systems'],
        }
        metadata = dict(inputs.moose.get('metadata', {}))
        options = dict(metadata.get('options', {}))
        options['require_exodus'] = False  # only the averages are needed
        metadata['options'] = options
        inputs.moose.metadata = metadata
        inputs.metadata = {'call_link_label': 'moose'}
        node = self.submit(MooseBaseWorkChain, **inputs)
        self.report(f'launched MooseBaseWorkChain<{node.pk}>')
        return ToContext(moose=node)

    def inspect_moose(self):
        node = self.ctx.moose
        if not node.is_finished_ok:
            return rung_exit_code(self.exit_codes, node)
        if 'postprocessors' not in node.outputs:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output='postprocessors')
        # Checked before the calcfunction, so that an unusable curve ends in an exit code, not an excepted function.
        series = node.outputs.postprocessors
        values = plasticity_parameters(self.ctx.parameters)
        try:
            strain, stress = cp.flow_curve({name: series.get_array(name) for name in series.get_arraynames()})
            cp.flow_curve_analysis(strain, stress, flow_strain=reported_flow_strain(values['flow_strain'], strain))
        except (KeyError, ValueError) as exc:
            return self.exit_codes.ERROR_FLOW_CURVE.format(pk=node.pk, message=str(exc))

    def results(self):
        """The analysis (a calcfunction), checked against Sachs and Taylor before anything is handed on."""
        result = cp_rve_analysis(
            self.ctx.moose.outputs.postprocessors, self.inputs.microstructure, self.ctx.slip_resistance,
            self.ctx.assumptions, self.ctx.parameters, metadata={'call_link_label': 'cp_rve_analysis'},
        )  # fmt: skip
        plasticity = result['plasticity']
        names = ('yield_strength', 'yield_strength_sachs', 'yield_strength_taylor')
        value, sachs, taylor = (plasticity.value(name, 'MPa') for name in names)
        self.report(
            f'yield {value:.4g} MPa in [Sachs {sachs:.4g}, Taylor {taylor:.4g}] MPa, flow stress '
            f'{plasticity.value("flow_stress", "MPa"):.4g} MPa, Taylor factor {plasticity.value("taylor_factor"):.3f}'
        )
        if yield_outside_bounds(value, sachs, taylor):
            return self.exit_codes.ERROR_YIELD_OUTSIDE_SACHS_TAYLOR.format(
                pk=plasticity.pk, value=value, sachs=sachs, taylor=taylor, tolerance=BOUNDS_TOLERANCE
            )
        self.out('plasticity', plasticity)
        self.out('flow_curve', result['flow_curve'])
        self.out('slip_resistance', self.ctx.slip_resistance)
