"""Grains of a multi-order-parameter phase field: Voronoi starts, colouring, detection, tracking.

Everything here is a pure function on numpy arrays or files (no database, no MOOSE process), so that the physics of
the mesoscale rung can be tested on its own.  Conventions:

* a 2-D periodic field is sampled on the *nodes* of a structured ``nx`` x ``ny`` mesh; the periodic duplicate row
  and column (``x = Lx``, ``y = Ly``) are dropped, so arrays have shape ``(ny, nx)`` and node ``(j, i)`` sits at
  ``(i * dx, j * dy)``;
* order parameters ("ops") are indexed ``0 .. n_op - 1``; grains carry a stable integer *grain id* that survives
  re-colouring (it is the row of their Euler angles), and an op that may change from one cycle to the next.
"""

from __future__ import annotations

import typing as t

import numpy as np

__all__ = (
    'GrainState',
    'adjacency',
    'colour_grains',
    'colour_graph',
    'colouring_edges',
    'detect_grains',
    'fill_nearest',
    'free_energy',
    'label_periodic',
    'mean_intercept_length',
    'periodic_voronoi',
    'random_seeds',
    'order_parameters',
    'recolour',
    'track_grains',
)


# ---------------------------------------------------------------------------------------------------------- Voronoi
def random_seeds(n_grains: int, lx: float, ly: float, seed: int) -> np.ndarray:
    """``n_grains`` seed points, uniformly random in ``[0, lx) x [0, ly)`` (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, lx, n_grains), rng.uniform(0, ly, n_grains)])


def periodic_voronoi(seeds: np.ndarray, lx: float, ly: float, nx: int, ny: int) -> np.ndarray:
    """Grain-id map ``(ny, nx)``: at each node, the index of the nearest seed under periodic (minimum-image) distance.

    This is the same tessellation that MOOSE's ``PropertyReadFile`` builds with ``read_type = voronoi`` and
    ``rve_type = periodic``, so the Python map and the MOOSE initial condition agree (up to ties on cell faces).
    """
    seeds = np.asarray(seeds, dtype=float)
    x = np.arange(nx) * (lx / nx)
    y = np.arange(ny) * (ly / ny)
    xx, yy = np.meshgrid(x, y)
    best = np.full((ny, nx), np.inf)
    labels = np.zeros((ny, nx), dtype=np.int64)
    for k, (sx, sy) in enumerate(seeds):
        ddx = np.abs(xx - sx)
        ddx = np.minimum(ddx, lx - ddx)
        ddy = np.abs(yy - sy)
        ddy = np.minimum(ddy, ly - ddy)
        dist = ddx**2 + ddy**2
        closer = dist < best
        best[closer] = dist[closer]
        labels[closer] = k
    return labels


# -------------------------------------------------------------------------------------------------------- colouring
def adjacency(labels: np.ndarray, distance: int = 1) -> set[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, of labels that come within ``distance`` nodes of each other (periodic).

    ``distance = 1`` is plain face adjacency.  A larger distance also links grains separated by a thin grain: giving
    those different ops is what keeps them from merging when the thin grain vanishes between two re-colourings.
    Negative labels (unassigned nodes) are ignored.
    """
    labels = np.asarray(labels)
    pairs: set[tuple[int, int]] = set()
    for sy in range(-distance, distance + 1):
        for sx in range(-distance, distance + 1):
            if (sx, sy) <= (0, 0) or sx * sx + sy * sy > distance * distance:
                continue
            shifted = np.roll(labels, (sy, sx), axis=(0, 1))
            mask = (labels != shifted) & (labels >= 0) & (shifted >= 0)
            a, b = labels[mask], shifted[mask]
            for p, q in set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist())):
                pairs.add((p, q))
    return pairs


