"""``FemWorkChain``: effective elastic moduli of a polycrystal from MOOSE, with Voigt/Reuss/Hill bounds, stress map."""

from __future__ import annotations

import io
import math

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, calcfunction, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.exodus import read_element_variables
from aiida_multiscale.engines.moose.solid_mechanics import FILE_BASE, build_elasticity_input, element_grain_map
from aiida_multiscale.physics import elasticity as mechanics
from aiida_multiscale.workflows.moose_restart import apply_restart, decide_restart, define_walltime_inputs
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin

__all__ = ('DEFAULT_PARAMETERS', 'FemWorkChain', 'fem_input', 'fem_mechanics', 'fem_stress_map')

MooseCalculation = CalculationFactory('multiscale.moose')

#: Every key of ``parameters`` with its default and valid range.
DEFAULT_PARAMETERS = {
    'applied_strain': 1.0e-3,  # engineering strain along x imposed by the grips
    'mesh_scale': 1.0,  # elements per pixel of the grain map along x and y
    'thickness': 1.0,  # slab thickness in pixels (one element through it)
}
_RANGES = {'applied_strain': (0.0, 0.05), 'mesh_scale': (0.0, 4.0), 'thickness': (0.0, 10.0)}
#: Relative slack on the bounds check: round-off and the free surfaces of the slab (a few 1e-4, FACTS.md).
BOUNDS_TOLERANCE = 2e-3
#: Largest mesh the serial LU solve takes in reasonable time and memory here.
MAX_ELEMENTS = 250_000


def _parameters(node) -> dict:
    values = dict(DEFAULT_PARAMETERS)
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def _constants_gpa(elastic: HandoffData) -> tuple[float, float, float]:
    return tuple(elastic.value(name, 'GPa') for name in ('c11', 'c12', 'c44'))


# ---------------------------------------------------------------------------------------------------- validators
def validate_elastic(node, _):
    """c11, c12 and c44 present, in a pressure unit, and Born-stable."""
    if node is None:
        return None
    missing = [name for name in ('c11', 'c12', 'c44') if name not in node]
    if missing:
        return f'elastic: quantities {missing} are missing; it needs c11, c12 and c44 (cubic, any pressure unit)'
    try:
        constants = _constants_gpa(node)
    except Exception as exc:  # pint raises several types for incompatible units
        return f'elastic: c11, c12 and c44 must be pressures (e.g. GPa, Pa): {exc}'
    errors = mechanics.born_stability_violations(*constants)
    if errors:
        return 'elastic: the elastic constants (GPa) are not Born-stable: ' + '; '.join(errors)


def validate_parameters(node, _):
    """Only known keys, each a number in its range."""
    if node is None:
        return None
    values = node.get_dict()
    unknown = set(values) - set(DEFAULT_PARAMETERS)
    if unknown:
        return f'parameters: unknown keys {sorted(unknown)}; allowed: {", ".join(DEFAULT_PARAMETERS)}'
    for key, (low, high) in _RANGES.items():
        if key in values:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                return f'parameters: {key} = {value!r} must be a number in ({low}, {high}]'


def validate_inputs(inputs, _):
    """The mesh the parameters ask for must stay solvable."""
    micro = inputs.get('microstructure')
    if micro is None:
        return None
    scale = _parameters(inputs.get('parameters'))['mesh_scale']
    ny, nx = micro.grid_shape
    elements = max(1, round(nx * scale)) * max(1, round(ny * scale))
    if elements > MAX_ELEMENTS:
        return (
            f'parameters: mesh_scale = {scale} gives {elements} elements for the {nx} x {ny} grain map; at most '
            f'{MAX_ELEMENTS}: lower mesh_scale'
        )


