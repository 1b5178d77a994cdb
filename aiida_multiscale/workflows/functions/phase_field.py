"""The phase-field rung's calcfunctions and their pure helpers: the Voronoi start, the grain analysis of every cycle
(reduced units), the verdict on each realisation and the physical handoff."""

from __future__ import annotations

import dataclasses
import io
import math
import tempfile
import typing as t

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData, relabel_grains
from aiida_multiscale.engines.moose import grains as G
from aiida_multiscale.engines.moose.exodus import read_exodus, write_restart_exodus
from aiida_multiscale.physics.grain_growth import (
    Extrapolation,
    ReducedUnits,
    SelfSimilarity,
    arrhenius_mobility_and_std,
    extrapolate,
    grain_sizes,
    rescale_grain_map,
    self_similarity,
)
from aiida_multiscale.workflows.functions.png import figure_node
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = (
    'INTERFACE_UNITS',
    'analyse_cycle',
    'grain_growth_plot',
    'grain_growth_results',
    'judge_realisation',
    'join_frames',
    'realisation_done',
    'realisation_seed',
    'reduced_units_of',
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
    'initial_grain_size': 'm',
}
#: Optional interface quantities: the melting point bounds the anneal temperature when given.
OPTIONAL_INTERFACE_UNITS = {'melting_point': 'K'}
#: The grain-statistics frames a self-similarity verdict needs at the least (a quadratic fit with 3 dof left).
MIN_FRAMES = 6


def default_parameters() -> dict:
    """Every key of the ``parameters`` input with its default: the protocol file's ``default_inputs.parameters``."""
    return load_protocol_file('phase_field')['default_inputs']['parameters']


def parameters_with_defaults(node: orm.Dict | dict | None) -> dict:
    """The ``parameters`` (a Dict, a dict or None) with the defaults filled in."""
    values = default_parameters()
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def grid_geometry(parameters: dict) -> dict:
    """The reduced geometry of the run from its ``parameters`` (defaults filled in).

    Lengths are in the starting mean grain size ``d0`` (the diameter of the mean grain area, ``sqrt(4 <A> / pi)``):
    ``grains`` Voronoi grains of mean area ``pi / 4`` fill a periodic square of side ``sqrt(grains pi) / 2``.  The
    interface is ``interface_elements`` elements wide.
    """
    n = int(parameters['grid'])
    grains = int(parameters['grains'])
    size = math.sqrt(grains * math.pi) / 2.0
    dx = size / n
    width = float(parameters['interface_elements']) * dx
    return {'n': n, 'size': size, 'dx': dx, 'width': width, 'grains': grains, 'initial_size': 1.0}


def colouring_distance(width: float, dx: float) -> int:
    """Grains closer than this many nodes must not share an op: their diffuse tails (about one width) would touch."""
    return max(2, int(math.ceil(width / dx)) + 1)


def realisation_seed(parameters: dict, index: int) -> int:
    """The seed of realisation ``index`` (0, 1, ...): ``seed + index``, so realisation 0 is the run of ``seed``."""
    return int(parameters['seed']) + int(index)


def initial_colouring(parameters: dict, n_colours: int | None = None, seed: int | None = None):
    """``(seeds, voronoi map, {grain: op})`` of the Voronoi start (of ``seed``, default ``parameters['seed']``).

    Without ``n_colours``: the fewest ops the colouring needs (what the validator compares with).  With it: the grains
    spread over all ``n_colours`` ops, kept two colouring distances apart when the ops allow it.
    """
    geo = grid_geometry(parameters)
    seed = int(parameters['seed']) if seed is None else int(seed)
    seeds = G.random_seeds(geo['grains'], geo['size'], geo['size'], seed)
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


def _frame_areas(ids: np.ndarray) -> np.ndarray:
    """Areas (pixels) of the grains of one frame's id map (unassigned pixels, -1, ignored)."""
    _, counts = np.unique(ids[ids >= 0], return_counts=True)
    return counts.astype(float)