def colour_graph(
    nodes: t.Iterable[int],
    edges: t.Iterable[tuple[int, int]],
    n_colours: int | None = None,
    preferred: t.Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Colour a graph so that no edge joins equal colours: DSatur (Brelaz 1979), greedy by saturation.

    Why DSatur: it is exact on bipartite graphs and uses few colours on planar-like grain adjacency (a 2-D Voronoi
    tessellation usually needs 4-6), which is what bounds the number of order parameters and so the cost (CPU ~ N^2).

    :param nodes: node ids.
    :param edges: pairs of node ids.
    :param n_colours: if given, colours are taken from ``0 .. n_colours - 1`` and ``ValueError`` is raised when the
        greedy colouring needs more; otherwise as many as needed are used.
    :param preferred: colour to keep for a node when it is still free (re-colouring changes as few grains as possible).
    :returns: ``{node: colour}``.
    """
    nodes = sorted(set(nodes))
    neighbours: dict[int, set[int]] = {n: set() for n in nodes}
    for a, b in edges:
        if a != b and a in neighbours and b in neighbours:
            neighbours[a].add(b)
            neighbours[b].add(a)
    preferred = dict(preferred or {})
    colour: dict[int, int] = {}
    while len(colour) < len(nodes):
        # Most saturated (distinct neighbour colours), then highest degree, then smallest id: deterministic.
        node = max(
            (n for n in nodes if n not in colour),
            key=lambda n: (len({colour[m] for m in neighbours[n] if m in colour}), len(neighbours[n]), -n),
        )
        taken = {colour[m] for m in neighbours[node] if m in colour}
        choice = preferred.get(node)
        if choice is None or choice in taken or (n_colours is not None and choice >= n_colours):
            if n_colours is None:  # as few colours as possible
                choice = next(c for c in range(len(nodes) + 1) if c not in taken)
            else:  # spread the grains over all the ops: same-op grains end up as far apart as possible
                free = [c for c in range(n_colours) if c not in taken]
                if not free:
                    raise ValueError(
                        f'the grain adjacency graph needs more than {n_colours} colours (order parameters)'
                    )
                usage = [sum(1 for v in colour.values() if v == c) for c in free]
                choice = free[int(np.argmin(usage))]
        colour[node] = choice
    return colour


def fill_nearest(labels: np.ndarray) -> np.ndarray:
    """Give nodes labelled -1 the label of the nearest labelled node (periodic)."""
    labels = np.asarray(labels)
    if np.all(labels >= 0) or np.all(labels < 0):
        return labels.copy()
    from scipy import ndimage

    tiled = np.tile(labels, (3, 3))
    _, (iy, ix) = ndimage.distance_transform_edt(tiled < 0, return_indices=True)
    ny, nx = labels.shape
    return tiled[iy, ix][ny : 2 * ny, nx : 2 * nx]


def colouring_edges(labels: np.ndarray, distance: int, small_fraction: float = 0.5) -> set[tuple[int, int]]:
    """Pairs of grains that must not share an order parameter.

    Grains closer than ``distance`` nodes, and also the grains that would touch once the small grains between them
    are gone: a grain under ``small_fraction`` of the mean area is likely to vanish before the next re-colouring, and
    two same-op grains on either side of it would then merge.  Its territory is given to its neighbours (nearest
    fill) and the adjacency is taken again.
    """
    labels = np.asarray(labels)
    edges = adjacency(labels, distance=distance)
    ids, areas = np.unique(labels[labels >= 0], return_counts=True)
    if len(ids) > 2:
        small = ids[areas < small_fraction * areas.mean()]
        if len(small):
            gone = np.where(np.isin(labels, small), -1, labels)
            edges |= adjacency(fill_nearest(gone), distance=distance)
    return edges


def colour_grains(
    labels: np.ndarray, distance: int, n_colours: int | None = None, preferred: t.Mapping[int, int] | None = None
) -> dict[int, int]:
    """Colour the grains of ``labels``: with ``n_colours``, keep same-op grains as far apart as the ops allow.

    Tries twice the distance first, then smaller ones down to ``distance``; the last attempt raises ``ValueError`` when
    even ``distance`` needs more than ``n_colours`` ops.
    """
    nodes = np.unique(labels[labels >= 0]).tolist()
    if n_colours is None:
        return colour_graph(nodes, colouring_edges(labels, distance), None, preferred)
    candidates = sorted({max(distance, int(round(distance * f))) for f in (2.0, 1.75, 1.5, 1.25, 1.0)}, reverse=True)
    for trial in candidates:
        try:
            return colour_graph(nodes, colouring_edges(labels, trial), n_colours, preferred)
        except ValueError:
            if trial == candidates[-1]:
                break
    return colour_graph(nodes, adjacency(labels, distance), n_colours, preferred)


# -------------------------------------------------------------------------------------------------------- detection
def label_periodic(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (4-neighbour) of a boolean map on a periodic domain: ``(labels, count)``, -1 outside."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    parent = list(range(count + 1))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Glue components that continue across the periodic edges.
    for a, b in ((labels[:, 0], labels[:, -1]), (labels[0, :], labels[-1, :])):
        for p, q in zip(a.tolist(), b.tolist()):
            if p and q:
                rp, rq = find(p), find(q)
                if rp != rq:
                    parent[max(rp, rq)] = min(rp, rq)
    roots = sorted({find(i) for i in range(1, count + 1)})
    renumber = {r: k for k, r in enumerate(roots)}
    lookup = np.array([-1] + [renumber[find(i)] for i in range(1, count + 1)], dtype=np.int64)
    return lookup[labels], len(roots)


class GrainState(t.NamedTuple):
    """Grains found in one frame: ``labels`` (ny, nx) component index per node, ``ops`` op of each component."""

    labels: np.ndarray
    ops: np.ndarray


def detect_grains(etas: np.ndarray, min_nodes: int = 1) -> GrainState:
    """Grains as the periodic connected components of ``argmax_i eta_i`` (one set of components per op).

    :param etas: ``(n_op, ny, nx)`` order parameters.
    :param min_nodes: components smaller than this are dropped (their nodes get label -1): a grain that has just
        vanished leaves a few nodes of noise, which must not be counted as a grain.
    """
    etas = np.asarray(etas)
    argmax = np.argmax(etas, axis=0)
    labels = np.full(argmax.shape, -1, dtype=np.int64)
    ops = []
    for op in range(etas.shape[0]):
        comp, count = label_periodic(argmax == op)
        for k in range(count):
            mask = comp == k
            if mask.sum() >= min_nodes:
                labels[mask] = len(ops)
                ops.append(op)
    return GrainState(labels, np.array(ops, dtype=np.int64))


def track_grains(previous_ids: np.ndarray, previous_ops: t.Mapping[int, int], state: GrainState) -> dict:
    """Give the components of a new frame the grain ids of the previous frame, by overlap on the same op.

    A component is grain ``g`` when, among the nodes that were grain ``g`` before and carry the same op, it holds the
    largest share.  A component that covers the old territory of two grains of its op is a *merge*: it keeps the id
    with the larger overlap and the other id is reported in ``merges``.

    :param previous_ids: ``(ny, nx)`` grain-id map of the previous frame (-1 where none).
    :param previous_ops: ``{grain id: op}`` of the previous frame.
    :param state: the new frame from :func:`detect_grains`.
    :returns: ``{'grain_ids': (ny, nx) map, 'ops': {grain id: op}, 'merges': [(kept, absorbed), ...],
        'vanished': [ids], 'new': count of components overlapping no old grain}``.
    """
    grain_ids = np.full(state.labels.shape, -1, dtype=np.int64)
    ops: dict[int, int] = {}
    merges: list[tuple[int, int]] = []
    claims: dict[int, list[tuple[int, int]]] = {}  # old id -> [(overlap, component)]
    owner: dict[int, int] = {}
    new = 0
    for comp, op in enumerate(state.ops.tolist()):
        mask = state.labels == comp
        old = previous_ids[mask]
        candidates = {
            g: int(np.count_nonzero(old == g)) for g in np.unique(old[old >= 0]).tolist() if previous_ops.get(g) == op
        }
        if not candidates:
            new += 1
            continue
        ranked = sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0]))
        owner[comp] = ranked[0][0]
        claims.setdefault(ranked[0][0], []).append((ranked[0][1], comp))
        # Other grains of the same op whose old core lies mostly inside this component were absorbed by it.
        for g, overlap in ranked[1:]:
            if overlap >= 0.5 * np.count_nonzero(previous_ids == g):
                merges.append((ranked[0][0], g))
    for g, comps in claims.items():
        comps.sort(reverse=True)
        comp = comps[0][1]
        grain_ids[state.labels == comp] = g
        ops[g] = int(state.ops[comp])
    merged = {b for _, b in merges}
    vanished = sorted(set(previous_ops) - set(ops) - merged)
    return {'grain_ids': grain_ids, 'ops': ops, 'merges': merges, 'vanished': vanished, 'new': new}


def recolour(
    etas: np.ndarray, grain_ids: np.ndarray, ops: t.Mapping[int, int], distance: int, threshold: float = 1e-3
) -> tuple[np.ndarray, dict[int, int]]:
    """Re-assign grains to ops so that grains closer than ``distance`` nodes never share one; move their fields.

    Each grain's field is the connected part of its op above ``threshold`` that contains its core (so the diffuse
    tail of the interface moves with it).  Grains keep their op when they can: the fewer fields move, the smaller
    the perturbation (it is exact in any case, the energy is invariant under a permutation of ops per grain).

    :returns: ``(new_etas, {grain id: new op})``.
    """
    etas = np.asarray(etas, dtype=float)
    n_op = etas.shape[0]
    grains = sorted(ops)
    # Territory of each grain: the component of eta_op > threshold that contains the grain's core.
    territory = np.full(grain_ids.shape, -1, dtype=np.int64)
    supports = {}
    for op in range(n_op):
        comp, count = label_periodic(etas[op] > threshold)
        members = [g for g in grains if ops[g] == op]
        if not members:
            continue
        # Two grains of this op whose diffuse tails touch (> threshold across a thin grain between them) are one
        # component: split it between them by the nearest core, so that each grain moves only its own field (moving
        # the whole component with each would copy one grain's field onto the other's new op, and they would merge).
        nearest = fill_nearest(np.where(np.isin(grain_ids, members), grain_ids, -1))
        for g in members:
            core = grain_ids == g
            hits = comp[core]
            hits = hits[hits >= 0]
            if hits.size:
                supports[g] = (comp == np.bincount(hits).argmax()) & (nearest == g)
    for g in grains:  # cores first so that the adjacency is between grains, not between tails
        territory[grain_ids == g] = g
    # Keep same-op grains as far apart as the ops allow, so that they stay apart for a whole cycle.
    new_ops = colour_grains(territory, distance, n_colours=n_op, preferred=ops)
    new = np.zeros_like(etas)
    moved = np.zeros(etas.shape, dtype=bool)
    for g in grains:
        support = supports.get(g, grain_ids == g)
        new[new_ops[g]][support] = np.maximum(new[new_ops[g]][support], etas[ops[g]][support])
        moved[ops[g]][support] = True
    # Whatever was not part of a tracked grain (noise of vanished grains) stays where it was.
    new[~moved] = np.maximum(new[~moved], etas[~moved])
    return new, new_ops


# ---------------------------------------------------------------------------------------------------- statistics
def mean_intercept_length(grain_ids: np.ndarray, pixel_size: float) -> float:
    """Mean linear intercept length (ASTM E112): test-line length over the number of grain-boundary crossings.

    Lines are all rows and columns of the periodic map; with no crossing (one grain) the result is ``inf``.
    """
    grain_ids = np.asarray(grain_ids)
    crossings = np.count_nonzero(grain_ids != np.roll(grain_ids, 1, axis=1))
    crossings += np.count_nonzero(grain_ids != np.roll(grain_ids, 1, axis=0))
    length = 2 * grain_ids.size * pixel_size
    return float(length / crossings) if crossings else float('inf')


def free_energy(etas: np.ndarray, dx: float, dy: float, mu: float, kappa: float, gamma: float = 1.5) -> float:
    """Total Moelans free energy of periodic nodal fields, integrated exactly as bilinear elements (2x2 Gauss).

    ``F = int mu (sum_i (eta_i^4/4 - eta_i^2/2) + gamma sum_{i<j} eta_i^2 eta_j^2 + 1/4) + kappa/2 sum_i |grad
    eta_i|^2``.  Independent of MOOSE's assembly, so it checks the numerical GB energy against the input sigma.
    """
    etas = np.asarray(etas, dtype=float)
    corners = [etas, np.roll(etas, -1, axis=2), np.roll(etas, (-1, -1), axis=(1, 2)), np.roll(etas, -1, axis=1)]
    g = 0.5 / np.sqrt(3.0)
    total = 0.0
    for xi in (0.5 - g, 0.5 + g):
        for yi in (0.5 - g, 0.5 + g):
            e00, e10, e11, e01 = corners
            val = e00 * (1 - xi) * (1 - yi) + e10 * xi * (1 - yi) + e11 * xi * yi + e01 * (1 - xi) * yi
            gx = ((e10 - e00) * (1 - yi) + (e11 - e01) * yi) / dx
            gy = ((e01 - e00) * (1 - xi) + (e11 - e10) * xi) / dy
            sq = (val**2).sum(axis=0)
            bulk = (val**4 / 4 - val**2 / 2).sum(axis=0) + gamma * 0.5 * (sq**2 - (val**4).sum(axis=0)) + 0.25
            density = mu * bulk + 0.5 * kappa * (gx**2 + gy**2).sum(axis=0)
            total += density.sum() * 0.25 * dx * dy
    return float(total)


# --------------------------------------------------------------------------------------------- order parameters
def order_parameters(exodus: dict, n_op: int, prefix: str = 'eta') -> np.ndarray:
    """``(n_t, n_op, ny, nx)`` stack of the order parameters ``eta0 .. eta{n_op-1}`` of an Exodus file.

    :param exodus: the dictionary of :func:`aiida_multiscale.engines.moose.exodus.read_exodus`.
    """
    return np.stack([exodus['fields'][f'{prefix}{k}'] for k in range(n_op)], axis=1)
