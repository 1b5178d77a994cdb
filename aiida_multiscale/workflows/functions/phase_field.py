"""The phase-field rung's calcfunctions: the Voronoi start, the grain analysis of every cycle and the statistics."""

from __future__ import annotations

import io
import math
import tempfile

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData, relabel_grains
from aiida_multiscale.engines.moose import grains as G
from aiida_multiscale.engines.moose.exodus import read_exodus, write_restart_exodus
from aiida_multiscale.engines.moose.phase_field import LENGTH_UNIT, TIME_UNIT, arrhenius_mobility, interface_width
from aiida_multiscale.physics.units import BOLTZMANN_EV, factor
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = (
    'INTERFACE_UNITS',
    'analyse_cycle',
    'collect_statistics',
    'colouring_distance',
    'default_parameters',
    'grid_geometry',
    'initial_colouring',
    'initial_polycrystal',
    'parameters_with_defaults',
    'random_orientations',
)

#: Quantities of the ``interface`` input and the units they are converted to (any pint-compatible unit is accepted).
INTERFACE_UNITS = {
    'gb_energy': 'J/m**2',
    'mobility_prefactor': 'm**4/(J*s)',
    'activation_energy': 'eV',
    'temperature': 'K',
    'anneal_time': 's',
}


def default_parameters() -> dict:
    """Every key of the ``parameters`` input with its default: the protocol file's ``default_inputs.parameters``."""
    return load_protocol_file('phase_field')['default_inputs']['parameters']


def parameters_with_defaults(node: orm.Dict | dict | None) -> dict:
    """The ``parameters`` (a Dict, a dict or None) with the defaults filled in."""
    values = default_parameters()
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def grid_geometry(parameters: dict) -> dict:
    """Grid, element size and interface width in SI from the ``parameters`` (defaults filled in)."""
    n = int(parameters['grid'])
    size = float(parameters['domain_size'])
    dx = size / n
    width = interface_width(size, n, parameters.get('interface_width'))
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
    values = parameters_with_defaults(parameters)
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
    values = parameters_with_defaults(parameters)
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
        pixel = data['dx'] * factor(LENGTH_UNIT, 'm')
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
                    data['times'][frame] * factor(TIME_UNIT, 's'),
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
            quantities, producer='collect_statistics', from_scale='mesoscale', to_scale='fem', metadata=metadata
        ),
    }
