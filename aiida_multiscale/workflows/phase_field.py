"""``PhaseFieldWorkChain``: 2-D grain growth with MOOSE, in cycles with grain tracking and re-colouring between them."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, append_, while_

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.phase_field import (
    TIME_UNIT,
    RestartStart,
    VoronoiStart,
    build_grain_growth_input,
)
from aiida_multiscale.physics.units import factor
from aiida_multiscale.workflows.base.moose import (
    MooseBaseWorkChain,
    define_walltime_restarts,
    max_iterations_with_walltime_restarts,
    rung_exit_code,
    warn_walltime_restarts,
)
from aiida_multiscale.workflows.functions.phase_field import (
    INTERFACE_UNITS,
    analyse_cycle,
    collect_statistics,
    colouring_distance,
    default_parameters,
    grid_geometry,
    initial_colouring,
    initial_polycrystal,
    parameters_with_defaults,
)
from aiida_multiscale.workflows.protocols.anneal import standalone_interface
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin

__all__ = ('PhaseFieldWorkChain',)

#: Inputs of the MooseBaseWorkChain that the rung sets itself for every cycle: the model and its files, the threads
#: (``parameters.threads``), the recovery (the base chain's own business).
_EXCLUDED_INPUTS = (
    'metadata',
    'moose.input_file',
    'moose.input_folder',
    'moose.files',
    'moose.cmdline',
    'moose.threads',
    'moose.parent_folder',
    'moose.recover',
)


# ---------------------------------------------------------------------------------------------------- validators
def validate_interface(node, _):
    """sigma and M0 > 0, T > 0, anneal time > 0, Q >= 0, every quantity present and in a compatible unit."""
    if node is None:
        return None
    for name, unit in INTERFACE_UNITS.items():
        if name not in node:
            return f'interface: quantity {name!r} is missing; it needs {", ".join(INTERFACE_UNITS)}'
        try:
            value = node.value(name, unit)
        except Exception as exc:  # pint raises several types for incompatible units
            return f'interface: {name} cannot be converted to {unit}: {exc}'
        if name == 'activation_energy':
            if value < 0:
                return f'interface: activation_energy = {value:.4g} eV must be >= 0'
        elif value <= 0:
            what = {'gb_energy': 'GB energy sigma', 'mobility_prefactor': 'mobility prefactor M0'}.get(name, name)
            return f'interface: {name} ({what}) = {value:.4g} {unit} must be > 0 (valid range: (0, inf) {unit})'


def validate_parameters(node, _):
    """Types and ranges of ``parameters``; the interface width against the grid, and the colouring of the start."""
    if node is None:
        return None
    values = node.get_dict()
    unknown = sorted(set(values) - set(default_parameters()))
    if unknown:
        return f'parameters: unknown keys {unknown}; allowed: {", ".join(default_parameters())}'
    values = parameters_with_defaults(values)
    for key in ('grid', 'grains', 'order_parameters', 'cycles', 'frames_per_cycle', 'threads'):
        if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 1:
            return f'parameters: {key} must be a positive integer, got {values[key]!r}'
    if values['grid'] < 8:
        return f'parameters: grid = {values["grid"]} must be >= 8 elements per side'
    if values['grains'] < 2:
        return f'parameters: grains = {values["grains"]} must be >= 2'
    if values['order_parameters'] < 2:
        return f'parameters: order_parameters = {values["order_parameters"]} must be >= 2'
    if not isinstance(values['domain_size'], (int, float)) or values['domain_size'] <= 0:
        return f'parameters: domain_size must be a positive length in m, got {values["domain_size"]!r}'
    if values['solver'] not in ('newton', 'pjfnk'):
        return f"parameters: solver must be 'newton' or 'pjfnk', got {values['solver']!r}"
    if not 0 < float(values['dt_max_fraction']) <= 1:
        return f'parameters: dt_max_fraction must be in (0, 1], got {values["dt_max_fraction"]!r}'
    if not isinstance(values['recolouring'], bool):
        return f'parameters: recolouring must be true or false, got {values["recolouring"]!r}'
    geo = grid_geometry(values)
    if geo['width'] < 3 * geo['dx'] * (1 - 1e-9):
        return (
            f'parameters: interface_width = {geo["width"]:.4g} m is under 3 elements (dx = {geo["dx"]:.4g} m); '
            f'valid range: [{3 * geo["dx"]:.4g}, {geo["initial_size"] / 4:.4g}] m (refine the grid or widen it)'
        )
    if geo['width'] > geo['initial_size'] / 4:
        return (
            f'parameters: interface_width = {geo["width"]:.4g} m is over a quarter of the initial grain size '
            f'{geo["initial_size"]:.4g} m; valid range: [{3 * geo["dx"]:.4g}, {geo["initial_size"] / 4:.4g}] m '
            '(use fewer grains, a larger domain or a finer grid)'
        )
    _, _, colours = initial_colouring(values)
    needed = max(colours.values()) + 1
    if values['order_parameters'] < needed:
        return (
            f'parameters: order_parameters = {values["order_parameters"]} is fewer than the {needed} that the '
            f'colouring of this Voronoi start needs (grains = {values["grains"]}, seed = {values["seed"]}, grains '
            f'closer than {colouring_distance(geo["width"], geo["dx"])} elements must differ); valid range: '
            f'order_parameters >= {needed}'
        )


def validate_euler_angles(node, _):
    if node is None:
        return None
    if 'euler_angles' not in node.get_arraynames():
        return 'euler_angles: the ArrayData needs an array named `euler_angles` of shape (n_grains, 3), degrees'
    angles = node.get_array('euler_angles')
    if angles.ndim != 2 or angles.shape[1] != 3 or not np.all(np.isfinite(angles)):
        return f'euler_angles: shape must be (n_grains, 3) of finite degrees, got {angles.shape}'


def validate_inputs(inputs, _):
    values = parameters_with_defaults(inputs.get('parameters'))
    if 'euler_angles' in inputs:
        count = inputs['euler_angles'].get_array('euler_angles').shape[0]
        if count != values['grains']:
            return f'euler_angles: {count} rows given but parameters.grains = {values["grains"]}; give one per grain'


# ---------------------------------------------------------------------------------------------------- work chain
class PhaseFieldWorkChain(ProtocolMixin, WorkChain):
    """2-D grain growth with MOOSE, in cycles with grain tracking and re-colouring between them.

    The anneal is split into ``cycles`` MOOSE runs, each a
    :class:`~aiida_multiscale.workflows.base.moose.MooseBaseWorkChain` (which answers walltime kills, failed
    recoveries and solves that did not converge), the way aiida-quantumespresso's ``PwRelaxWorkChain`` loops over
    ``PwBaseWorkChain``.  After each one, the calcfunction :func:`analyse_cycle` detects the grains (periodic connected
    components of argmax eta), keeps their identity, re-colours them so that grains closer than about two interface
    widths never share an order parameter (otherwise they merge once the grain between them vanishes: a known artefact
    without MOOSE's GrainTracker), and writes the restart Exodus that the next run reads with SolutionUserObject +
    SolutionIC.  A walltime raised within a cycle is kept for the later ones.
    """

    _protocol_file = 'phase_field'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MooseBaseWorkChain, exclude=_EXCLUDED_INPUTS)
        spec.inputs['moose'].help = 'Inputs of every MooseCalculation: code, metadata.options (one per run).'
        spec.inputs['max_iterations'].help = (
            'Most MooseCalculations per cycle: its run plus every resubmission (not converged, walltime, failed '
            'recovery).'
        )
        define_walltime_restarts(spec)
        spec.input(
            'interface',
            valid_type=HandoffData,
            validator=validate_interface,
            help='Physical inputs: gb_energy [J/m^2], mobility_prefactor [m^4/(J s)], activation_energy [eV], '
            'temperature [K], anneal_time [s]; any pint-compatible unit is converted.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help=f'Numerical settings (defaults in brackets): {default_parameters()}. Lengths in m.',
        )
        spec.input(
            'euler_angles',
            valid_type=orm.ArrayData,
            required=False,
            validator=validate_euler_angles,
            help='Bunge Euler angles (degrees) per grain, array `euler_angles` (grains x 3); default random '
            'uniform orientations from the seed.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_run_cycle)(
                cls.run_cycle,
                cls.inspect_cycle,
            ),
            cls.results,
        )
        spec.output('microstructure', valid_type=MicrostructureData, help='The final grain map with Euler angles.')
        spec.output('initial_microstructure', valid_type=MicrostructureData, help='The Voronoi start (t = 0).')
        spec.output(
            'grain_statistics',
            valid_type=HandoffData,
            help='gb_mobility [m^4/(J s)], mean_grain_size [m], grain_count, initial_mean_grain_size [m].',
        )
        spec.output(
            'grain_history',
            valid_type=orm.ArrayData,
            help='Per Exodus frame: time [s], grain_count, mean_area [m^2], mean_intercept_length [m], merges.',
        )
        spec.exit_code(300, 'ERROR_ANALYSIS_FAILED', message='The grain analysis of cycle {cycle} failed: {error}')
        spec.exit_code(
            310, 'ERROR_MOOSE_FAILED', message='Cycle {cycle}: MooseBaseWorkChain<{pk}> failed: [{status}] {message}'
        )
        spec.exit_code(
            311, 'ERROR_MISSING_OUTPUT', message='Cycle {cycle}: MooseBaseWorkChain<{pk}> returned no {output}.'
        )
        spec.exit_code(320, 'ERROR_OUT_OF_WALLTIME', message='Phase-field rung, cycle {cycle}: {message}')
        spec.exit_code(321, 'ERROR_RECOVERY_FAILED', message='Phase-field rung, cycle {cycle}: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, interface=None, protocol=None, overrides=None, options=None):
        """Builder for ``code`` (a ``multiscale.moose`` code) from the protocol, with validated ``overrides``.

        :param interface: HandoffData with the physical inputs; default: the protocol's ``anneal`` with its
            ``gb_energy`` and the ``melting_point`` of Al, every one assumed.
        :param overrides: nested dict over the protocol (``parameters``, ``anneal``, ``gb_energy``,
            ``max_iterations`` ...); ``None`` as a value removes a key.
        :param options: ``metadata.options`` of the MooseCalculations (resources, walltime ...), over the protocol's
            ``options``; checked by :func:`aiida_multiscale.resources.resolve_options` (threads included).
        """
        from aiida_multiscale.resources import resolve_options

        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.moose.code = code
        threads = parameters_with_defaults(inputs['parameters'])['threads']
        builder.moose.metadata.options = resolve_options('phase_field', code, inputs.get('options'), options, threads)
        if interface is None:
            interface = HandoffData(
                cls.standalone_interface(inputs), producer='assumption', from_scale='user', to_scale='mesoscale'
            )
        builder.interface = interface
        builder.parameters = orm.Dict(dict(inputs['parameters']))
        builder.max_iterations = orm.Int(inputs['max_iterations'])
        return builder

    @classmethod
    def standalone_interface(cls, inputs: dict | None = None) -> dict:
        """The interface quantities of a stand-alone run: the protocol's ``anneal`` and ``gb_energy`` (assumed)."""
        return standalone_interface(inputs if inputs is not None else cls.get_protocol_inputs())

    # ------------------------------------------------------------------------------------------------- steps
    def setup(self):
        """The Voronoi start (a calcfunction) and the state that the cycles carry on."""
        warn_walltime_restarts(self)
        values = parameters_with_defaults(self.inputs.get('parameters'))
        self.ctx.settings = values
        interface = self.inputs.interface
        self.ctx.physics = {name: interface.value(name, unit) for name, unit in INTERFACE_UNITS.items()}
        # The parameters as a stored node, defaults filled in, so that every calcfunction links to the same one.
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(values).store()
        kwargs = {'parameters': self.ctx.parameters, 'metadata': {'call_link_label': 'initial_polycrystal'}}
        if 'euler_angles' in self.inputs:
            kwargs['euler_angles'] = self.inputs.euler_angles
        start = initial_polycrystal(**kwargs)
        self.ctx.grain_table = start['grain_table']
        self.ctx.initial_microstructure = start['initial_microstructure']
        self.ctx.cycle = 0
        self.ctx.time = 0.0
        self.ctx.restart_file = None
        self.ctx.dt = None
        self.ctx.statistics = {}
        self.ctx.microstructure = None
        self.ctx.max_wallclock_seconds = None  # raised within a cycle by its base chain; kept for the later cycles

    def should_run_cycle(self):
        return self.ctx.time < self.ctx.physics['anneal_time'] * (1 - 1e-9)

    def run_cycle(self):
        """Run the current cycle in a MooseBaseWorkChain."""
        node = self.submit(MooseBaseWorkChain, **self._cycle_inputs())
        alive = len(self.ctx.grain_table.get_array('alive'))
        self.report(f'cycle {self.ctx.cycle} from t = {self.ctx.time:.4g} s ({alive} grains): <{node.pk}>')
        return ToContext(cycles=append_(node))

    def _cycle_inputs(self) -> AttributeDict:
        """The MooseBaseWorkChain inputs of the current cycle: its MOOSE input, from the Voronoi start or the last
        cycle's restart file, with the last cycle's time step and walltime."""
        values, physics = self.ctx.settings, self.ctx.physics
        geo = grid_geometry(values)
        cycle_time = physics['anneal_time'] / values['cycles']
        end = min(physics['anneal_time'], (self.ctx.cycle + 1) * cycle_time)
        if end - self.ctx.time < 1e-6 * cycle_time:  # the previous cycle ended on this one's end: take the next one
            end = min(physics['anneal_time'], end + cycle_time)
        files = {}
        if self.ctx.restart_file is None:
            table = self.ctx.grain_table
            ops = dict(zip(table.get_array('alive').tolist(), table.get_array('ops').tolist()))
            start = VoronoiStart(
                seeds=table.get_array('seeds'),
                ops=[ops[g] for g in range(geo['grains'])],
                euler_angles=table.get_array('euler_angles'),
            )
        else:
            start = RestartStart('restart.e')
            files['restart'] = self.ctx.restart_file
        built = build_grain_growth_input(
            gb_energy=physics['gb_energy'],
            mobility_prefactor=physics['mobility_prefactor'],
            activation_energy=physics['activation_energy'],
            temperature=physics['temperature'],
            anneal_time=end - self.ctx.time,
            start_time=self.ctx.time,
            domain_size=(geo['size'], geo['size']),
            grid=(geo['n'], geo['n']),
            interface_width=geo['width'],
            n_order_parameters=values['order_parameters'],
            start=start,
            dt_initial=self.ctx.dt,
            dt_max=values['dt_max_fraction'] * cycle_time,
            n_frames=values['frames_per_cycle'],
            solver=values['solver'],
        )
        for name, text in built.files.items():
            files[name.replace('.', '_')] = orm.SinglefileData(io.BytesIO(text.encode()), filename=name)
        inputs = AttributeDict(self.exposed_inputs(MooseBaseWorkChain))
        inputs.moose.input_file = orm.SinglefileData(io.BytesIO(built.text.encode()), filename='moose.i')
        inputs.moose.files = files
        if values['threads'] > 1:
            inputs.moose.threads = orm.Int(values['threads'])
        if self.ctx.max_wallclock_seconds is not None:
            metadata = dict(inputs.moose.get('metadata', {}))
            metadata['options'] = {
                **metadata.get('options', {}),
                'max_wallclock_seconds': self.ctx.max_wallclock_seconds,
            }
            inputs.moose.metadata = metadata
        inputs.max_iterations = orm.Int(max_iterations_with_walltime_restarts(self.inputs))
        inputs.metadata = {'call_link_label': f'cycle_{self.ctx.cycle:02d}'}
        return inputs

    def inspect_cycle(self):
        """Analyse the cycle (grains, statistics, re-colouring); keep its last time step and a raised walltime."""
        node = self.ctx.cycles[-1]
        if not node.is_finished_ok:
            return rung_exit_code(self.exit_codes, node, cycle=self.ctx.cycle)
        if 'exodus' not in node.outputs:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(cycle=self.ctx.cycle, pk=node.pk, output='Exodus file')
        label = f'analyse_cycle_{self.ctx.cycle:02d}'
        try:
            result = analyse_cycle(
                node.outputs.exodus, self.ctx.grain_table, self.ctx.parameters, metadata={'call_link_label': label}
            )
        except Exception as exc:  # a broken Exodus file must not except the work chain without a message
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(cycle=self.ctx.cycle, error=str(exc))
        self.ctx.grain_table = result['grain_table']
        self.ctx.restart_file = result['restart_file']
        self.ctx.microstructure = result['microstructure']
        self.ctx.statistics[f'cycle_{len(self.ctx.statistics):02d}'] = result['statistics']
        times = result['statistics'].get_array('time')
        self.ctx.time = float(times[-1]) if len(times) else self.ctx.time
        last_dt = node.outputs.output_parameters.get('postprocessors', {}).get('dt')
        self.ctx.dt = last_dt * factor(TIME_UNIT, 's') if last_dt else None
        calculations = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
        if calculations:
            self.ctx.max_wallclock_seconds = calculations[-1].get_option('max_wallclock_seconds')
        self.ctx.cycle += 1

    def results(self):
        """Attach the microstructures, the grain history and the grain statistics (made by a calcfunction)."""
        if self.ctx.microstructure is None:
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(cycle=self.ctx.cycle, error='no cycle finished')
        collected = collect_statistics(
            interface=self.inputs.interface,
            initial_microstructure=self.ctx.initial_microstructure,
            microstructure=self.ctx.microstructure,
            metadata={'call_link_label': 'collect_statistics'},
            **self.ctx.statistics,
        )
        self.out('microstructure', self.ctx.microstructure)
        self.out('initial_microstructure', self.ctx.initial_microstructure)
        self.out('grain_history', collected['grain_history'])
        self.out('grain_statistics', collected['grain_statistics'])
        self.report(
            f'finished: {self.ctx.microstructure.grain_count} grains, mean size '
            f'{self.ctx.microstructure.mean_grain_size:.4g} m'
        )
