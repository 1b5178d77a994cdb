"""``PhaseFieldWorkChain``: 2-D grain growth with MOOSE, with re-colouring cycles and restarts from the last state."""

from __future__ import annotations

import io
import math
import tempfile

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ExitCode, ProcessHandlerReport, calcfunction, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData, relabel_grains
from aiida_multiscale.engines.moose import grains as G
from aiida_multiscale.engines.moose.exodus import read_exodus, write_restart_exodus
from aiida_multiscale.engines.moose.phase_field import (
    RestartStart,
    VoronoiStart,
    arrhenius_mobility,
    build_grain_growth_input,
)
from aiida_multiscale.physics.units import BOLTZMANN_EV
from aiida_multiscale.workflows.moose_restart import (
    DEFAULT_WALLTIME_RESTARTS,
    apply_restart,
    decide_restart,
    define_walltime_inputs,
)
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin

__all__ = ('PhaseFieldWorkChain', 'analyse_cycle', 'collect_statistics', 'initial_polycrystal')

MooseCalculation = CalculationFactory('multiscale.moose')

#: Quantities of the ``interface`` input and the units they are converted to (any pint-compatible unit is accepted).
INTERFACE_UNITS = {
    'gb_energy': 'J/m**2',
    'mobility_prefactor': 'm**4/(J*s)',
    'activation_energy': 'eV',
    'temperature': 'K',
    'anneal_time': 's',
}

#: Every key of the ``parameters`` input, with its default.  Lengths in metres.
DEFAULT_PARAMETERS = {
    'grid': 64,  # elements per side (square domain)
    'domain_size': 4.0e-6,  # m, edge of the square periodic domain
    'grains': 16,  # initial Voronoi grains
    'order_parameters': 8,  # eta variables shared by the grains (graph colouring)
    'interface_width': None,  # m; default 4 elements
    'seed': 1,  # random seed of the Voronoi seeds and of the random orientations
    'recolouring': True,  # re-colour grains between cycles so that grains sharing an op never merge
    'cycles': 4,  # the anneal is split into this many MOOSE runs (a detection/re-colouring between each)
    'frames_per_cycle': 4,  # Exodus frames per cycle (grain statistics over time)
    'solver': 'newton',  # newton (exact Jacobian, ILU) or pjfnk
    'threads': 1,  # MOOSE --n-threads
    'dt_max_fraction': 0.05,  # largest time step as a fraction of the cycle duration
}


def _parameters(node: orm.Dict | dict | None) -> dict:
    values = dict(DEFAULT_PARAMETERS)
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def grid_geometry(parameters: dict) -> dict:
    """Grid, element size and interface width in SI from the ``parameters`` (defaults filled in)."""
    n = int(parameters['grid'])
    size = float(parameters['domain_size'])
    dx = size / n
    width = parameters.get('interface_width')
    width = 4 * dx if width is None else float(width)
    grains = int(parameters['grains'])
    # Equivalent-circle diameter of the initial grains.
    initial_size = 2 * math.sqrt(size * size / (grains * math.pi))
    return {'n': n, 'size': size, 'dx': dx, 'width': width, 'grains': grains, 'initial_size': initial_size}


def colouring_distance(width: float, dx: float) -> int:
    """Grains closer than this many nodes must not share an op: their diffuse tails (about one width) would touch."""
    return max(2, int(math.ceil(width / dx)) + 1)