@calcfunction
def initial_polycrystal(parameters: orm.Dict, seed: orm.Int, euler_angles: orm.ArrayData | None = None):
    """The periodic Voronoi start of one realisation, in reduced units: seeds, the op of each grain (graph colouring),
    the orientations (uniformly random from ``seed`` unless given) and the grain-id map.

    Output ``grain_table``: seeds (in ``d0``), op per grain, Euler angles, grain-id map, and its grain areas.
    """
    values = parameters_with_defaults(parameters)
    geo = grid_geometry(values)
    seeds, labels, colours = initial_colouring(values, int(values['order_parameters']), seed=seed.value)
    if euler_angles is not None:
        euler = euler_angles.get_array('euler_angles')
    else:
        euler = random_orientations(geo['grains'], seed.value)
    table = _grain_table(labels, colours, euler)
    table.set_array('seeds', seeds)
    return {'grain_table': table}


@calcfunction
def analyse_cycle(exodus: orm.SinglefileData, grain_table: orm.ArrayData, parameters: orm.Dict):
    """Detect and track the grains of one MOOSE run, then re-colour them (if on) and write the restart file.

    Grain identity is kept by overlap with the previous cycle on the same op (:func:`grains.track_grains`), so Euler
    angles stay with their grain; a component that covers two old grains of its op is recorded as a merge.  All in
    reduced units (lengths in ``d0``, times in ``d0^2 / (M sigma)``): the run serves every physical anneal.

    Outputs ``grain_table`` (the new ids/ops), ``restart_file`` (a clone of MOOSE's Exodus with the re-coloured fields
    in its only step) and ``statistics``, per frame: ``time``, ``grain_count``, ``mean_area``,
    ``mean_intercept_length``, ``merges``; the grain-id map of every frame (``grain_ids``, frames x ny x nx) and the
    grain areas of every frame (``areas``, concatenated; ``grain_count`` says how many belong to each frame).
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
        pixel = float(data['dx'])
        rows, maps, areas = [], [], []
        merges = [tuple(m) for m in grain_table.get_array('merges').tolist()]
        for frame in range(len(data['times'])):
            tracked = G.track_grains(ids, ops, G.detect_grains(etas[frame], min_nodes=3))
            merges.extend(tracked['merges'])
            frame_ids = G.fill_nearest(tracked['grain_ids'])
            frame_areas = _frame_areas(frame_ids) * pixel**2
            rows.append(
                [
                    float(data['times'][frame]),
                    len(frame_areas),
                    float(frame_areas.mean()),
                    G.mean_intercept_length(frame_ids, pixel),
                    len(tracked['merges']),
                ]
            )
            maps.append(frame_ids.astype(np.int32))
            areas.append(frame_areas)
            ids, ops = tracked['grain_ids'], tracked['ops']
        final = etas[-1]
        if values['recolouring']:
            geo = grid_geometry(values)
            final, ops = G.recolour(final, ids, ops, colouring_distance(geo['width'], geo['dx']))
        target = f'{tmp}/restart.e'
        write_restart_exodus(source, target, {f'eta{k}': final[k] for k in range(n_op)})
        with open(target, 'rb') as handle:
            restart = orm.SinglefileData(io.BytesIO(handle.read()), filename='restart.e')
    statistics = orm.ArrayData()
    array = np.array(rows, dtype=float).reshape(-1, 5)
    for k, name in enumerate(('time', 'grain_count', 'mean_area', 'mean_intercept_length', 'merges')):
        statistics.set_array(name, array[:, k])
    statistics.set_array('grain_ids', np.array(maps, dtype=np.int32))
    statistics.set_array('areas', np.concatenate(areas) if areas else np.zeros(0))
    statistics.set_array('pixel_size', np.array([pixel]))
    statistics.base.attributes.set('units', 'reduced: lengths in d0, times in d0^2/(M sigma)')
    return {
        'grain_table': _grain_table(ids, ops, euler, merges),
        'restart_file': restart,
        'statistics': statistics,
    }


# ------------------------------------------------------------------------------------------- one realisation's frames
@dataclasses.dataclass
class Frames:
    """The frames of one realisation, every cycle joined, in reduced units."""

    times: np.ndarray
    counts: np.ndarray
    mean_area: np.ndarray
    intercept: np.ndarray
    merges: np.ndarray
    areas: list  #: grain areas of each frame
    pixel: float
    statistics: list  #: the cycles' ArrayData, for the maps (read on demand)
    index: list  #: (cycle, frame in cycle) of every frame

    def grain_ids(self, frame: int) -> np.ndarray:
        cycle, k = self.index[frame]
        return self.statistics[cycle].get_array('grain_ids')[k]

    def usable(self, min_grains: int) -> int:
        """Frames from the start that hold at least ``min_grains`` grains (the run may end below)."""
        below = np.flatnonzero(self.counts < min_grains)
        return int(below[0]) if len(below) else len(self.counts)


def join_frames(statistics: t.Sequence[orm.ArrayData]) -> Frames:
    """The frames of the cycles of one realisation (``analyse_cycle`` statistics, in cycle order)."""
    columns = {name: [] for name in ('time', 'grain_count', 'mean_area', 'mean_intercept_length', 'merges')}
    areas, index, pixel = [], [], None
    for cycle, node in enumerate(statistics):
        for name in columns:
            columns[name].append(node.get_array(name))
        counts = node.get_array('grain_count').astype(int)
        flat = node.get_array('areas')
        edges = np.concatenate([[0], np.cumsum(counts)])
        areas.extend(flat[edges[k] : edges[k + 1]] for k in range(len(counts)))
        index.extend((cycle, k) for k in range(len(counts)))
        pixel = float(node.get_array('pixel_size')[0])
    joined = {name: np.concatenate(v) if v else np.zeros(0) for name, v in columns.items()}
    return Frames(
        times=joined['time'],
        counts=joined['grain_count'].astype(int),
        mean_area=joined['mean_area'],
        intercept=joined['mean_intercept_length'],
        merges=joined['merges'].astype(int),
        areas=areas,
        pixel=pixel if pixel is not None else float('nan'),
        statistics=list(statistics),
        index=index,
    )


@dataclasses.dataclass
class Verdict:
    """What one realisation can hand on for a requested reduced time."""

    usable: int  #: frames with at least ``min_grains`` grains
    simulated_time: float  #: reduced time of the last usable frame
    similarity: SelfSimilarity | None  #: None when too few usable frames
    requested_time: float
    frame: int  #: the frame handed on (the one nearest the requested time, or the last usable one)
    extrapolation: Extrapolation | None  #: when the requested time is beyond the usable frames
    error: str | None  #: why nothing honest can be handed on

    @property
    def self_similar(self) -> bool:
        return bool(self.similarity is not None and self.similarity.self_similar)


def judge_realisation(frames: Frames, min_grains: int, requested_time: float) -> Verdict:
    """Self-similarity over the usable frames, and what to hand on for ``requested_time`` (reduced).

    Within the usable frames: the frame nearest the requested time, simulated.  Beyond them: the growth law fitted
    after the transient extrapolates the size and the last usable frame is rescaled to it, which is honest only
    in the self-similar state; otherwise ``error`` says why and what to change.
    """
    usable = frames.usable(min_grains)
    similarity = None
    if usable >= MIN_FRAMES:
        areas = frames.areas[:usable]
        try:
            similarity = self_similarity(frames.times[:usable], areas, min_points=MIN_FRAMES)
        except ValueError:
            similarity = None
    if usable == 0:
        return Verdict(0, 0.0, None, requested_time, 0, None, f'no frame holds {min_grains} grains or more')
    simulated = float(frames.times[usable - 1])
    if requested_time <= simulated * (1 + 1e-9):
        frame = int(np.argmin(np.abs(frames.times[:usable] - requested_time)))
        return Verdict(usable, simulated, similarity, requested_time, frame, None, None)
    if similarity is None or not similarity.self_similar:
        why = similarity.reason if similarity is not None else f'{usable} frames with >= {min_grains} grains'
        return Verdict(
            usable, simulated, similarity, requested_time, usable - 1, None,
            f'the requested anneal (reduced time {requested_time:.4g}) is beyond the simulated {simulated:.4g} and the '
            f'run is not self-similar ({why}), so the growth law cannot extrapolate it; start from more grains '
            '(parameters.grains, a larger grid) or give more frames (parameters.frames_per_cycle)',
        )  # fmt: skip
    extrapolation = extrapolate(similarity.law, requested_time, simulated)
    return Verdict(usable, simulated, similarity, requested_time, usable - 1, extrapolation, None)


def realisation_done(frames: Frames, parameters: dict, requested_time: float, cycles: int) -> tuple[bool, str]:
    """Should the realisation stop after ``cycles`` cycles?  ``(done, why)``.

    It stops when its grains fall below ``min_grains`` (the run has covered all it can), after ``max_cycles``, or once
    it has passed the requested time *and* reached the self-similar state (the rung runs at least until it does).
    """
    min_grains = int(parameters['min_grains'])
    if len(frames.counts) and frames.counts[-1] < min_grains:
        return True, f'{frames.counts[-1]} grains left, fewer than min_grains = {min_grains}'
    if cycles >= int(parameters['max_cycles']):
        return True, f'max_cycles = {parameters["max_cycles"]} reached'
    if len(frames.times) and frames.times[-1] >= requested_time:
        verdict = judge_realisation(frames, min_grains, requested_time)
        if verdict.self_similar:
            return True, 'the requested time is reached and the growth is self-similar'
    return False, ''


# --------------------------------------------------------------------------------------------------- the handoff
def mobility_of(interface: HandoffData) -> tuple[float, float]:
    """M at the anneal temperature (m^4/(J s)) and its relative std (read as the std of ln M).

    The interface's ``gb_mobility`` when it has one (md_to_mesoscale writes it; from MD it carries the Arrhenius fit's
    covariance, which M0 and Q alone cannot); else ``M0 exp(-Q/kT)``, first order from M0, Q and T.
    """
    if 'gb_mobility' in interface:
        quantity = interface.get_quantity('gb_mobility', 'm**4/(J*s)')
        return quantity.value, (quantity.std or 0.0) / quantity.value
    m0 = interface.get_quantity('mobility_prefactor', INTERFACE_UNITS['mobility_prefactor'])
    q = interface.get_quantity('activation_energy', 'eV')
    temperature = interface.get_quantity('temperature', 'K')
    return arrhenius_mobility_and_std(
        m0.value, q.value, temperature.value,
        prefactor_std=m0.std, activation_energy_std=q.std, temperature_std=temperature.std,
    )  # fmt: skip


def reduced_units_of(interface: HandoffData) -> ReducedUnits:
    """The reduced units of the anneal: ``d0`` and ``M sigma`` from the interface."""
    mobility, _ = mobility_of(interface)
    return ReducedUnits.from_physical(
        interface.value('initial_grain_size', 'm'), mobility, interface.value('gb_energy', 'J/m**2')
    )


def _split_keys(kwargs: dict) -> tuple[dict, dict, dict]:
    """``statistics_<r>_<c>``, ``grain_table_<r>`` and ``initial_table_<r>`` of the results calcfunction, by r."""
    statistics, tables, initial = {}, {}, {}
    for key, node in kwargs.items():
        parts = key.split('_')
        if key.startswith('statistics_'):
            statistics.setdefault(int(parts[1]), {})[int(parts[2])] = node
        elif key.startswith('grain_table_'):
            tables[int(parts[2])] = node
        elif key.startswith('initial_table_'):
            initial[int(parts[2])] = node
    return statistics, tables, initial


def _combine(values: list[float], stds: list[float]) -> tuple[float, float, float]:
    """Mean over realisations, its std (the spread's standard error and the mean of the per-realisation stds, in
    quadrature) and the spread's standard error alone (0 for one realisation)."""
    values = np.asarray(values, dtype=float)
    own = float(np.sqrt(np.mean(np.square(stds)))) if len(stds) else 0.0
    spread = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), math.hypot(spread, own / math.sqrt(max(len(values), 1))), spread