# ---------------------------------------------------------------------------------------------------- calcfunctions
@calcfunction
def fem_input(microstructure: MicrostructureData, elastic: HandoffData, parameters: orm.Dict):
    """Render the MOOSE input and the per-element Euler angles (the graph shows which Cij and map they came from)."""
    values = _parameters(parameters)
    model = build_elasticity_input(
        microstructure.grain_ids,
        microstructure.euler_angles,
        *_constants_gpa(elastic),
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
    stress = pps['average_stress_xx']  # GPa
    strain = pps['average_strain_xx']
    youngs = stress / strain * 1e9
    poisson = -pps['average_strain_yy'] / strain
    concentration = pps['max_vonmises'] / stress
    constants = _constants_gpa(elastic)
    bounds = mechanics.voigt_reuss_hill(*constants, microstructure.euler_angles, microstructure.area_fractions)
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
            'value': bounds['youngs_modulus_voigt'] * 1e9,
            'unit': 'Pa',
            'std': None,
            'note': f'Voigt (uniform strain, upper bound), {bound_note}',
        },
        'youngs_modulus_reuss': {
            'value': bounds['youngs_modulus_reuss'] * 1e9,
            'unit': 'Pa',
            'std': None,
            'note': f'Reuss (uniform stress, lower bound), {bound_note}',
        },
        'youngs_modulus_hill': {
            'value': bounds['youngs_modulus_hill'] * 1e9,
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
        bridge='fem_mechanics',
        from_scale='fem',
        to_scale='fem',
        metadata={'c11_c12_c44_GPa': list(constants), 'grain_count': int(n)},
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
    scale = _parameters(parameters)['mesh_scale']
    nx_el, ny_el = max(1, round(nx * scale)), max(1, round(ny * scale))
    grains = element_grain_map(microstructure.grain_ids, nx_el, ny_el)
    ratio = (vonmises / stress_xx.mean()).reshape(ny_el, nx_el)
    lx, ly = (length * 1e6 for length in microstructure.domain_size)
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
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    plt.close(figure)
    buffer.seek(0)
    return orm.SinglefileData(buffer, filename='stress_map.png')


class FemWorkChain(ProtocolMixin, BaseRestartWorkChain):
    """Effective elastic moduli of a polycrystal from MOOSE, with Voigt/Reuss/Hill bounds and a stress map.

    The grain map becomes a thin 3-D slab, one element through the thickness, with the cubic Cij rotated into every
    element by its grain's Bunge angles; grips stretch it along x.  E_eff and nu_eff come from the volume averages,
    the bounds from the same orientations in Python, so a wrong rotation convention or boundary condition shows up as
    E_eff outside [Reuss, Voigt] (exit code 330) instead of a silently wrong number.

    The MooseCalculation runs in a BaseRestartWorkChain loop for one reason: if the scheduler kills it at its
    walltime, :meth:`handle_out_of_walltime` resubmits it with twice the time (at most ``walltime_restarts`` times, up
    to ``max_wallclock_seconds_limit``).  The solve is steady, one Newton solve, so there is no checkpoint to continue
    from: more time is the only honest remedy.  Any other failure ends the work chain with ERROR_MOOSE_FAILED.
    """

    _process_class = MooseCalculation
    _protocol_file = 'fem'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            MooseCalculation,
            namespace='moose',
            exclude=('input_file', 'files', 'cmdline', 'checkpoint_interval', 'parent_folder', 'recover'),
            namespace_options={'help': 'Inputs of the MooseCalculation: code, threads, metadata.options.'},
        )
        define_walltime_inputs(spec)
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
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help='applied_strain (default 1e-3), mesh_scale (elements per pixel, default 1), thickness '
            '(pixels, default 1).',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
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
        spec.exit_code(310, 'ERROR_MOOSE_FAILED', message='The MooseCalculation<{pk}> failed: [{status}] {message}')
        spec.exit_code(311, 'ERROR_MISSING_OUTPUT', message='The MooseCalculation<{pk}> did not produce {output}.')
        spec.exit_code(
            320,
            'ERROR_OUT_OF_WALLTIME',
            message='FEM rung: MooseCalculation<{pk}> was killed at its walltime and is not resubmitted: {reason}.',
        )
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
        :param overrides: nested dict over the protocol (``parameters``, ``options``); ``None`` removes a key.
        :param options: ``metadata.options`` of the MooseCalculation, on top of the protocol's; checked by
            :func:`aiida_multiscale.resources.resolve_options`.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.moose.code = code
        from aiida_multiscale.resources import resolve_options

        threads = inputs.get('threads') or 1
        builder.moose.metadata.options = resolve_options('fem', code, inputs.get('options'), options, threads)
        if inputs.get('threads'):
            builder.moose.threads = orm.Int(inputs['threads'])
        if microstructure is not None:
            builder.microstructure = microstructure
        if elastic is not None:
            builder.elastic = elastic
        builder.parameters = orm.Dict(dict(inputs['parameters']))
        return builder

    def setup(self):
        super().setup()
        parameters = _parameters(self.inputs.get('parameters'))
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(parameters).store()
        self.ctx.files = fem_input(
            self.inputs.microstructure, self.inputs.elastic, self.ctx.parameters,
            metadata={'call_link_label': 'fem_input'},
        )  # fmt: skip
        inputs = AttributeDict(self.exposed_inputs(MooseCalculation, namespace='moose'))
        inputs.input_file = self.ctx.files['input_file']
        inputs.files = {'euler_angles': self.ctx.files['euler_angles']}
        inputs.metadata = dict(inputs.get('metadata', {}))
        self.ctx.inputs = inputs
        self.ctx.walltime_restarts = 0
        self.report(f'elasticity of {self.inputs.microstructure.grain_count} grains')

    @process_handler(priority=600, exit_codes=[MooseCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """Killed at the walltime: resubmit the same solve with twice the time, a bounded number of times."""
        decision = decide_restart(self, node, can_recover=False)
        what = f'{node.process_label}<{node.pk}> was killed at its walltime'
        if decision.action == 'give_up':
            self.report(f'{what}; giving up: {decision.message}')
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_OUT_OF_WALLTIME.format(pk=node.pk, reason=decision.message)
            )
        self.ctx.walltime_restarts += 1
        apply_restart(self.ctx.inputs, decision)
        self.report(
            f'{what} (walltime resubmission {self.ctx.walltime_restarts} of {self.inputs.walltime_restarts.value}): '
            f'{decision.message}'
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=0)
    def handle_failure(self, node):
        """Any other failure is final: say which one (the calculation's own exit code and message)."""
        if node.is_failed:
            exit_code = self.exit_codes.ERROR_MOOSE_FAILED.format(
                pk=node.pk, status=node.exit_status, message=node.exit_message
            )
            return ProcessHandlerReport(True, exit_code)
        return None

    def _check_outputs(self, node):
        for output in ('output_parameters', 'exodus'):
            if output not in node.outputs:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output=output)
        if node.outputs.output_parameters['csv_file'] != f'{FILE_BASE}.csv':
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output=f'{FILE_BASE}.csv')

    def results(self):
        node = self.ctx.children[self.ctx.iteration - 1]
        exit_code = self._check_outputs(node)
        if exit_code:
            return exit_code
        result = fem_mechanics(
            node.outputs.output_parameters, self.inputs.microstructure, self.inputs.elastic,
            metadata={'call_link_label': 'fem_mechanics'},
        )  # fmt: skip
        self.out('mechanics', result)
        self.out('stress_map', fem_stress_map(
            node.outputs.exodus, self.inputs.microstructure, self.ctx.parameters,
            metadata={'call_link_label': 'fem_stress_map'},
        ))  # fmt: skip
        youngs, voigt, reuss = (
            result.value(name, 'GPa') for name in ('youngs_modulus', 'youngs_modulus_voigt', 'youngs_modulus_reuss')
        )
        self.report(
            f'E_eff = {youngs:.4g} GPa in [Reuss {reuss:.4g}, Voigt {voigt:.4g}] GPa, '
            f'nu_eff = {result.value("poisson_ratio"):.4g}'
        )
        if not (reuss * (1 - BOUNDS_TOLERANCE) <= youngs <= voigt * (1 + BOUNDS_TOLERANCE)) or math.isnan(youngs):
            return self.exit_codes.ERROR_OUTSIDE_BOUNDS.format(youngs=youngs, reuss=reuss, voigt=voigt)