def initial_colouring(parameters: dict, n_colours: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(seeds, voronoi map, {grain: op})`` of the Voronoi start.

    Without ``n_colours``: the fewest ops the colouring needs (what the validator compares with).  With it: the grains
    spread over all ``n_colours`` ops, kept two colouring distances apart when the ops allow it.
    """
    geo = grid_geometry(parameters)
    seeds = G.random_seeds(geo['grains'], geo['size'], geo['size'], int(parameters['seed']))
    labels = G.periodic_voronoi(seeds, geo['size'], geo['size'], geo['n'], geo['n'])
    distance = colouring_distance(geo['width'], geo['dx'])
    return seeds, labels, G.colour_grains(labels, distance, n_colours)


def random_orientations(count: int, seed: int) -> np.ndarray:
    """Uniformly random orientations as Bunge angles in degrees (``Phi = arccos(u)``, ``u`` uniform in [-1, 1])."""
    rng = np.random.default_rng(seed + 7919)
    return np.column_stack(
        [rng.uniform(0, 360, count), np.degrees(np.arccos(rng.uniform(-1, 1, count))), rng.uniform(0, 360, count)]
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
    """Types and ranges of ``parameters``; the interface-width and colouring checks of the issue."""
    if node is None:
        return None
    values = node.get_dict()
    unknown = sorted(set(values) - set(DEFAULT_PARAMETERS))
    if unknown:
        return f'parameters: unknown keys {unknown}; allowed: {", ".join(DEFAULT_PARAMETERS)}'
    values = _parameters(values)
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


def validate_checkpoint_interval(node, _):
    if node is not None and not node.value >= 0:
        return f'checkpoint_interval = {node.value} s must be >= 0 (0: no checkpoints)'


def default_checkpoint_interval(max_wallclock_seconds: float | None) -> float:
    """A quarter of the walltime, between 10 s and 30 min: a kill loses at most about a quarter of a run."""
    if not max_wallclock_seconds:
        return 1800.0
    return float(min(1800.0, max(10.0, max_wallclock_seconds / 4)))


def validate_inputs(inputs, _):
    values = _parameters(inputs.get('parameters'))
    max_iterations = inputs.get('max_iterations')
    if max_iterations is not None and max_iterations.value < values['cycles']:
        return (
            f'max_iterations = {max_iterations.value} is less than parameters.cycles = {values["cycles"]}: every cycle '
            'is one MooseCalculation, so the anneal could never finish; set max_iterations to at least cycles plus '
            'the restarts to allow (get_builder_from_protocol does this)'
        )
    if 'euler_angles' in inputs:
        count = inputs['euler_angles'].get_array('euler_angles').shape[0]
        if count != values['grains']:
            return f'euler_angles: {count} rows given but parameters.grains = {values["grains"]}; give one per grain'


# ------------------------------------------------------------------------------------------------ calcfunctions
def _grain_table(ids: np.ndarray, ops: dict[int, int], euler: np.ndarray, merges=()) -> orm.ArrayData:
    table = orm.ArrayData()
    alive = np.array(sorted(ops), dtype=np.int64)
    table.set_array('grain_ids', ids.astype(np.int64))
    table.set_array('alive', alive)
    table.set_array('ops', np.array([ops[g] for g in alive.tolist()], dtype=np.int64))
    table.set_array('euler_angles', np.asarray(euler, dtype=float))
    table.set_array('merges', np.array(list(merges), dtype=np.int64).reshape(-1, 2))
    return table


def _microstructure(ids: np.ndarray, euler: np.ndarray, pixel: float) -> MicrostructureData:
    compact, old = relabel_grains(G.fill_nearest(ids))
    return MicrostructureData(grain_ids=compact, pixel_size=pixel, euler_angles=euler[old])


@calcfunction
def initial_polycrystal(parameters: orm.Dict, euler_angles: orm.ArrayData | None = None):
    """The periodic Voronoi start: seeds, the op of each grain (graph colouring) and the orientations.

    Outputs ``grain_table`` (seeds, op per grain, Euler angles, grain-id map) and ``initial_microstructure``.
    """
    values = _parameters(parameters)
    geo = grid_geometry(values)
    seeds, labels, colours = initial_colouring(values, int(values['order_parameters']))
    if euler_angles is not None:
        euler = euler_angles.get_array('euler_angles')
    else:
        euler = random_orientations(geo['grains'], int(values['seed']))
    table = _grain_table(labels, colours, euler)
    table.set_array('seeds', seeds)
    return {'grain_table': table, 'initial_microstructure': _microstructure(labels, euler, geo['dx'])}


@calcfunction
def analyse_cycle(exodus: orm.SinglefileData, grain_table: orm.ArrayData, parameters: orm.Dict):
    """Detect and track the grains of one MOOSE run, then re-colour them (if on) and write the restart file.

    Grain identity is kept by overlap with the previous cycle on the same op (:func:`grains.track_grains`), so Euler
    angles stay with their grain; a component that covers two old grains of its op is recorded as a merge.

    Outputs ``grain_table`` (the new ids/ops), ``restart_file`` (a clone of MOOSE's Exodus with the re-coloured fields
    in its only step), ``statistics`` (per frame: time [s], grain_count, mean_area [m^2], mean_intercept_length [m],
    merges) and ``microstructure`` (the last frame).
    """
    values = _parameters(parameters)
    n_op = int(values['order_parameters'])
    with tempfile.TemporaryDirectory() as tmp:
        source = f'{tmp}/in.e'
        with exodus.open(mode='rb') as handle, open(source, 'wb') as out:
            out.write(handle.read())
        data = read_exodus(source)
        etas = G.order_parameters(data, n_op)
        ids = grain_table.get_array('grain_ids')
        ops = dict(zip(grain_table.get_array('alive').tolist(), grain_table.get_array('ops').tolist()))
        euler = grain_table.get_array('euler_angles')
        pixel = data['dx'] * 1e-9
        min_nodes = 3
        rows, merges = [], [tuple(m) for m in grain_table.get_array('merges').tolist()]
        for frame in range(len(data['times'])):
            tracked = G.track_grains(ids, ops, G.detect_grains(etas[frame], min_nodes=min_nodes))
            merges.extend(tracked['merges'])
            frame_ids = tracked['grain_ids']
            count = len(tracked['ops'])
            area = (data['nx'] * data['ny'] * pixel**2) / max(count, 1)
            rows.append(
                [
                    data['times'][frame] * 1e-9,
                    count,
                    area,
                    G.mean_intercept_length(frame_ids, pixel),
                    len(tracked['merges']),
                ]
            )
            ids, ops = frame_ids, tracked['ops']
        final = etas[-1]
        if values['recolouring']:
            geo = grid_geometry(values)
            final, ops = G.recolour(final, ids, ops, colouring_distance(geo['width'], geo['dx']))
        target = f'{tmp}/restart.e'
        write_restart_exodus(source, target, {f'eta{k}': final[k] for k in range(n_op)})
        with open(target, 'rb') as handle:
            restart = orm.SinglefileData(io.BytesIO(handle.read()), filename='restart.e')
    statistics = orm.ArrayData()
    array = np.array(rows, dtype=float)
    for k, name in enumerate(('time', 'grain_count', 'mean_area', 'mean_intercept_length', 'merges')):
        statistics.set_array(name, array[:, k])
    return {
        'grain_table': _grain_table(ids, ops, euler, merges),
        'restart_file': restart,
        'statistics': statistics,
        'microstructure': _microstructure(ids, euler, pixel),
    }


@calcfunction
def collect_statistics(
    interface: HandoffData, initial_microstructure: MicrostructureData, microstructure: MicrostructureData, **statistics
):
    """Join the cycles' statistics into ``grain_history`` and hand on ``grain_statistics`` (mesoscale results).

    ``gb_mobility`` is ``M0 exp(-Q/kT)`` as used by the model; ``mean_grain_size`` is the equivalent-circle
    diameter of the final map (its std is left to the mesoscale -> FEM bridge, which propagates the inputs' std).
    """
    keys = sorted(statistics, key=lambda k: int(k.split('_')[-1]))
    history = orm.ArrayData()
    for name in ('time', 'grain_count', 'mean_area', 'mean_intercept_length', 'merges'):
        series = [statistics[k].get_array(name) for k in keys]
        history.set_array(name, np.concatenate(series) if series else np.zeros(0))
    history.base.attributes.set(
        'units', {'time': 's', 'grain_count': '', 'mean_area': 'm^2', 'mean_intercept_length': 'm', 'merges': ''}
    )
    m0 = interface.get_quantity('mobility_prefactor', INTERFACE_UNITS['mobility_prefactor'])
    q = interface.get_quantity('activation_energy', 'eV')
    temperature = interface.get_quantity('temperature', 'K')
    mobility = arrhenius_mobility(m0.value, q.value, temperature.value)
    kt = BOLTZMANN_EV * temperature.value
    relative = math.sqrt(
        ((m0.std or 0) / m0.value) ** 2
        + ((q.std or 0) / kt) ** 2
        + (q.value * (temperature.std or 0) / (kt * temperature.value)) ** 2
    )
    merges = int(history.get_array('merges').sum()) if len(keys) else 0
    quantities = {
        'gb_mobility': {
            'value': mobility,
            'unit': 'm**4/(J*s)',
            'std': relative * mobility or None,
            'note': 'M0 exp(-Q/kT) used by the phase field; std first order from M0, Q, T',
        },
        'mean_grain_size': {
            'value': microstructure.mean_grain_size,
            'unit': 'm',
            'std': None,
            'note': 'equivalent-circle diameter, mean over the grains of the final map',
        },
        'grain_count': {
            'value': microstructure.grain_count,
            'unit': 'dimensionless',
            'std': None,
            'note': 'periodic connected components of argmax eta in the final frame',
        },
        'initial_mean_grain_size': {
            'value': initial_microstructure.mean_grain_size,
            'unit': 'm',
            'std': None,
            'note': 'equivalent-circle diameter of the Voronoi start',
        },
    }
    metadata = {'merges': merges, 'frames': int(len(history.get_array('time')))}
    return {
        'grain_history': history,
        'grain_statistics': HandoffData(
            quantities, bridge='phase_field', from_scale='mesoscale', to_scale='fem', metadata=metadata
        ),
    }


# ---------------------------------------------------------------------------------------------------- work chain
class PhaseFieldWorkChain(ProtocolMixin, BaseRestartWorkChain):
    """2-D grain growth with MOOSE, with re-colouring cycles and restarts from the last state.

    The anneal is split into ``cycles`` MOOSE runs.  After each one, the calcfunction :func:`analyse_cycle` detects
    the grains (periodic connected components of argmax eta), keeps their identity, re-colours them so that grains
    closer than about two interface widths never share an order parameter (otherwise they merge once the grain between
    them vanishes: a known artefact without MOOSE's GrainTracker), and writes the restart Exodus that the next run
    reads with SolutionUserObject + SolutionIC.  Each cycle is thus a MooseCalculation and a calcfunction node.

    If MOOSE does not converge, the handler restarts from the last state written (or the cycle's start) with a time
    step cut by 10: the same pattern as the PwBaseWorkChain handlers.

    Every run writes MOOSE checkpoints (``checkpoint_interval``, by default a quarter of the walltime).  If the
    scheduler kills a run at its walltime, :meth:`handle_out_of_walltime` continues it from its last checkpoint
    (``moose --recover`` on the same input, so the cycle keeps its end time and its time steps), or, without a new
    checkpoint, resubmits it with twice the walltime; at most ``walltime_restarts`` times (see
    :mod:`~aiida_multiscale.workflows.moose_restart`).
    """

    _process_class = MooseCalculation
    _protocol_file = 'phase_field'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            MooseCalculation,
            namespace='moose',
            exclude=(
                'input_file', 'files', 'cmdline', 'threads', 'checkpoint_interval', 'parent_folder', 'recover'
            ),
        )  # fmt: skip
        define_walltime_inputs(spec)
        spec.input(
            'checkpoint_interval',
            valid_type=orm.Float,
            required=False,
            validator=validate_checkpoint_interval,
            help='Wall-clock seconds between the MOOSE checkpoints of every run, from which a run killed at its '
            'walltime is continued; 0 turns them off. Default: a quarter of max_wallclock_seconds, in [10 s, 30 min].',
        )
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
            help=f'Numerical settings (defaults in brackets): {DEFAULT_PARAMETERS}. Lengths in m.',
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
            cls.prepare,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
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
        spec.exit_code(310, 'ERROR_NO_EXODUS', message='MooseCalculation<{pk}> finished but returned no Exodus file.')
        spec.exit_code(
            320,
            'ERROR_OUT_OF_WALLTIME',
            message='Phase-field rung: MooseCalculation<{pk}> of cycle {cycle} was killed at its walltime and is not '
            'resubmitted: {reason}.',
        )
        spec.exit_code(
            321,
            'ERROR_RECOVERY_FAILED',
            message='Phase-field rung: MooseCalculation<{pk}> of cycle {cycle} could not continue from its checkpoint '
            '(exit {status}: {error}) and the cycle is not run again: {reason}.',
        )
        spec.inputs['max_iterations'].help = (
            'Most MooseCalculations this rung may launch: one per cycle, plus every restart (not converged, walltime '
            'resubmission, failed recovery). The protocol builder sets cycles + max_restarts + the default '
            'walltime_restarts (raise it with walltime_restarts); it must be at least parameters.cycles.'
        )

    @classmethod
    def get_builder_from_protocol(cls, code, interface=None, protocol=None, overrides=None, options=None):
        """Builder for ``code`` (a ``multiscale.moose`` code) from the protocol, with validated ``overrides``.

        :param interface: HandoffData with the physical inputs; default: the protocol's ``interface`` (Al, assumed).
        :param overrides: nested dict over the protocol (``parameters``, ``interface``, ``max_iterations``); ``None``
            as a value removes a key.
        :param options: ``metadata.options`` of the MooseCalculation (resources, walltime ...), over the protocol's
            ``options``; checked by :func:`aiida_multiscale.resources.resolve_options` (threads included).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.moose.code = code
        from aiida_multiscale.resources import resolve_options

        threads = _parameters(inputs['parameters'])['threads']
        builder.moose.metadata.options = resolve_options('phase_field', code, inputs.get('options'), options, threads)
        if interface is None:
            quantities = {name: dict(spec) for name, spec in inputs['interface'].items()}
            interface = HandoffData(quantities, bridge='assumption', from_scale='user', to_scale='mesoscale')
        builder.interface = interface
        builder.parameters = orm.Dict({k: v for k, v in inputs['parameters'].items()})
        # Every cycle is one iteration of the restart loop; allow max_restarts failed runs on top, and the walltime
        # resubmissions, which walltime_restarts bounds on its own (they must not use up the other restarts).
        builder.max_iterations = orm.Int(
            int(_parameters(inputs['parameters'])['cycles']) + inputs['max_restarts'] + DEFAULT_WALLTIME_RESTARTS
        )
        return builder

    # ------------------------------------------------------------------------------------------------- steps
    def prepare(self):
        values = _parameters(self.inputs.get('parameters'))
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
        self.ctx.walltime_restarts = 0
        self.ctx.max_wallclock_seconds = None  # raised by the walltime handler; kept for the later cycles
        self._set_inputs()

    def _set_inputs(self):
        """Render the MOOSE input of the current cycle (from the Voronoi start or the restart file)."""
        values, physics = self.ctx.settings, self.ctx.physics
        geo = grid_geometry(values)
        cycle_time = physics['anneal_time'] / values['cycles']
        end = min(physics['anneal_time'], (self.ctx.cycle + 1) * cycle_time)
        if end - self.ctx.time < 1e-6 * cycle_time:  # a restart landed on the cycle's end: take the next one
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
        inputs = AttributeDict(self.exposed_inputs(MooseCalculation, 'moose'))
        inputs.input_file = orm.SinglefileData(io.BytesIO(built.text.encode()), filename='moose.i')
        inputs.files = files
        if values['threads'] > 1:
            inputs.threads = orm.Int(values['threads'])
        metadata = dict(inputs.get('metadata', {}))
        options = dict(metadata.get('options', {}))
        if self.ctx.max_wallclock_seconds is not None:
            options['max_wallclock_seconds'] = self.ctx.max_wallclock_seconds
        metadata['options'] = options
        inputs.metadata = metadata
        if 'checkpoint_interval' in self.inputs:
            interval = self.inputs.checkpoint_interval.value
        else:
            interval = default_checkpoint_interval(options.get('max_wallclock_seconds'))
        if interval > 0:
            inputs.checkpoint_interval = orm.Float(interval)
        self.ctx.inputs = inputs
        self.ctx.cycle_end = end

    def _analyse(self, exodus) -> ExitCode | None:
        label = f'analyse_cycle_{self.ctx.cycle:02d}'
        try:
            result = analyse_cycle(
                exodus, self.ctx.grain_table, self.ctx.parameters, metadata={'call_link_label': label}
            )
        except Exception as exc:  # a broken Exodus file must not except the work chain without a message
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(cycle=self.ctx.cycle, error=str(exc))
        self.ctx.grain_table = result['grain_table']
        self.ctx.restart_file = result['restart_file']
        self.ctx.microstructure = result['microstructure']
        self.ctx.statistics[f'cycle_{len(self.ctx.statistics):02d}'] = result['statistics']
        times = result['statistics'].get_array('time')
        self.ctx.time = float(times[-1]) if len(times) else self.ctx.time
        return None

    def _resubmit(self, decision, parent=None):
        """Count a walltime resubmission and build the next run from ``decision``; a raised walltime is kept for
        the later cycles, and the default checkpoint interval follows it (an explicit ``checkpoint_interval`` stays)."""
        self.ctx.walltime_restarts += 1
        self.ctx.max_wallclock_seconds = decision.max_wallclock_seconds
        interval = None
        if 'checkpoint_interval' not in self.inputs:
            interval = default_checkpoint_interval(decision.max_wallclock_seconds)
        apply_restart(self.ctx.inputs, decision, parent, interval)

    @process_handler(priority=600, exit_codes=[MooseCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """Killed at the walltime: continue from the last checkpoint, else rerun the cycle with more time (bounded)."""
        decision = decide_restart(self, node, can_recover='checkpoint_interval' in self.ctx.inputs)
        what = f'{node.process_label}<{node.pk}> of cycle {self.ctx.cycle} was killed at its walltime'
        if decision.action == 'give_up':
            self.report(f'{what}; giving up: {decision.message}')
            exit_code = self.exit_codes.ERROR_OUT_OF_WALLTIME.format(
                pk=node.pk, cycle=self.ctx.cycle, reason=decision.message
            )
            return ProcessHandlerReport(True, exit_code)
        self._resubmit(decision, node.outputs.remote_folder)
        self.report(
            f'{what} (walltime resubmission {self.ctx.walltime_restarts} of {self.inputs.walltime_restarts.value}): '
            f'{decision.message}'
        )
        return ProcessHandlerReport(True)

    @process_handler(
        priority=590,
        exit_codes=[
            MooseCalculation.exit_codes.ERROR_MOOSE_INPUT,
            MooseCalculation.exit_codes.ERROR_ABNORMAL_TERMINATION,
            MooseCalculation.exit_codes.ERROR_MISSING_CSV,
            MooseCalculation.exit_codes.ERROR_EMPTY_CSV,
            MooseCalculation.exit_codes.ERROR_MISSING_EXODUS,
        ],
    )
    def handle_failed_recovery(self, node):
        """A run continued from a checkpoint failed: run the cycle again from its start, with more time (bounded).

        Slurm can kill a job while MOOSE is writing a checkpoint; ``checkpoint_cp/LATEST`` may then name files that
        are cut short, and ``moose --recover`` stops with an error reading them (or crashes); or the outputs the
        killed run left (CSV, Exodus, which the recovered run appends to) were cut short, and the recovered run's
        outputs cannot be used (the parser already copes with a CSV that only lost its header).  The input is the one
        the killed run had already started with, so the checkpoint is to blame, not the input.  The cycle's start
        (the Voronoi start or the previous cycle's restart file) is an input of every run and intact, so the cycle is
        run again from there, without ``--recover``.  This counts as a walltime resubmission: the kill caused it.
        A run that was not recovered and fails like this is left to the default (a real input error: no restart).
        """
        if 'recover' not in node.inputs or not node.inputs.recover.value:
            return None
        error = node.exit_message or f'exit status {node.exit_status}'
        decision = decide_restart(self, node, can_recover=False)
        what = f'{node.process_label}<{node.pk}> of cycle {self.ctx.cycle} could not continue from its checkpoint'
        if decision.action == 'give_up':
            self.report(f'{what}; giving up: {decision.message}')
            exit_code = self.exit_codes.ERROR_RECOVERY_FAILED.format(
                pk=node.pk, cycle=self.ctx.cycle, status=node.exit_status, error=error, reason=decision.message
            )
            return ProcessHandlerReport(True, exit_code)
        self._resubmit(decision)
        self.report(
            f'{what} [{node.exit_status}] ({error}); walltime resubmission {self.ctx.walltime_restarts} of '
            f'{self.inputs.walltime_restarts.value}: {decision.message}'
        )
        return ProcessHandlerReport(True)

    @process_handler(
        priority=500,
        exit_codes=[
            MooseCalculation.exit_codes.ERROR_NOT_CONVERGED,
            MooseCalculation.exit_codes.ERROR_TIMESTEP_BELOW_DTMIN,
        ],
    )
    def handle_not_converged(self, node):
        """MOOSE gave up: restart from the last state written with the time step cut by 10."""
        last_dt = (
            node.outputs.output_parameters.get('postprocessors', {}).get('dt')
            if ('output_parameters' in node.outputs)
            else None
        )
        self.ctx.dt = 0.1 * (last_dt * 1e-9 if last_dt else (self.ctx.dt or 1e-9))
        if 'exodus' in node.outputs:
            exit_code = self._analyse(node.outputs.exodus)
            if exit_code:
                return ProcessHandlerReport(True, exit_code)
        self._set_inputs()
        self.report(
            f'{node.process_label}<{node.pk}> did not converge [{node.exit_status}]: restarting from '
            f't = {self.ctx.time:.4g} s with dt = {self.ctx.dt:.3g} s'
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=100)
    def next_cycle(self, node):
        """A cycle finished: analyse it (grains, statistics, re-colouring) and start the next one if time is left."""
        if not node.is_finished_ok:
            return None
        if 'exodus' not in node.outputs:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_EXODUS.format(pk=node.pk))
        exit_code = self._analyse(node.outputs.exodus)
        if exit_code:
            return ProcessHandlerReport(True, exit_code)
        last_dt = node.outputs.output_parameters.get('postprocessors', {}).get('dt')
        self.ctx.dt = last_dt * 1e-9 if last_dt else None
        self.ctx.cycle += 1
        if self.ctx.time >= self.ctx.physics['anneal_time'] * (1 - 1e-9):
            return None  # done: BaseRestartWorkChain moves on to results
        self._set_inputs()
        alive = len(self.ctx.grain_table.get_array('alive'))
        self.report(f'cycle {self.ctx.cycle} from t = {self.ctx.time:.4g} s ({alive} grains)')
        return ProcessHandlerReport(False)

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