@calcfunction
def grain_growth_results(interface: HandoffData, parameters: orm.Dict, **nodes):
    """From the reduced runs of every realisation to the physical handoff, converted once, here.

    Inputs (besides ``interface`` and ``parameters``): ``statistics_<r>_<c>`` (``analyse_cycle`` of realisation r,
    cycle c), ``grain_table_<r>`` (its last grain table: the Euler angles) and ``initial_table_<r>`` (its start).

    Per realisation: the self-similarity verdict and growth law over the frames with at least ``min_grains`` grains
    (:func:`judge_realisation`); the map handed on is the frame nearest the requested anneal, or, beyond the run, the
    last usable frame rescaled to the size the law predicts (``extrapolation_factor`` > 1).  Lengths are multiplied by
    ``d0``, times by ``d0^2 / (M sigma)``, the rate constant by ``M sigma``.

    Outputs: ``microstructure`` (realisation 0), ``realisation_<r>`` (every further one), ``initial_microstructure``
    (the start of realisation 0), ``grain_history`` and ``grain_statistics``.
    """
    values = parameters_with_defaults(parameters)
    min_grains = int(values['min_grains'])
    units = reduced_units_of(interface)
    d0 = units.initial_size
    mobility, mobility_relative = mobility_of(interface)
    sigma = interface.get_quantity('gb_energy', 'J/m**2')
    requested = float(units.reduced_time(interface.value('anneal_time', 's')))
    statistics, tables, initial = _split_keys(nodes)
    outputs, rows, history = {}, [], {name: [] for name in HISTORY_UNITS}
    sizes, size_stds, counts, rates, rate_stds, factors = [], [], [], [], [], []
    for r in sorted(statistics):
        frames = join_frames([statistics[r][c] for c in sorted(statistics[r])])
        verdict = judge_realisation(frames, min_grains, requested)
        if verdict.error:
            raise ValueError(f'realisation {r}: {verdict.error}')
        ids = frames.grain_ids(verdict.frame)
        pixel = frames.pixel
        extrapolation = verdict.extrapolation
        frame_area_diameter = math.sqrt(4 * frames.mean_area[verdict.frame] / math.pi)
        scale, extrapolated_std = 1.0, 0.0
        if extrapolation is not None:
            _, pixel = rescale_grain_map(ids, pixel, extrapolation.size)
            scale = extrapolation.size / frame_area_diameter
            extrapolated_std = extrapolation.size_std / extrapolation.size  # relative, of the area diameter
        euler = tables[r].get_array('euler_angles')
        micro = _microstructure(ids, euler, pixel * d0)
        outputs['microstructure' if r == 0 else f'realisation_{r:02d}'] = micro
        diameters = grain_sizes(micro.grain_ids, micro.pixel_size).diameters
        sampling = float(diameters.std(ddof=1) / math.sqrt(len(diameters))) if len(diameters) > 1 else 0.0
        size = micro.mean_grain_size
        size_std = math.hypot(sampling, extrapolated_std * size)
        law = verdict.similarity.law if verdict.similarity is not None else None
        sizes.append(size)
        size_stds.append(size_std)
        counts.append(micro.grain_count)
        factors.append(extrapolation.extrapolation_factor if extrapolation is not None else 1.0)
        if law is not None:
            rates.append(law.rate_constant)
            rate_stds.append(law.rate_constant_std)
        test = verdict.similarity.stationarity if verdict.similarity is not None else None
        rows.append(
            {
                'realisation': r,
                'seed': realisation_seed(values, r),
                'frames': len(frames.times),
                'usable_frames': verdict.usable,
                'simulated_reduced_time': verdict.simulated_time,
                'handed_on_reduced_time': float(frames.times[verdict.frame]),
                'extrapolation_factor': factors[-1],
                'rescale_factor': scale,
                'mean_grain_size': size,
                'mean_grain_size_std': size_std,
                'grain_count': micro.grain_count,
                'rate_constant_reduced': law.rate_constant if law else None,
                'rate_constant_reduced_std': law.rate_constant_std if law else None,
                'law_intercept_reduced': law.intercept if law else None,
                'law_start_reduced_time': law.start_time if law else None,
                'transient_criterion': law.criterion if law else None,
                'self_similar': verdict.self_similar,
                'self_similarity': verdict.similarity.reason if verdict.similarity else 'too few frames',
                'ks_statistic': test.statistic if test is not None else None,
                'merges': int(frames.merges.sum()),
            }
        )
        area_diameter = np.sqrt(4 * frames.mean_area / math.pi)
        for name, column in (
            ('realisation', np.full(len(frames.times), r)),
            ('time', units.physical_time(frames.times)),
            ('reduced_time', frames.times),
            ('grain_count', frames.counts),
            ('mean_area', frames.mean_area * d0**2),
            ('area_diameter', area_diameter * d0),
            ('mean_intercept_length', frames.intercept * d0),
            ('merges', frames.merges),
        ):
            history[name].append(np.asarray(column, dtype=float))
    first_table = initial[min(initial)]
    geo = grid_geometry(values)
    outputs['initial_microstructure'] = _microstructure(
        first_table.get_array('grain_ids'), first_table.get_array('euler_angles'), geo['dx'] * d0
    )
    grain_history = orm.ArrayData()
    for name, columns in history.items():
        grain_history.set_array(name, np.concatenate(columns))
    grain_history.base.attributes.set('units', HISTORY_UNITS)
    outputs['grain_history'] = grain_history

    first_scale = rows[0]['rescale_factor']
    size, size_std, size_spread = _combine(sizes, size_stds)
    count = len(sizes)
    factor_mean = float(np.mean(factors))
    one = count == 1
    sampling_note = (
        'one realisation: std from the spread of its grain sizes (standard error) and the extrapolation'
        if one
        else f'std: the spread of {count} realisations (standard error) and their sampling and extrapolation stds'
    )
    extrapolation_note = (
        f'extrapolated {factor_mean:.3g} x beyond the simulated reduced time by the growth law fitted after the '
        'transient, the self-similar map rescaled to it'
        if factor_mean > 1
        else 'simulated: the frame nearest the requested anneal'
    )
    quantities = {
        'gb_mobility': {
            'value': mobility,
            'unit': 'm**4/(J*s)',
            'std': mobility_relative * mobility or None,
            'note': interface['gb_mobility'].note
            if 'gb_mobility' in interface
            else 'M0 exp(-Q/kT) of the anneal; std first order from M0, Q, T',
        },
        'mean_grain_size': {
            'value': size,
            'unit': 'm',
            'std': size_std or None,
            'note': f'mean equivalent-circle diameter after the anneal, mean over realisations; {extrapolation_note}; '
            f"{sampling_note}; the inputs' std (M, sigma, t, d0) is propagated by mesoscale_to_fem",
        },
        'grain_count': {
            'value': float(np.mean(counts)),
            'unit': 'dimensionless',
            'std': float(np.std(counts, ddof=1) / math.sqrt(count)) if count > 1 else None,
            'note': f'grains in the map handed on, mean over {count} realisation(s)',
        },
        'initial_mean_grain_size': {
            'value': d0,
            'unit': 'm',
            'std': interface['initial_grain_size'].std,
            'note': f'd0, the length unit of the reduced run; {interface["initial_grain_size"].note}'.rstrip('; '),
        },
        'interface_width': {
            'value': geo['width'] * d0 * first_scale,
            'unit': 'm',
            'std': None,
            'note': 'diffuse-interface width in the map handed on (realisation 0): interface_elements of the reduced '
            'grid times d0 and the rescale factor; a numerical parameter, not the physical boundary width',
        },
        'extrapolation_factor': {
            'value': factor_mean,
            'unit': 'dimensionless',
            'std': None,
            'note': 'requested over simulated reduced time, mean over realisations; 1 when the anneal was simulated',
        },
        'realisations': {
            'value': count,
            'unit': 'dimensionless',
            'std': None,
            'note': 'phase-field runs with different seeds (Voronoi start and orientations)',
        },
        'reduced_time': {
            'value': requested,
            'unit': 'dimensionless',
            'std': None,
            'note': 'the requested anneal in d0^2/(M sigma): tau = t M sigma / d0^2',
        },
    }
    if rates:
        rate, rate_std, _ = _combine(rates, rate_stds)
        relative = math.hypot(rate_std / rate if rate else 0.0, math.hypot(mobility_relative, sigma.relative_std or 0))
        quantities['growth_rate_constant_reduced'] = {
            'value': rate,
            'unit': 'dimensionless',
            'std': rate_std,
            'note': 'k of d^2 - d0^2 = k tau in reduced units (d0^2 per d0^2/(M sigma)), least squares after the '
            'transient; std: fit and spread of the realisations',
        }
        quantities['growth_rate_constant'] = {
            'value': units.physical_rate_constant(rate),
            'unit': 'm**2/s',
            # abs: a short run with few grains can fit a k below zero (noise, not shrinkage); its std stays >= 0
            'std': relative * abs(units.physical_rate_constant(rate)),
            'note': 'k of d^2 - d0^2 = k t (area-equivalent diameter): the reduced k times M sigma; std: the fit, '
            "the realisations' spread, and M's and sigma's relative stds",
        }
    self_similar = all(row['self_similar'] for row in rows)
    metadata = {
        'reduced_units': {'length_unit_m': d0, 'time_unit_s': units.time_scale, 'M_sigma_m2_per_s': units.diffusivity},
        'realisations': rows,
        'min_grains': min_grains,
        'size_spread_std': size_spread,
        'checks': {
            'self_similar': 'passed'
            if self_similar
            else 'warning: '
            + '; '.join(
                f'realisation {row["realisation"]}: {row["self_similarity"]}' for row in rows if not row['self_similar']
            ),
            'enough_grains': 'passed' if min(counts) >= min_grains else f'warning: {min(counts)} < {min_grains}',
        },
        'merges': int(sum(row['merges'] for row in rows)),
        'frames': int(sum(row['frames'] for row in rows)),
    }
    outputs['grain_statistics'] = HandoffData(
        quantities, producer='grain_growth_results', from_scale='mesoscale', to_scale='fem', metadata=metadata
    )
    return outputs


