"""``PhaseFieldWorkChain``: 2-D normal grain growth with MOOSE in reduced units, several realisations, each in cycles
with grain tracking and re-colouring between them, until the growth is self-similar."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, append_, while_

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.phase_field import RestartStart, VoronoiStart, build_reduced_grain_growth_input
from aiida_multiscale.physics.grain_growth import MIN_INITIAL_GRAIN_SIZE
from aiida_multiscale.workflows.base.moose import (
    MooseBaseWorkChain,
    define_walltime_restarts,
    max_iterations_with_walltime_restarts,
    rung_exit_code,
    warn_walltime_restarts,
)
from aiida_multiscale.workflows.functions.phase_field import (
    INTERFACE_UNITS,
    OPTIONAL_INTERFACE_UNITS,
    analyse_cycle,
    colouring_distance,
    default_parameters,
    grain_growth_plot,
    grain_growth_results,
    grid_geometry,
    initial_colouring,
    initial_polycrystal,
    join_frames,
    judge_realisation,
    parameters_with_defaults,
    realisation_done,
    realisation_seed,
    reduced_units_of,
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


#: Elements the interface must span at least (the kinetics err by more than 10 % below, docs/phase_field.md).
MIN_INTERFACE_ELEMENTS = 3
#: The starting grain must be this many interface widths across, or the "grains" are mostly interface.
MIN_GRAIN_WIDTHS = 3.0
_POSITIVE_INTEGERS = (
    'grid',
    'grains',
    'order_parameters',
    'min_grains',
    'max_cycles',
    'frames_per_cycle',
    'realisations',
    'threads',
)


# ---------------------------------------------------------------------------------------------------- validators
def validate_interface(node, _):
    """sigma, M0, T, t and d0 > 0, Q >= 0, T below the melting point when given, d0 >= 10 nm; units compatible."""
    if node is None:
        return None
    values = {}
    for name, unit in {**INTERFACE_UNITS, **OPTIONAL_INTERFACE_UNITS}.items():
        if name not in node:
            if name in OPTIONAL_INTERFACE_UNITS:
                continue
            hint = (
                ' (the starting mean grain size, e.g. a recrystallised grain size: `--initial-grain-size` on the '
                'command line)'
                if name == 'initial_grain_size'
                else ''
            )
            return f'interface: quantity {name!r} is missing{hint}; it needs {", ".join(INTERFACE_UNITS)}'
        try:
            value = node.value(name, unit)
        except Exception as exc:  # pint raises several types for incompatible units
            return f'interface: {name} cannot be converted to {unit}: {exc}'
        values[name] = value
        if name == 'activation_energy':
            # A computed M(T) (gb_mobility, from MD) is what the rung uses; its fitted Q may be < 0 within its std.
            if value < 0 and 'gb_mobility' not in node:
                return f'interface: activation_energy = {value:.4g} eV must be >= 0'
        elif not value > 0:
            what = {
                'gb_energy': 'GB energy sigma',
                'mobility_prefactor': 'mobility prefactor M0',
                'anneal_time': 'the anneal time',
                'temperature': 'the anneal temperature',
                'initial_grain_size': 'the starting mean grain size d0',
            }.get(name, name)
            return f'interface: {name} ({what}) = {value:.4g} {unit} must be > 0 (valid range: (0, inf) {unit})'
    if 'melting_point' in values and values['temperature'] >= values['melting_point']:
        return (
            f'interface: temperature = {values["temperature"]:.4g} K is at or above the melting point '
            f'{values["melting_point"]:.4g} K: grain growth is a solid-state process; choose a lower temperature'
        )
    if values['initial_grain_size'] < MIN_INITIAL_GRAIN_SIZE:
        return (
            f'interface: initial_grain_size = {values["initial_grain_size"]:.4g} m is below '
            f'{MIN_INITIAL_GRAIN_SIZE:.0e} m, a few boundary widths: normal grain growth by curvature does not '
            'apply to such grains; give a starting grain size of at least 10 nm'
        )


def validate_parameters(node, _):
    """Types and ranges of ``parameters``; the grid against the grains it must hold, and the colouring of the start."""
    if node is None:
        return None
    values = node.get_dict()
    renamed = {
        'domain_size': 'the domain follows from `grains` and the interface quantity `initial_grain_size`',
        'interface_width': 'give `interface_elements`, the width in elements, instead',
        'cycles': 'give `cycle_time` (reduced time per MOOSE run) and `max_cycles` instead',
    }
    for key, instead in renamed.items():
        if key in values:
            return f'parameters: `{key}` is gone (the run is in reduced units): {instead}'
    unknown = sorted(set(values) - set(default_parameters()))
    if unknown:
        return f'parameters: unknown keys {unknown}; allowed: {", ".join(default_parameters())}'
    values = parameters_with_defaults(values)
    for key in _POSITIVE_INTEGERS:
        if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 1:
            return f'parameters: {key} must be a positive integer, got {values[key]!r}'
    if not isinstance(values['seed'], int) or isinstance(values['seed'], bool) or values['seed'] < 0:
        return f'parameters: seed must be an integer >= 0, got {values["seed"]!r}'
    if values['order_parameters'] < 2:
        return f'parameters: order_parameters = {values["order_parameters"]} must be >= 2'
    if values['solver'] not in ('newton', 'pjfnk'):
        return f"parameters: solver must be 'newton' or 'pjfnk', got {values['solver']!r}"
    if values['time_integration'] not in ('explicit', 'implicit', 'auto'):
        return (
            f"parameters: time_integration must be 'explicit', 'implicit' or 'auto', got {values['time_integration']!r}"
        )
    for key, low, high in (('dt_max_fraction', 0, 1), ('cycle_time', 0, float('inf'))):
        if not isinstance(values[key], (int, float)) or isinstance(values[key], bool) or not low < values[key] <= high:
            return f'parameters: {key} must be a number in ({low}, {high}], got {values[key]!r}'
    if not isinstance(values['recolouring'], bool):
        return f'parameters: recolouring must be true or false, got {values["recolouring"]!r}'
    elements = values['interface_elements']
    if not isinstance(elements, (int, float)) or isinstance(elements, bool) or elements < MIN_INTERFACE_ELEMENTS:
        return f'parameters: interface_elements must be >= {MIN_INTERFACE_ELEMENTS}, got {elements!r}'
    if values['frames_per_cycle'] * values['max_cycles'] < 6:
        return 'parameters: frames_per_cycle x max_cycles must be >= 6, the frames a growth-law fit needs'
    if values['grains'] < 2 * values['min_grains']:
        return (
            f'parameters: grains = {values["grains"]} must be at least twice min_grains = {values["min_grains"]}: the '
            'run must grow the grains well beyond the transient before fewer than min_grains are left'
        )
    geo = grid_geometry(values)
    across = geo['initial_size'] / geo['dx']
    if across < MIN_GRAIN_WIDTHS * elements:
        needed = int(np.ceil(MIN_GRAIN_WIDTHS * elements * geo['size'] / geo['initial_size']))
        return (
            f'parameters: a grid of {values["grid"]} elements cannot hold {values["grains"]} grains: the starting '
            f'grain is {across:.1f} elements across, fewer than {MIN_GRAIN_WIDTHS:g} interface widths of {elements} '
            f'elements; give grid >= {needed} or fewer grains'
        )
    for index in range(values['realisations']):
        seed = realisation_seed(values, index)
        _, _, colours = initial_colouring(values, seed=seed)
        needed = max(colours.values()) + 1
        if values['order_parameters'] < needed:
            return (
                f'parameters: order_parameters = {values["order_parameters"]} is fewer than the {needed} that the '
                f'colouring of the Voronoi start of seed {seed} needs (grains = {values["grains"]}, grains closer '
                f'than {colouring_distance(geo["width"], geo["dx"])} elements must differ); valid range: '
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
    """2-D normal grain growth with MOOSE, in reduced units, over several realisations.

    **Reduced units.**  Curvature-driven growth has ``M sigma`` as its only rate, so each MOOSE run is made in lengths
    of the starting grain size ``d0`` and times of ``d0^2 / (M sigma)``: its input holds no physical constant, and an
    anneal that differs only in ``M``, ``sigma``, ``d0`` or ``t`` renders the same files (AiiDA's caching reuses the
    runs).  The calcfunction :func:`grain_growth_results` converts to SI once, visibly.

    **Realisations** (``parameters.realisations``, seeds ``seed``, ``seed + 1``, ...) run side by side; each is a
    sequence of cycles of ``cycle_time`` (reduced), each cycle a
    :class:`~aiida_multiscale.workflows.base.moose.MooseBaseWorkChain` (walltime, failed recovery and convergence
    restarts), the way aiida-quantumespresso's ``PwRelaxWorkChain`` loops over ``PwBaseWorkChain``.  After each cycle
    :func:`analyse_cycle` detects and tracks the grains and re-colours them (grains closer than about two interface
    widths never share an order parameter, so they cannot merge).  A realisation stops when fewer than ``min_grains``
    grains are left, after ``max_cycles``, or once it has passed the requested anneal and its growth is self-similar.

    **The anneal a user means.**  Within the simulated time, the frame nearest the requested anneal is handed on;
    beyond it, the parabolic law fitted after the transient extrapolates the size and the self-similar map is
    rescaled to it (``extrapolation_factor`` > 1, std from the fit).  A run that is not self-similar is not
    extrapolated: the rung fails with 330 and says what to change.
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
            help='The anneal: gb_energy [J/m^2], mobility_prefactor [m^4/(J s)], activation_energy [eV], temperature '
            '[K], anneal_time [s], initial_grain_size [m] (d0, the starting mean grain size: the diameter of the mean '
            'grain area); optional melting_point [K] bounds the temperature.  Any pint-compatible unit is converted.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help=f'Numerical settings, reduced units (defaults in brackets): {default_parameters()}. cycle_time in '
            'd0^2/(M sigma); dt_max_fraction of cycle_time.',
        )
        spec.input(
            'euler_angles',
            valid_type=orm.ArrayData,
            required=False,
            validator=validate_euler_angles,
            help='Bunge Euler angles (degrees) per grain, array `euler_angles` (grains x 3), for every realisation; '
            'default uniformly random orientations from each realisation seed.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_run_cycle)(
                cls.run_cycles,
                cls.inspect_cycles,
            ),
            cls.results,
        )
        spec.output(
            'microstructure', valid_type=MicrostructureData, help='The grain map after the anneal (realisation 0).'
        )
        spec.output_namespace(
            'realisations',
            valid_type=MicrostructureData,
            dynamic=True,
            help='The grain maps of the further realisations (realisation_01, ...), for the FEM.',
        )
        spec.output('initial_microstructure', valid_type=MicrostructureData, help='The Voronoi start (realisation 0).')
        spec.output(
            'grain_statistics',
            valid_type=HandoffData,
            help='mean_grain_size [m], grain_count, initial_mean_grain_size [m], growth_rate_constant [m^2/s] (and '
            '_reduced), extrapolation_factor, realisations, reduced_time, gb_mobility [m^4/(J s)]; metadata: the '
            'reduced units, one row per realisation (seed, law, self-similarity), checks.',
        )
        spec.output(
            'grain_history',
            valid_type=orm.ArrayData,
            help='Per frame of every realisation: realisation, time [s], reduced_time, grain_count, mean_area [m^2], '
            'area_diameter [m], mean_intercept_length [m], merges.',
        )
        spec.output(
            'grain_growth_plot',
            valid_type=orm.SinglefileData,
            required=False,
            help='PNG: the grain map handed on (count, scale bar), d^2 against t with the fitted law, and the size '
            'distribution against the stationary (Hillert) one.',
        )
        spec.exit_code(
            300, 'ERROR_ANALYSIS_FAILED', message='The grain analysis of realisation {realisation}, cycle {cycle} '
            'failed: {error}',
        )  # fmt: skip
        spec.exit_code(
            310, 'ERROR_MOOSE_FAILED', message='Cycle {cycle}: MooseBaseWorkChain<{pk}> failed: [{status}] {message}'
        )
        spec.exit_code(
            311, 'ERROR_MISSING_OUTPUT', message='Cycle {cycle}: MooseBaseWorkChain<{pk}> returned no {output}.'
        )
        spec.exit_code(320, 'ERROR_OUT_OF_WALLTIME', message='Phase-field rung, cycle {cycle}: {message}')
        spec.exit_code(321, 'ERROR_RECOVERY_FAILED', message='Phase-field rung, cycle {cycle}: {message}')
        spec.exit_code(330, 'ERROR_NOT_SELF_SIMILAR', message='Phase-field rung: nothing honest to hand on: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, interface=None, protocol=None, overrides=None, options=None):
        """Builder for ``code`` (a ``multiscale.moose`` code) from the protocol, with validated ``overrides``.

        :param interface: HandoffData with the anneal; default: the protocol's ``anneal`` with its ``gb_energy`` and
            the ``melting_point`` of Al, every one assumed.
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
        """The interface quantities of a stand-alone run: the protocol's ``anneal``, ``gb_energy`` and melting point."""
        return standalone_interface(inputs if inputs is not None else cls.get_protocol_inputs())

    # ------------------------------------------------------------------------------------------------- steps
    def setup(self):
        """The Voronoi start of every realisation (a calcfunction each) and the state that their cycles carry on."""
        warn_walltime_restarts(self)
        values = parameters_with_defaults(self.inputs.get('parameters'))
        self.ctx.settings = values
        # The parameters as a stored node, defaults filled in, so that every calcfunction links to the same one.
        self.ctx.parameters = self.inputs.parameters if 'parameters' in self.inputs else orm.Dict(values).store()
        self.ctx.requested_time = float(
            reduced_units_of(self.inputs.interface).reduced_time(self.inputs.interface.value('anneal_time', 's'))
        )
        self.ctx.realisations = {}
        for index in range(values['realisations']):
            kwargs = {
                'parameters': self.ctx.parameters,
                'seed': orm.Int(realisation_seed(values, index)),
                'metadata': {'call_link_label': f'initial_polycrystal_{index:02d}'},
            }
            if 'euler_angles' in self.inputs:
                kwargs['euler_angles'] = self.inputs.euler_angles
            table = initial_polycrystal(**kwargs)['grain_table']
            self.ctx.realisations[str(index)] = {
                'initial_table': table,
                'table': table,
                'cycle': 0,
                'time': 0.0,
                'restart_file': None,
                'dt': None,
                'statistics': [],
                'done': False,
                'why': '',
                'max_wallclock_seconds': None,  # raised within a cycle by its base chain; kept for the later cycles
            }
        self.report(
            f'{values["realisations"]} realisation(s) of {values["grains"]} grains; requested anneal = reduced time '
            f'{self.ctx.requested_time:.4g} (d0^2/(M sigma))'
        )

    def _running(self) -> list[str]:
        return [key for key, state in sorted(self.ctx.realisations.items()) if not state['done']]

    def should_run_cycle(self):
        return bool(self._running())

    def run_cycles(self):
        """Submit the next cycle of every realisation that is still running."""
        futures = {}
        for key in self._running():
            state = self.ctx.realisations[key]
            node = self.submit(MooseBaseWorkChain, **self._cycle_inputs(key))
            alive = len(state['table'].get_array('alive'))
            self.report(
                f'realisation {key}, cycle {state["cycle"]} from reduced time {state["time"]:.4g} ({alive} grains): '
                f'<{node.pk}>'
            )
            futures[f'cycles_{int(key):02d}'] = append_(node)
        return ToContext(**futures)

    def _cycle_inputs(self, key: str) -> AttributeDict:
        """The MooseBaseWorkChain inputs of the current cycle of realisation ``key``: its reduced MOOSE input, from the
        Voronoi start or the last cycle's restart file, with the last cycle's time step and walltime."""
        values, state = self.ctx.settings, self.ctx.realisations[key]
        geo = grid_geometry(values)
        cycle_time = float(values['cycle_time'])
        files = {}
        if state['restart_file'] is None:
            table = state['table']
            ops = dict(zip(table.get_array('alive').tolist(), table.get_array('ops').tolist()))
            start = VoronoiStart(
                seeds=table.get_array('seeds'),
                ops=[ops[g] for g in range(geo['grains'])],
                euler_angles=table.get_array('euler_angles'),
            )
        else:
            start = RestartStart('restart.e')
            files['restart'] = state['restart_file']
        built = build_reduced_grain_growth_input(
            anneal_time=(state['cycle'] + 1) * cycle_time - state['time'],
            start_time=state['time'],
            domain_size=(geo['size'], geo['size']),
            grid=(geo['n'], geo['n']),
            interface_width=geo['width'],
            n_order_parameters=values['order_parameters'],
            start=start,
            dt_initial=state['dt'],
            dt_max=values['dt_max_fraction'] * cycle_time,
            n_frames=values['frames_per_cycle'],
            solver=values['solver'],
            time_integration=values['time_integration'],
        )
        for name, text in built.files.items():
            files[name.replace('.', '_')] = orm.SinglefileData(io.BytesIO(text.encode()), filename=name)
        inputs = AttributeDict(self.exposed_inputs(MooseBaseWorkChain))
        inputs.moose.input_file = orm.SinglefileData(io.BytesIO(built.text.encode()), filename='moose.i')
        inputs.moose.files = files
        if values['threads'] > 1:
            inputs.moose.threads = orm.Int(values['threads'])
        if state['max_wallclock_seconds'] is not None:
            metadata = dict(inputs.moose.get('metadata', {}))
            metadata['options'] = {
                **metadata.get('options', {}),
                'max_wallclock_seconds': state['max_wallclock_seconds'],
            }
            inputs.moose.metadata = metadata
        inputs.max_iterations = orm.Int(max_iterations_with_walltime_restarts(self.inputs))
        inputs.metadata = {'call_link_label': f'realisation_{int(key):02d}_cycle_{state["cycle"]:02d}'}
        return inputs

    def inspect_cycles(self):
        """Analyse each realisation's cycle (grains, statistics, re-colouring) and decide whether it goes on."""
        for key in self._running():
            state = self.ctx.realisations[key]
            node = self.ctx[f'cycles_{int(key):02d}'][-1]
            cycle = state['cycle']
            if not node.is_finished_ok:
                return rung_exit_code(self.exit_codes, node, cycle=f'{cycle} of realisation {key}')
            if 'exodus' not in node.outputs:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(
                    cycle=f'{cycle} of realisation {key}', pk=node.pk, output='Exodus file'
                )
            label = f'analyse_realisation_{int(key):02d}_cycle_{cycle:02d}'
            try:
                result = analyse_cycle(
                    node.outputs.exodus, state['table'], self.ctx.parameters, metadata={'call_link_label': label}
                )
            except Exception as exc:  # a broken Exodus file must not except the work chain without a message
                error = f'{type(exc).__name__}: {exc} (the Exodus file is unreadable or lacks the order parameters)'
                return self.exit_codes.ERROR_ANALYSIS_FAILED.format(realisation=key, cycle=cycle, error=error)
            state['table'] = result['grain_table']
            state['restart_file'] = result['restart_file']
            state['statistics'] = [*state['statistics'], result['statistics']]
            times = result['statistics'].get_array('time')
            state['time'] = float(times[-1]) if len(times) else state['time']
            last_dt = node.outputs.output_parameters.get('postprocessors', {}).get('dt')
            state['dt'] = float(last_dt) if last_dt else None
            calculations = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
            if calculations:
                state['max_wallclock_seconds'] = calculations[-1].get_option('max_wallclock_seconds')
            state['cycle'] = cycle + 1
            frames = join_frames(state['statistics'])
            done, why = realisation_done(frames, self.ctx.settings, self.ctx.requested_time, state['cycle'])
            state['done'], state['why'] = done, why
            self.report(
                f'realisation {key}: {int(frames.counts[-1])} grains at reduced time {state["time"]:.4g}'
                + (f'; stops: {why}' if done else '')
            )
            self.ctx.realisations[key] = state

    def results(self):
        """Every realisation judged (self-similar? extrapolated?), then the physical handoff (a calcfunction)."""
        values = self.ctx.settings
        for key, state in sorted(self.ctx.realisations.items()):
            if not state['statistics']:
                return self.exit_codes.ERROR_ANALYSIS_FAILED.format(
                    realisation=key, cycle=state['cycle'], error='no cycle finished'
                )
            verdict = judge_realisation(
                join_frames(state['statistics']), int(values['min_grains']), self.ctx.requested_time
            )
            if verdict.error:
                return self.exit_codes.ERROR_NOT_SELF_SIMILAR.format(message=f'realisation {key}: {verdict.error}')
        nodes = {}
        for key, state in sorted(self.ctx.realisations.items()):
            r = int(key)
            nodes[f'initial_table_{r:02d}'] = state['initial_table']
            nodes[f'grain_table_{r:02d}'] = state['table']
            for c, statistics in enumerate(state['statistics']):
                nodes[f'statistics_{r:02d}_{c:02d}'] = statistics
        results = grain_growth_results(
            self.inputs.interface, self.ctx.parameters, metadata={'call_link_label': 'grain_growth_results'}, **nodes
        )
        self.out('microstructure', results['microstructure'])
        self.out('initial_microstructure', results['initial_microstructure'])
        self.out('grain_history', results['grain_history'])
        self.out('grain_statistics', results['grain_statistics'])
        for key, node in results.items():
            if key.startswith('realisation_'):
                self.out(f'realisations.{key}', node)
        plot = grain_growth_plot(
            results['grain_history'],
            results['grain_statistics'],
            results['microstructure'],
            metadata={'call_link_label': 'grain_growth_plot'},
        )
        self.out('grain_growth_plot', plot)
        statistics = results['grain_statistics']
        self.report(
            f'finished: {statistics["grain_count"].value:.0f} grains, mean size '
            f'{statistics["mean_grain_size"].value:.4g} m, extrapolation factor '
            f'{statistics["extrapolation_factor"].value:.3g}'
        )
