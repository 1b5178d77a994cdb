"""``FemWorkChain``: effective elastic moduli of a polycrystal from MOOSE, with Voigt/Reuss/Hill bounds, stress map."""

from __future__ import annotations

import math

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_multiscale.bridges.fem_to_macro import BOUNDS_TOLERANCE
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.solid_mechanics import FILE_BASE, STRESS_UNIT
from aiida_multiscale.physics import elasticity as mechanics
from aiida_multiscale.workflows.base.moose import (
    MooseBaseWorkChain,
    define_walltime_restarts,
    max_iterations_with_walltime_restarts,
    rung_exit_code,
    set_moose_code,
    warn_walltime_restarts,
)
from aiida_multiscale.workflows.functions.fem import (
    cubic_constants,
    default_parameters,
    fem_input,
    fem_mechanics,
    fem_stress_map,
    parameters_with_defaults,
)
from aiida_multiscale.workflows.functions.parameters import check_parameter_ranges
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin

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


def validate_parameters(node, _):
    """Only known keys, each a number in its range."""
    if node is None:
        return None
    return check_parameter_ranges(node.get_dict(), default_parameters(), _RANGES)


def validate_inputs(inputs, _):
    """The mesh the parameters ask for must stay solvable."""
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
    """Effective elastic moduli of a polycrystal from MOOSE, with Voigt/Reuss/Hill bounds and a stress map.

    The grain map becomes a thin 3-D slab, one element through the thickness, with the cubic Cij rotated into every
    element by its grain's Bunge angles; grips stretch it along x.  E_eff and nu_eff come from the volume averages,
    the bounds from the same orientations in Python, so a wrong rotation convention or boundary condition shows up as
    E_eff outside [Reuss, Voigt] (exit code 330) instead of a silently wrong number.

    The solve runs in one :class:`~aiida_multiscale.workflows.base.moose.MooseBaseWorkChain`, whose inputs this rung
    exposes (``moose.code``, ``moose.metadata.options``, ``max_iterations``, ``max_wallclock_seconds_limit``): it
    answers the calculation's failures.  The solve is steady, one Newton solve, so there is no checkpoint to continue
    from: a run killed at its walltime is run again with more time.
    """

    _protocol_file = 'fem'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MooseBaseWorkChain, exclude=_EXCLUDED_INPUTS)
        spec.inputs['moose'].help = 'Inputs of the MooseCalculation: code, threads, metadata.options.'
        define_walltime_restarts(spec)
        spec.input(
            'microstructure',
            valid_type=MicrostructureData,
            help='Grain map with Bunge Euler angles per grain (e.g. the output of PhaseFieldWorkChain).',
        )
        spec.input(
            'elastic',
            valid_type=HandoffData,
            validator=validate_elastic,
            help='Cubic elastic constants c11, c12, c44 (any pressure unit, converted with pint), '
            'e.g. the `elastic` output of DftWorkChain.',
        )
        defaults = ', '.join(f'{key} = {value}' for key, value in default_parameters().items())
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help='applied_strain (tension along x), mesh_scale (elements per pixel), thickness (pixels); defaults: '
            f'{defaults}.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_moose, cls.inspect_moose, cls.results)
        spec.output(
            'mechanics',
            valid_type=HandoffData,
            help='youngs_modulus [Pa], poisson_ratio, youngs_modulus_voigt/reuss/hill [Pa], poisson_ratio_hill, '
            'stress_concentration (peak von Mises / applied stress).',
        )
        spec.output(
            'stress_map',
            valid_type=orm.SinglefileData,
            help='PNG of the von Mises stress over the applied stress, grain boundaries overlaid.',
        )
        spec.exit_code(310, 'ERROR_MOOSE_FAILED', message='MooseBaseWorkChain<{pk}> failed: [{status}] {message}')
        spec.exit_code(311, 'ERROR_MISSING_OUTPUT', message='MooseBaseWorkChain<{pk}> did not produce {output}.')
        spec.exit_code(320, 'ERROR_OUT_OF_WALLTIME', message='FEM rung: {message}')
        spec.exit_code(
            330,
            'ERROR_OUTSIDE_BOUNDS',
            message='E_eff = {youngs:.4g} GPa lies outside the Voigt-Reuss bounds [{reuss:.4g}, {voigt:.4g}] '
            'GPa of the same orientations: the mesh or the boundary conditions are wrong.',
        )

    @classmethod
    def get_builder_from_protocol(
        cls, code, microstructure=None, elastic=None, protocol=None, overrides=None, options=None
    ):
        """Builder for ``code`` (a ``multiscale.moose`` code) from the protocol, with validated ``overrides``.

        :param microstructure: MicrostructureData (may be set later, e.g. by MultiscaleWorkChain).
        :param elastic: HandoffData with c11, c12, c44 (may be set later).
        :param overrides: nested dict over the protocol (``parameters``, ``options``, ``max_iterations``); ``None``
            removes a key.
        :param options: ``metadata.options`` of the MooseCalculation, on top of the protocol's; checked by
            :func:`aiida_multiscale.resources.resolve_options`.
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
        return builder

    def setup(self):
        """Render the MOOSE input (a calcfunction, so the graph shows which Cij and grain map it came from)."""
        warn_walltime_restarts(self)
        parameters = parameters_with_defaults(self.inputs.get('parameters'))
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(parameters).store()
        self.ctx.files = fem_input(
            self.inputs.microstructure, self.inputs.elastic, self.ctx.parameters,
            metadata={'call_link_label': 'fem_input'},
        )  # fmt: skip
        self.report(f'elasticity of {self.inputs.microstructure.grain_count} grains')

    def run_moose(self):
        inputs = AttributeDict(self.exposed_inputs(MooseBaseWorkChain))
        inputs.moose.input_file = self.ctx.files['input_file']
        inputs.moose.files = {'euler_angles': self.ctx.files['euler_angles']}
        inputs.checkpoint_interval = orm.Float(0)
        inputs.max_iterations = orm.Int(max_iterations_with_walltime_restarts(self.inputs))
        inputs.metadata = {'call_link_label': 'moose'}
        node = self.submit(MooseBaseWorkChain, **inputs)
        self.report(f'launched MooseBaseWorkChain<{node.pk}>')
        return ToContext(moose=node)

    def inspect_moose(self):
        node = self.ctx.moose
        if not node.is_finished_ok:
            return rung_exit_code(self.exit_codes, node)
        for output in ('output_parameters', 'exodus'):
            if output not in node.outputs:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output=output)
        if node.outputs.output_parameters['csv_file'] != f'{FILE_BASE}.csv':
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output=f'{FILE_BASE}.csv')

    def results(self):
        """The moduli and bounds (a calcfunction), checked against the bounds before anything is handed on; the map."""
        node = self.ctx.moose
        result = fem_mechanics(
            node.outputs.output_parameters, self.inputs.microstructure, self.inputs.elastic,
            metadata={'call_link_label': 'fem_mechanics'},
        )  # fmt: skip
        youngs, voigt, reuss = (
            result.value(name, 'GPa') for name in ('youngs_modulus', 'youngs_modulus_voigt', 'youngs_modulus_reuss')
        )
        self.report(
            f'E_eff = {youngs:.4g} GPa in [Reuss {reuss:.4g}, Voigt {voigt:.4g}] GPa, '
            f'nu_eff = {result.value("poisson_ratio"):.4g}'
        )
        # The check comes before the outputs, so that a modulus outside its bounds is never handed on: it stays in the
        # provenance as the output of the fem_mechanics calcfunction, for inspection.  The tolerance is the fem_to_macro
        # bridge's, which checks the same bounds when the chain hands the result on.
        if not (reuss * (1 - BOUNDS_TOLERANCE) <= youngs <= voigt * (1 + BOUNDS_TOLERANCE)) or math.isnan(youngs):
            return self.exit_codes.ERROR_OUTSIDE_BOUNDS.format(youngs=youngs, reuss=reuss, voigt=voigt)
        self.out('mechanics', result)
        self.out('stress_map', fem_stress_map(
            node.outputs.exodus, self.inputs.microstructure, self.ctx.parameters,
            metadata={'call_link_label': 'fem_stress_map'},
        ))  # fmt: skip