#: Units of the ``grain_history`` arrays (every realisation's frames, one after the other).
HISTORY_UNITS = {
    'realisation': '',
    'time': 's',
    'reduced_time': 'd0^2/(M sigma)',
    'grain_count': '',
    'mean_area': 'm^2',
    'area_diameter': 'm',
    'mean_intercept_length': 'm',
    'merges': '',
}


@calcfunction
def grain_growth_plot(
    grain_history: orm.ArrayData, grain_statistics: HandoffData, microstructure: MicrostructureData
) -> orm.SinglefileData:
    """PNG in three panels: the grain map handed on (realisation 0, its grain count and a scale bar), ``d^2`` against
    ``t`` of every realisation with the fitted law (reduced units, the fitted window solid), and the normalised size
    distribution of the map against Hillert's stationary one (:func:`~aiida_multiscale.physics.grain_growth.
    hillert_distribution`)."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    from aiida_multiscale.physics.grain_growth import hillert_distribution

    figure, (ax_map, ax_law, ax_dist) = plt.subplots(1, 3, figsize=(14, 4.4))
    ids = microstructure.grain_ids
    rng = np.random.default_rng(0)
    colours = rng.permutation(int(ids.max()) + 1)
    extent_um = ids.shape[1] * microstructure.pixel_size * 1e6
    ax_map.imshow(colours[ids], cmap='tab20', origin='lower', extent=(0, extent_um, 0, extent_um))
    bar = 10 ** math.floor(math.log10(extent_um / 3))
    ax_map.plot([0.05 * extent_um, 0.05 * extent_um + bar], [0.05 * extent_um] * 2, color='white', lw=4)
    ax_map.text(0.05 * extent_um, 0.08 * extent_um, f'{bar:g} um', color='white', fontsize=9)
    ax_map.set_title(f'after the anneal: {microstructure.grain_count} grains (realisation 0)', fontsize=9)
    ax_map.set_xticks([])
    ax_map.set_yticks([])
    realisation = grain_history.get_array('realisation')
    tau = grain_history.get_array('reduced_time')
    d0 = grain_statistics.value('initial_mean_grain_size', 'm')
    squared = (grain_history.get_array('area_diameter') / d0) ** 2
    for row in grain_statistics.metadata['realisations']:
        mask = realisation == row['realisation']
        line = ax_law.plot(tau[mask], squared[mask], 'o', ms=3, label=f'realisation {row["realisation"]}')[0]
        if row['rate_constant_reduced'] is not None:
            start = row['law_start_reduced_time']
            span = np.linspace(start, row['simulated_reduced_time'], 20)
            law = row['law_intercept_reduced'] + row['rate_constant_reduced'] * span
            ax_law.plot(span, law, '-', color=line.get_color(), label=f'k = {row["rate_constant_reduced"]:.3g}')
    ax_law.set_xlabel('reduced time t M sigma / d0^2')
    ax_law.set_ylabel('(d / d0)^2, d = sqrt(4 <A> / pi)')
    ax_law.set_title('parabolic growth, fitted after the transient', fontsize=9)
    ax_law.legend(fontsize=7)
    diameters = grain_sizes(ids, microstructure.pixel_size).diameters
    ax_dist.hist(diameters / diameters.mean(), bins=12, density=True, alpha=0.6, label='phase field (handed on)')
    r = np.linspace(0.01, 2.5, 200)
    ax_dist.plot(r, hillert_distribution(r), 'k-', label='Hillert 1965 (2-D, mean field)')
    ax_dist.set_xlabel('d / <d>')
    ax_dist.set_ylabel('probability density')
    ax_dist.set_title('normalised size distribution', fontsize=9)
    ax_dist.legend(fontsize=7)
    return figure_node(figure, 'grain_growth.png', dpi=90)
