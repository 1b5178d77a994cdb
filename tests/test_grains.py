"""Grain tools without MOOSE: Voronoi, colouring, periodic detection, tracking, re-colouring, statistics, Exodus I/O."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from aiida_multiscale.engines.moose import grains as G
from aiida_multiscale.engines.moose.exodus import read_exodus, write_restart_exodus

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'moose' / 'phase_field_small' / 'small.e'

pytestmark = pytest.mark.unit


def _stripes(widths, ny=8):
    """Vertical stripes of the given widths (in nodes), ids 0, 1, 2 ..."""
    row = np.concatenate([np.full(w, k) for k, w in enumerate(widths)])
    return np.tile(row, (ny, 1))


def test_colouring_is_proper_and_minimal_on_known_graphs():
    odd_cycle = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]
    colours = G.colour_graph(range(5), odd_cycle)
    assert all(colours[a] != colours[b] for a, b in odd_cycle)
    assert max(colours.values()) + 1 == 3  # an odd cycle needs 3, DSatur finds it
    even_cycle = [(k, (k + 1) % 6) for k in range(6)]
    assert max(G.colour_graph(range(6), even_cycle).values()) + 1 == 2
    with pytest.raises(ValueError, match='more than 2 colours'):
        G.colour_graph(range(5), odd_cycle, n_colours=2)
    # With spare colours the grains are spread over all of them.
    spread = G.colour_graph(range(6), even_cycle, n_colours=6)
    assert len(set(spread.values())) > 2


def test_periodic_voronoi_and_adjacency_wrap_around():
    seeds = np.array([[0.05, 0.5], [0.5, 0.5], [0.95, 0.5]])
    labels = G.periodic_voronoi(seeds, 1.0, 1.0, 40, 40)
    assert labels[20, 0] == 0 and labels[20, 39] == 2 and labels[20, 20] == 1
    pairs = G.adjacency(labels)
    assert (0, 2) in pairs  # neighbours only through the periodic boundary
    assert G.adjacency(_stripes([4, 4, 4]), distance=1) == {(0, 1), (1, 2), (0, 2)}
    # A distance of 5 nodes also links grains separated by a thin grain.
    assert (0, 2) in G.adjacency(_stripes([6, 2, 6, 6]), distance=3)


def test_label_periodic_glues_across_edges():
    mask = np.zeros((6, 6), bool)
    mask[2, :2] = mask[2, -2:] = True  # one stripe cut by the x boundary
    mask[5, 3] = mask[0, 3] = True  # one pair cut by the y boundary
    labels, count = G.label_periodic(mask)
    assert count == 2
    assert labels[2, 0] == labels[2, -1] and labels[5, 3] == labels[0, 3]


def _etas_from_ops(op_map, n_op):
    return np.stack([(op_map == k).astype(float) for k in range(n_op)])


def test_detect_and_track_grains_finds_a_merge():
    """Grains 0 and 2 share op 0; when grain 1 between them vanishes, tracking reports the merge."""
    ids = _stripes([6, 4, 6, 4])  # 0 | 1 | 2 | 3 (periodic: 3 touches 0)
    ops = {0: 0, 1: 1, 2: 0, 3: 2}
    state = G.detect_grains(_etas_from_ops(np.vectorize(ops.get)(ids), 3))
    assert len(state.ops) == 4
    tracked = G.track_grains(ids, ops, state)
    assert np.array_equal(tracked['grain_ids'], ids) and not tracked['merges']
    after = np.vectorize(ops.get)(_stripes([8, 0, 8, 4]))  # grain 1 vanished, 0 and 2 grew into one op-0 region
    tracked = G.track_grains(ids, ops, G.detect_grains(_etas_from_ops(after, 3)))
    assert tracked['merges'] == [(0, 2)] or tracked['merges'] == [(2, 0)]
    assert len(tracked['ops']) == 2


def test_recolour_separates_same_op_grains_and_keeps_the_fields():
    ids = _stripes([6, 3, 6, 5])
    ops = {0: 0, 1: 1, 2: 0, 3: 2}
    etas = _etas_from_ops(np.vectorize(ops.get)(ids), 4)
    new_etas, new_ops = G.recolour(etas, ids, ops, distance=4)
    assert new_ops[0] != new_ops[2]  # 0 and 2 are 3 nodes apart: they must not share an op any more
    assert new_etas.sum(axis=0) == pytest.approx(etas.sum(axis=0))  # a permutation per grain: nothing lost
    for g, op in new_ops.items():
        assert np.all(new_etas[op][ids == g] == 1.0)


def test_mean_intercept_length_of_stripes():
    ids = _stripes([5, 5, 5, 5], ny=20)  # 4 stripes of 5 px: rows cross 4 boundaries per 20 px, columns none
    assert G.mean_intercept_length(ids, 2.0) == pytest.approx(2 * 20 * 20 * 2.0 / (20 * 4))
    assert G.mean_intercept_length(np.zeros((4, 4), int), 1.0) == float('inf')


def test_free_energy_of_the_equilibrium_profile_is_sigma():
    """The Moelans profile (1 - tanh(2x/l))/2 has energy sigma per boundary (mu = 6 sigma/l, kappa = 3/4 sigma l)."""
    sigma, width, dx = 3.0, 40.0, 1.0
    x = np.arange(400) * dx
    eta = 0.5 * (1 - np.tanh(2 * (np.abs(x - 200) - 100) / width))  # two boundaries
    etas = np.stack([np.tile(eta, (2, 1)), np.tile(1 - eta, (2, 1))])
    energy = G.free_energy(etas, dx, dx, 6 * sigma / width, 0.75 * sigma * width)
    assert energy / (2 * 2 * dx) == pytest.approx(sigma, rel=2e-3)


def test_exodus_read_and_restart_clone_roundtrip(tmp_path):
    """MOOSE's Exodus (names cut at the first NUL) reads on the grid, and the clone carries new fields at one step."""
    data = read_exodus(str(FIXTURE))
    assert sorted(data['fields']) == ['eta0', 'eta1']
    assert (data['nx'], data['ny']) == (10, 8)
    etas = G.order_parameters(data, 2)
    assert etas.shape == (len(data['times']), 2, 8, 10)
    assert etas[-1].sum(axis=0) == pytest.approx(1.0, abs=0.2)
    new = {'eta0': etas[-1][1], 'eta1': etas[-1][0]}  # swap the two order parameters
    target = tmp_path / 'restart.e'
    write_restart_exodus(str(FIXTURE), str(target), new)
    back = read_exodus(str(target))
    assert len(back['times']) == 1 and back['times'][0] == data['times'][-1]
    assert back['fields']['eta0'][0] == pytest.approx(etas[-1][1])
    assert back['fields']['eta1'][0] == pytest.approx(etas[-1][0])
    import netCDF4

    with netCDF4.Dataset(str(target)) as handle:
        assert handle.data_model == 'NETCDF3_64BIT_OFFSET'
    with pytest.raises(KeyError, match='eta7'):
        write_restart_exodus(str(FIXTURE), str(tmp_path / 'x.e'), {'eta7': etas[-1][0]})


