"""``RveElasticityWorkChain``: effective elastic constants of a grain map's periodic RVE by MOOSE homogenisation."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain
from aiida.plugins import CalculationFactory

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose import rve
from aiida_multiscale.workflows.functions.fem import validate_elastic
from aiida_multiscale.workflows.functions.rve import (
    DEFAULT_PARAMETERS,
    rve_effective_elasticity,
    rve_elasticity_input,
    rve_parameters,
    validate_rve_parameters,
)

__all__ = ('RveElasticityWorkChain',)

MooseCalculation = CalculationFactory('multiscale.moose')

#: The calculation's inputs that this chain writes itself.
_EXCLUDED = ('input_file', 'input_folder', 'files', 'cmdline', 'parent_folder', 'recover', 'checkpoint_interval')


def _validate_inputs(inputs, _):
    """The mesh the parameters ask for must stay within what the serial LU solver takes."""
    micro = inputs.get('microstructure')
    if micro is None:
        return None
    values = rve_parameters(inputs.get('parameters'))
    nx, ny, nz = rve.rve_mesh_shape(micro.grid_shape, values['mesh_scale'], int(values['layers']))
    if nx * ny * nz > rve.MAX_ELEMENTS:
        return (
            f'parameters: the RVE of the {micro.grid_shape[1]} x {micro.grid_shape[0]} map would have {nx * ny * nz} '
            f'elements, more than {rve.MAX_ELEMENTS}: lower mesh_scale (elements per pixel) or layers'
        )


class RveElasticityWorkChain(WorkChain):
    """The effective elastic constants of a grain map's periodic RVE, by MOOSE homogenisation.

    The map is extruded into a box, periodic on all faces, with the cubic Cij rotated into each element by its grain's
    Bunge angles; the six unit macroscopic strains are imposed through the homogenisation constraint, one per time
    step of one MooseCalculation, and the average stresses give C_eff column by column.  A building block of the FEM
    rung (issue 15): one MooseCalculation, no restarts (a linear solve of seconds), not yet part of the chain.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MooseCalculation, namespace='moose', exclude=_EXCLUDED)
        spec.inputs['moose'].help = 'Inputs of the MooseCalculation: code, threads, metadata.options.'
        spec.input(
            'microstructure',
            valid_type=MicrostructureData,
            help='Periodic grain map with Bunge Euler angles per grain (e.g. the output of PhaseFieldWorkChain).',
        )
        spec.input(
            'elastic',
            valid_type=HandoffData,
            validator=validate_elastic,
            help='Cubic elastic constants c11, c12, c44 of the crystal (any pressure unit, converted with pint).',
        )
        defaults = ', '.join(f'{key} = {value}' for key, value in DEFAULT_PARAMETERS.items())
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_rve_parameters,
            help='applied_strain (size of each of the six unit load cases), mesh_scale (elements per pixel), layers '
            f'(elements along the extrusion z), loading_axis (x, y or z: the axis of E and nu); defaults: {defaults}.',
        )
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.setup, cls.run_moose, cls.results)
        spec.output(
            'elasticity',
            valid_type=HandoffData,
            help='c11_eff, c12_eff, c44_eff [Pa] (cubic projection of C_eff in the sample axes), youngs_modulus [Pa] '
            'and poisson_ratio along the loading axis; the full C_eff in its metadata.',
        )
        spec.output(
            'stiffness',
            valid_type=orm.ArrayData,
            help='C_eff: array `stiffness`, 6x6 Voigt (11 22 33 23 13 12, engineering shear), in Pa.',
        )
        spec.exit_code(
            310, 'ERROR_MOOSE_FAILED', message='MooseCalculation<{pk}> failed: [{status}] {message}'
        )  # fmt: skip
        spec.exit_code(311, 'ERROR_MISSING_OUTPUT', message='MooseCalculation<{pk}> did not produce {output}.')
        spec.exit_code(
            312, 'ERROR_LOAD_CASES', message='MooseCalculation<{pk}>: the six load cases are not usable: {message}'
        )  # fmt: skip

    def setup(self):
        """Render the input (a calcfunction, so the graph shows which Cij and grain map it came from)."""
        values = rve_parameters(self.inputs.get('parameters'))
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(values).store()
        self.ctx.files = rve_elasticity_input(
            self.inputs.microstructure, self.inputs.elastic, self.ctx.parameters,
            metadata={'call_link_label': 'rve_elasticity_input'},
        )  # fmt: skip

    def run_moose(self):
        inputs = AttributeDict(self.exposed_inputs(MooseCalculation, namespace='moose'))
        inputs.input_file = self.ctx.files['input_file']
        inputs.files = {'euler_angles': self.ctx.files['euler_angles']}
        inputs.metadata = dict(inputs.get('metadata', {}))
        options = dict(inputs.metadata.get('options', {}))
        options['require_exodus'] = False  # only the averages are needed
        inputs.metadata['options'] = options
        inputs.metadata['call_link_label'] = 'moose'
        node = self.submit(MooseCalculation, **inputs)
        self.report(f'RVE of {self.inputs.microstructure.grain_count} grains: launched MooseCalculation<{node.pk}>')
        return ToContext(moose=node)

    def results(self):
        node = self.ctx.moose
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_MOOSE_FAILED.format(
                pk=node.pk, status=node.exit_status, message=node.exit_message
            )
        if 'postprocessors' not in node.outputs:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(pk=node.pk, output='postprocessors')
        # Checked before the calcfunction, so that an incomplete run ends in an exit code, not an excepted function.
        series = node.outputs.postprocessors
        try:
            rve.effective_stiffness(
                {name: series.get_array(name) for name in series.get_arraynames()},
                rve_parameters(self.ctx.parameters)['applied_strain'],
            )
        except (KeyError, ValueError) as exc:
            return self.exit_codes.ERROR_LOAD_CASES.format(pk=node.pk, message=str(exc))
        result = rve_effective_elasticity(
            node.outputs.postprocessors, self.inputs.microstructure, self.ctx.parameters,
            metadata={'call_link_label': 'rve_effective_elasticity'},
        )  # fmt: skip
        elasticity = result['elasticity']
        self.report(
            f'E = {elasticity.value("youngs_modulus", "GPa"):.5g} GPa, nu = {elasticity.value("poisson_ratio"):.4g}, '
            f'c11/c12/c44_eff = '
            + '/'.join(f'{elasticity.value(f"{n}_eff", "GPa"):.4g}' for n in ('c11', 'c12', 'c44'))
            + ' GPa'
        )
        self.out('elasticity', elasticity)
        self.out('stiffness', result['stiffness'])