def test_recolour_moves_only_its_own_grain_when_tails_touch():
    """Two grains of one op separated by a thin grain of another: their diffuse tails touch (above the 1e-3
    threshold), so they are one component of their op.  Re-colouring must give them different ops (closer than the
    distance) and move each grain's own field only: three grains before, three after, none copied onto the other.

    (The first version moved the whole component with each grain and lost 4 of 19 grains at a restart of a real run.)
    """
    ny, nx, width = 8, 60, 3.0
    x = np.arange(nx)[None, :].repeat(ny, axis=0).astype(float)
    # Grain A at x < 28, thin grain B at 28 <= x < 32, grain C at x >= 32; periodic in x: C touches A across x = 0.
    step = lambda x0: 0.5 * (1 + np.tanh((x - x0) / width))  # noqa: E731
    b = step(28) * (1 - step(32))
    etas = np.zeros((3, ny, nx))
    etas[1] = b
    etas[0] = 1 - b  # A and C on op 0, joined by their tails through B (and across the periodic edge)
    ids = np.where(x < 28, 0, np.where(x < 32, 1, 2)).astype(np.int64)
    ops = {0: 0, 1: 1, 2: 0}
    new, new_ops = G.recolour(etas, ids, ops, distance=6)
    assert new_ops[0] != new_ops[2], 'grains 4 nodes apart must not share an op'
    after = G.detect_grains(new, min_nodes=3)
    assert len(after.ops) == 3
    # Each grain's new op carries its own core, not the other's.
    assert new[new_ops[0]][ids == 0].min() > 0.5 and new[new_ops[0]][ids == 2].max() < 0.5
    assert new[new_ops[2]][ids == 2].min() > 0.5 and new[new_ops[2]][ids == 0].max() < 0.5
